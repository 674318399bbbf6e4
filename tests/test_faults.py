"""Promises under faults and options (issue 18): one timeout for --workers, an unreachable
tracking server, a clean terminal, flags a spec would override."""

from __future__ import annotations

import socket
import time
from datetime import datetime

import optuna
import pytest

from .conftest import hpo, write_spec


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An MLflow SQLite store whose schema exists already (creating it takes seconds)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()
    return uri


def test_workers_share_one_timeout_and_the_parent_only_sums_up(scratch, mlflow_store):
    """`--workers 2 --timeout T` on the default SQLite storage: no trial starts after T from
    the command's start (the parent trains none), exactly one summary and one stop line."""
    spec = write_spec(scratch / "tiny.toml")
    timeout = 15
    t0 = datetime.now()
    start = time.monotonic()
    out = hpo(
        "study", "box", "--trials", "1000", "--workers", "2", "--timeout", str(timeout),
        "--spec", str(spec), "--data", "n_train=64", "--epochs", "1",
        "--no-original", "--no-baseline", "--tracking-uri", mlflow_store,
    )  # fmt: skip
    wall = time.monotonic() - start
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("trials finished (val_mse") == 1, out.stdout
    assert out.stderr.count("stopped early") == 1, out.stderr[-2000:]
    assert f"stopped early: --timeout {timeout} s reached" in out.stderr
    study = optuna.load_study(study_name="box", storage="sqlite:///hpo.db")
    late = [
        (t.number, (t.datetime_start - t0).total_seconds())
        for t in study.trials
        if (t.datetime_start - t0).total_seconds() > timeout + 1
    ]
    assert not late, f"trials started after the {timeout} s timeout: {late}"
    # one trial here takes well under a second; the rest is start-up and the summary
    assert wall < timeout + 45, wall


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_tracking_server_stops_the_study_in_one_line(scratch):
    uri = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    out = hpo("study", "box", "--trials", "1", "--tracking-uri", uri, "--no-original", timeout=60)
    wall = time.monotonic() - start
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"MLflow tracking server {uri} is unreachable" in lines[0], lines
    assert wall < 30, wall  # was: nothing printed for 90 s and more
    assert not (scratch / "hpo.db").exists()  # stopped before a study was created


def test_a_silent_tracking_server_is_given_a_bounded_wait():
    from hpo.errors import UserError
    from hpo.tracking import check_server

    with socket.socket() as server:  # accepts connections (backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        uri = f"http://user:secret@127.0.0.1:{server.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(UserError, match="unreachable") as e:
            check_server(uri, wait=0.5)
        assert time.monotonic() - start < 5
    assert "secret" not in str(e.value) and "user:***@127.0.0.1" in str(e.value)
