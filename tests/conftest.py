"""Shared fixtures: a scratch working directory, tiny specs, the CLI in this process or as a
subprocess, and one finished study that many tests copy instead of each training their own."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
# One thread per test process, and per `hpo` subprocess it starts: two xdist workers on two
# cores, each running torch with two threads, spent their time fighting over the cores.
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_server(root: Path, port: int) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1:`port` keeping its runs in `root`, once it answers
    (a bounded wait: it starts in seconds), in a process group of its own (its uvicorn is a
    child): `stop_server` ends the group. Without its job runner, which hpo does not use."""
    import time
    import urllib.request

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--workers",
            "1",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=root,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop_server(proc)
                pytest.fail("mlflow server did not start on 127.0.0.1")
            time.sleep(0.3)


def stop_server(proc: subprocess.Popen) -> None:
    """End a server's whole process group: politely, then outright after 20 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    try:  # the group's other members, should any outlive its leader
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class Ran:
    """What `cli` gives back, shaped like subprocess.CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str


def cli(*args: str, env: dict[str, str] | None = None) -> Ran:
    """`hpo ARGS` in this process, through the same entry point as the console script
    (hpo.cli.main): its exit code and what it printed, without a new interpreter importing torch
    and MLflow again (~5 s each time). The environment and the signal handlers that main()
    installs are put back afterwards. An exception main() lets through fails the test, as a
    traceback would on a terminal. Where the process itself is the point (start-up cost,
    signals, library warnings on the real stderr), tests use `hpo` instead."""
    from hpo.cli import main

    saved = dict(os.environ)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    os.environ.update(env or {})
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return Ran(code, out.getvalue(), err.getvalue())


# --- one finished study, built once per test session --------------------------------------------

STUDY_SPEC = TINY_BOX.replace("n_startup_trials = 2", "local_moves = 1.0\nn_startup_trials = 2")
STUDY_ARGS = ("study", "box", "--trials", "3", "--spec", "tiny.toml", "--seed", "2")


@dataclass(frozen=True)
class Finished:
    """A copy of the session's finished study in the test's working directory: `hpo study
    box --trials 3` on the tiny spec with every trial after the first a local move, the
    baseline and the original's replay, on the embedded defaults (hpo.db, mlflow.db, both
    here) and with the original's replay in the cache (HPO_CACHE_DIR). `stdout` and `stderr`
    are what that one real `hpo study` process printed on a fresh MLflow store."""

    folder: Path
    stdout: str
    stderr: str

    @property
    def storage(self) -> str:
        return f"sqlite:///{self.folder / 'hpo.db'}"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.folder / 'mlflow.db'}"


@pytest.fixture(scope="session")
def built_study(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Finished:
    """The study itself, made by the first xdist worker that asks (a file lock), read by all."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # the workers' temp folders share this parent
        root = root.parent
    folder = root / "finished-study"
    with FileLock(str(root / "finished-study.lock")):
        done = folder / "printed.json"
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            write_spec(folder / "tiny.toml", STUDY_SPEC)
            env = {k: v for k, v in os.environ.items() if k not in STORE_ENV}
            env |= {"PYTHONPATH": str(ROOT), "HPO_CACHE_DIR": str(folder / "cache")}
            out = subprocess.run(
                [sys.executable, "-m", "hpo", *STUDY_ARGS],
                capture_output=True, text=True, env=env, cwd=folder, timeout=600,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr[-3000:]
            done.write_text(json.dumps({"stdout": out.stdout, "stderr": out.stderr}))
    printed = json.loads(done.read_text())
    return Finished(folder, printed["stdout"], printed["stderr"])


STORE_ENV = ("HPO_STORAGE", "MLFLOW_TRACKING_URI", "HPO_CACHE_DIR", "HPO_DATA_DIR")


@pytest.fixture
def finished_study(built_study: Finished, scratch: Path) -> Finished:
    """The session's finished study copied into this test's working directory (its stores,
    spec and cache): change it at will. MLflow artifacts stay where the study wrote them."""
    for item in built_study.folder.iterdir():
        if item.is_dir() and item.name != "cache":
            continue  # artifacts: runs point at them by absolute path
        target = scratch / item.name
        if item.name == "cache":
            shutil.copytree(item, scratch / "cache", dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    return Finished(scratch, built_study.stdout, built_study.stderr)
