"""Arrays handed over from Python (hpo.Task.from_arrays), written once as an .npz named by
their content, so that a study can record a file that every worker reads."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from hpo.util.errors import UserError
from hpo.util.paths import cache_dir


def write_arrays(arrays: dict[str, Any], folder: str | None = None) -> Path:
    """The .npz holding `arrays` (x, y, x_val, ...), written where it is not there yet."""
    plain = {}
    for key, value in arrays.items():
        try:
            plain[key] = np.asarray(value.cpu() if hasattr(value, "cpu") else value)
        except (TypeError, ValueError) as e:
            raise UserError(f"Task.from_arrays: {key} is not an array ({e})") from None
    digest = hashlib.sha256()
    for key in sorted(plain):
        a = np.ascontiguousarray(plain[key])
        digest.update(f"{key}:{a.dtype}:{a.shape}".encode())
        digest.update(a.tobytes())
    where = Path(folder) if folder else cache_dir() / "arrays"
    path = where / f"arrays-{digest.hexdigest()[:16]}.npz"
    if not path.exists():
        where.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **plain)
        tmp.replace(path)
    return path
