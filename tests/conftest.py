"""Shared fixtures: a scratch working directory, tiny specs, and the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TINY_BOX = """
task = "box"

[study]
sampler = "random"
pruner = "none"
epochs = 2
original_epochs = 2
n_startup_trials = 2

[data]
n_train = 256
n_val = 64
n_test = 64
image_size = 32
square_size = 6

[space]
depth = { low = 0, high = 1 }
conv_channels = { low = 4, high = 8 }
dense_layers = { low = 0, high = 1 }
dense_units = { low = 8, high = 16 }
optimizer = ["sgd", "adam"]
lr = { low = 1e-3, high = 1e-1, log = true }
batch_size = [32, 64]
"""


@pytest.fixture(autouse=True)
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in its own directory with its own cache and default stores."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HPO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow SQLite store for the session: creating its schema takes seconds."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    return f"sqlite:///{path}"


def write_spec(path: Path, text: str = TINY_BOX, **replace: str) -> Path:
    """A spec file from `text`, with `old=new` substitutions applied."""
    body = textwrap.dedent(text)
    for old, new in replace.items():
        body = body.replace(old, new)
    path.write_text(body)
    return path


@pytest.fixture
def tiny_spec(scratch: Path) -> Path:
    return write_spec(scratch / "tiny.toml")


def hpo(*args: str, env: dict[str, str] | None = None, timeout: float = 300, **kw):
    """Run the real `hpo` command in a subprocess; returns CompletedProcess (text)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hpo", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        **kw,
    )
