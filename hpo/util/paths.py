"""Where hpo keeps what it computed once (the cache: baselines, replays, decoded images)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """HPO_CACHE_DIR, else $XDG_CACHE_HOME/hpo, else ~/.cache/hpo."""
    if os.environ.get("HPO_CACHE_DIR"):
        return Path(os.environ["HPO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hpo"
