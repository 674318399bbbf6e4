"""An MLflow server that goes away mid-study (issue 28): the trials go on, their runs are sent
once it answers again, and what it never got is written by `hpo report --to-mlflow`; Optuna's
finished trials and MLflow's trial runs end one-to-one, none left RUNNING."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from .conftest import ROOT, cli, free_port, mlflow_server, stop_server, write_spec

STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}


def _wait(what, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds  # bounded: every wait here ends by itself
    while not what():
        assert time.monotonic() < deadline, f"waited {seconds} s in vain"
        time.sleep(0.2)


def _trial_runs(uri: str, name: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    return [] if exp is None else client.search_runs([exp.experiment_id], "tags.kind = 'trial'")


def _finished() -> int:
    with sqlite3.connect("hpo.db") as db:
        query = "select count(*) from trials where state in ('COMPLETE', 'PRUNED', 'FAIL')"
        return db.execute(query).fetchone()[0]


@pytest.mark.xdist_group("mlflow-server")
def test_a_study_rides_out_mlflow_going_away_and_report_writes_what_it_missed(scratch):
    root, port = scratch / "mlflow", free_port()
    root.mkdir()
    uri = f"http://127.0.0.1:{port}"
    server = mlflow_server(root, port)
    spec = write_spec(scratch / "tiny.toml", **{"\nepochs = 2": "\nepochs = 10"})
    args = [
        "study", "box", "--trials", "100000", "--spec", str(spec),
        "--data", "n_train=128", "--tracking-uri", uri, "--no-original", "--no-baseline",
    ]  # fmt: skip
    study = subprocess.Popen(
        [sys.executable, "-m", "hpo", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(study.stderr), daemon=True)
    reader.start()
    said = lambda words: any(words in line for line in lines)  # noqa: E731
    try:
        _wait(lambda: len(_trial_runs(uri, "box")) >= 2)
        stop_server(server)  # away mid-study ...
        _wait(lambda: said("MLflow does not answer"))
        server = mlflow_server(root, port)  # ... and back on the same store
        _wait(lambda: said("MLflow answers again"))
        sent = len(_trial_runs(uri, "box"))
        _wait(lambda: len(_trial_runs(uri, "box")) >= sent + 2)
        stop_server(server)  # away again, until the study ends
        finished = _finished()
        _wait(lambda: _finished() >= finished + 2)  # trials whose runs must wait
        study.send_signal(signal.SIGTERM)  # stopped as by Ctrl-C, while MLflow is away
        study.wait(timeout=120)
        reader.join(timeout=30)
        text = "".join(lines)
        assert study.returncode == 130, text[-3000:]
        assert text.count("MLflow does not answer") == 2, text[-3000:]
        assert text.count("MLflow answers again") == 1, text[-3000:]
        assert "--to-mlflow` writes them once it does" in text, text[-3000:]
        assert "Traceback" not in text
        server = mlflow_server(root, port)
        report = cli("report", "box", "--to-mlflow", "--tracking-uri", uri)
        assert report.returncode == 0, report.stderr
        assert " 0 trial run(s) written" not in report.stderr, report.stderr  # some waited
        trials = optuna.load_study(study_name="box", storage="sqlite:///hpo.db").trials
        runs = {int(r.data.tags["trial_number"]): r for r in _trial_runs(uri, "box")}
        assert len(runs) == len(_trial_runs(uri, "box"))  # one run per trial, no duplicate
        assert sorted(runs) == [t.number for t in trials]
        for t in trials:
            assert runs[t.number].info.status == STATUS[t.state], (t.number, t.state)
            assert runs[t.number].data.tags["optuna_state"] == t.state.name
        again = cli("report", "box", "--to-mlflow", "--tracking-uri", uri)
        assert ": 0 trial run(s) written, 0 left running ended" in again.stderr, again.stderr
    finally:
        study.kill()
        stop_server(server)
