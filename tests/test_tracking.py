"""MLflow as the place to compare and select, against the local store and a real server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .conftest import (
    STUDY_ARGS,
    STUDY_SPEC,
    cli,
    free_port,
    mlflow_server,
    stop_server,
    write_spec,
)

STATES = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


@pytest.fixture(
    scope="module",
    # one xdist worker starts the server (seconds) and runs every test that uses it
    params=["local", pytest.param("server", marks=pytest.mark.xdist_group("mlflow-server"))],
)
def store(request, tmp_path_factory):
    """(tracking URI, files to search for secrets). 'server' is a real `mlflow server`."""
    root = tmp_path_factory.mktemp(f"mlflow-{request.param}")
    if request.param == "local":
        yield f"sqlite:///{root / 'mlflow.db'}", root
        return
    port = free_port()
    proc = mlflow_server(root, port)
    url = f"http://127.0.0.1:{port}"
    yield url, root
    stop_server(proc)


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri: str, experiment: str):
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def test_study_runs_nest_under_one_parent_with_metrics_references_and_a_model(
    store, scratch, request
):
    """Locally: the session's finished study (tests/conftest.py), whose MLflow store is the
    default one; against a real server: the same study, run here."""
    uri, _ = store
    name = "box"
    if uri.startswith("sqlite"):
        uri = request.getfixturevalue("finished_study").tracking_uri
    else:
        name = f"nest-{os.getpid()}-{time.monotonic_ns()}"
        write_spec(scratch / "tiny.toml", STUDY_SPEC)
        args = [*STUDY_ARGS, "--tracking-uri", uri, "--study-name", name]
        out = cli(*args, "--storage", f"sqlite:///{scratch / 'hpo.db'}")
        assert out.returncode == 0, out.stderr
    client, runs = _runs(uri, name)
    kinds = [r.data.tags.get("kind") for r in runs]
    assert kinds.count("study") == 1
    assert kinds.count("trial") == 3 and kinds.count("baseline") == 1
    assert kinds.count("original") == 1
    parent = next(r for r in runs if r.data.tags["kind"] == "study")
    assert parent.info.status == "FINISHED"  # the study was summed up: its run is not left open
    assert parent.data.tags["direction"] == "minimize"  # hpo ui sorts by it, best first
    for run in runs:
        if run is not parent:
            assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    moves = [r.data.tags.get("local_move") for r in runs if r.data.tags["kind"] == "trial"]
    assert any(moves) and all(m.startswith("trial ") for m in moves if m), moves
    for run in (r for r in runs if r.data.tags["kind"] == "trial"):
        tags, params = run.data.tags, run.data.params
        assert run.info.status == STATES[tags["optuna_state"]]
        assert {"task", "trial_number", "device", "hpo_version", "diagnosis"} <= set(tags)
        assert {"depth", "lr", "optimizer", "batch_size"} <= set(params)
        history = client.get_metric_history(run.info.run_id, "val_mse")
        assert [m.step for m in history] == list(range(1, len(history) + 1))
        for key in (
            "train_loss",
            "val_loss",
            "lr",
            "epoch_seconds",
            "images_per_second",
            "gain_over_baseline",
        ):
            assert key in run.data.metrics
    original = next(r for r in runs if r.data.tags["kind"] == "original")
    assert original.data.tags["diagnosis"] == "collapsed_to_mean"  # docs/scenarios.md §1, replayed
    assert "val_mse" in original.data.metrics
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "plots")]
    assert "plots/optimization_history.png" in artifacts

    # Selection: retrain the best, test once, register, load back and predict.
    final = cli("train", "box", "--best", "--study-name", name, "--tracking-uri", uri)
    assert final.returncode == 0, final.stderr
    assert "test_mse" in final.stdout and f"models:/{name}/1" in final.stdout
    import mlflow.pytorch
    import numpy as np

    mlflow.set_tracking_uri(uri)
    model = mlflow.pytorch.load_model(f"models:/{name}/1")
    import torch

    with torch.no_grad():
        pred = model(torch.from_numpy(np.zeros((2, 3, 32, 32), dtype=np.float32)))
    assert pred.shape == (2, 2)
    version = client.get_model_version(name, "1")
    assert "test_mse" in version.tags


def test_pruned_and_failed_trials_keep_their_true_state(store, scratch):
    uri, _ = store
    name = f"states-{os.getpid()}-{time.monotonic_ns()}"
    spec = write_spec(
        scratch / "states.toml",
        **{
            "\nepochs = 2": "\nepochs = 100000\ntrial_timeout = 1.0",
            'optimizer = ["sgd", "adam"]': 'optimizer = "sgd"\nmomentum = 0.0',
            "lr = { low = 1e-3, high = 1e-1, log = true }": "lr = [1e9, 0.01]",
        },
    )
    out = cli(
        "study",
        "box",
        "--trials",
        "6",  # with seed 0 the sampler draws both lr values by then
        "--spec",
        str(spec),
        "--tracking-uri",
        uri,
        "--study-name",
        name,
        "--seed",
        "0",
        "--no-original",
        "--no-baseline",
    )
    assert out.returncode == 0, out.stderr
    assert "View run" not in out.stdout + out.stderr  # MLflow's own line for a server's runs
    _, runs = _runs(uri, name)
    trials = [r for r in runs if r.data.tags.get("kind") == "trial"]
    states = {r.data.tags["optuna_state"] for r in trials}
    assert states == {"PRUNED", "FAIL"}, states
    for run in trials:
        assert run.info.status == STATES[run.data.tags["optuna_state"]]
        if run.data.tags["optuna_state"] == "FAIL":
            assert "loss became" in run.data.tags["reason"]
            assert run.data.tags["diagnosis"] == "diverged"
        else:
            assert "trial_timeout" in run.data.tags["reason"]


@pytest.mark.skipif(not os.environ.get("HPO_TEST_PG_URL"), reason="needs HPO_TEST_PG_URL")
def test_a_storage_password_appears_nowhere(store, tiny_spec, scratch):
    from sqlalchemy.engine import make_url

    uri, root = store
    storage = os.environ["HPO_TEST_PG_URL"]
    password = make_url(storage).password
    assert password and len(password) >= 6
    name = f"secret-{os.getpid()}-{time.monotonic_ns()}"
    out = cli(
        "study",
        "box",
        "--trials",
        "2",
        "--spec",
        str(tiny_spec),
        "--tracking-uri",
        uri,
        "--storage",
        storage,
        "--study-name",
        name,
    )
    assert out.returncode == 0, out.stderr
    rep = cli("report", "box", "--storage", storage, "--study-name", name, "--format", "json")
    assert rep.returncode == 0, rep.stderr
    for text in (out.stdout, out.stderr, rep.stdout, rep.stderr):
        assert password not in text
    for path in [*Path(root).rglob("*"), *Path(scratch).rglob("*")]:
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


def test_a_fast_trials_epochs_reach_mlflow_at_its_end_in_one_call_and_a_slow_ones_live(
    tmp_path, monkeypatch
):
    """One MLflow call per epoch was a tenth of a GPU epoch in bookkeeping: a trial's epochs
    are sent at most every EPOCH_FLUSH_SECONDS, and at its end together with its final tags."""
    from types import SimpleNamespace

    import hpo.track.study_log as tracking

    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "epochs")
    task = SimpleNamespace(name="box", metric="val_mse", direction="minimize")
    log = tracking.StudyLog(tracker, task, "cpu", print)
    config = SimpleNamespace(params=lambda: {"lr": 0.1})
    calls = []
    real = tracker.client.log_batch
    tracker.client.log_batch = lambda *a, **k: calls.append(k) or real(*a, **k)
    history = lambda run: [m.step for m in tracker.client.get_metric_history(run, "val_mse")]  # noqa: E731

    run = log.start_trial(0, config, [0])
    calls.clear()
    for epoch in (1, 2, 3):
        log.epoch(run, epoch, {"val_mse": 1.0 / epoch, "train_loss": 2.0 / epoch}, [{}])
    assert history(run) == [] and calls == []  # fast epochs wait for the trial's end
    log.end_trial(run, "complete", "", {"val_mse": 1 / 3}, "fine")
    assert history(run) == [1, 2, 3] and len(calls) == 1
    done = tracker.client.get_run(run)
    assert done.info.status == "FINISHED" and done.data.tags["optuna_state"] == "COMPLETE"

    monkeypatch.setattr(tracking, "EPOCH_FLUSH_SECONDS", 0.0)  # epochs slower than the period
    slow = log.start_trial(1, config, [0])
    log.epoch(slow, 1, {"val_mse": 1.0, "train_loss": 2.0}, [{}])
    assert history(slow) == [1]  # live, before the trial ends
    log.end_trial(slow, "pruned", "pruned by hyperband at epoch 1", {"val_mse": 1.0}, "fine")
    assert history(slow) == [1]
    assert tracker.client.get_run(slow).data.tags["reason"].startswith("pruned by")


def _dead_workers_run(tmp_path, name: str):
    """A study's parent run and a trial run left RUNNING, as a worker killed mid-trial leaves
    it (its process made the run and died)."""
    import hpo.track.study_log as tracking

    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", name)
    parent = tracker.create_parent(name, "box", {"metric": "val_mse", "direction": "minimize"})
    tags = {"kind": "trial", "trial_number": 0, "optuna_state": "RUNNING"}
    return tracker, parent, tracker.start_run(parent, "trial-0", tags)


def test_a_dead_workers_run_is_ended_killed_once_mlflow_is_back(tmp_path, monkeypatch):
    """The retry of a dead worker's trial may start while MLflow is away: ending the dead run
    KILLED waits with the other runs, is counted by flush while it waits, and is done once
    MLflow answers again (a drill with a server stopped found it dropped and left RUNNING)."""
    from types import SimpleNamespace

    import hpo.track.study_log as tracking

    tracker, parent, dead = _dead_workers_run(tmp_path, "lost")
    task = SimpleNamespace(name="box", metric="val_mse", direction="minimize")
    log = tracking.StudyLog(tracker, task, "cpu", lambda line: None)
    log.parent_id = parent
    runs = tracker.trial_runs
    away = lambda *a, **k: (_ for _ in ()).throw(ConnectionError("refused"))  # noqa: E731
    monkeypatch.setattr(tracker, "trial_runs", away)
    monkeypatch.setattr(log, "_answers", lambda: False)
    log.close_lost(0, 5)
    assert log.flush() == 1  # it waits, and is counted
    assert tracker.client.get_run(dead).info.status == "RUNNING"
    monkeypatch.setattr(tracker, "trial_runs", runs)
    monkeypatch.setattr(log, "_answers", lambda: True)
    assert log.flush() == 0
    ended = tracker.client.get_run(dead)
    assert ended.info.status == "KILLED", ended.info
    assert ended.data.tags["reason"] == "its worker stopped; trial 5 runs it again"


def test_report_to_mlflow_ends_a_dead_workers_run_killed_as_its_retry_would(tmp_path):
    """Where the retry could not end it (MLflow away until the study ended), `hpo report
    --to-mlflow` ends the dead worker's run as the retry would have: KILLED, naming the
    retry; the retry's own run, which MLflow lacks, is written."""
    import optuna
    from optuna.trial import TrialState

    from hpo.report.to_mlflow import to_mlflow
    from hpo.search import record

    tracker, parent, dead = _dead_workers_run(tmp_path, "lost")
    study = optuna.create_study(study_name="lost", storage=f"sqlite:///{tmp_path / 'hpo.db'}")
    record.set_parent_run(study, parent)
    lost = study.ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1.0)})
    study.tell(lost, state=TrialState.FAIL)  # as the heartbeat fails a dead worker's trial
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, study.trials[0])
    again = study.ask()
    study.tell(again, 0.5)
    sent, _ = to_mlflow(study, tracker.uri)
    assert (sent.written, sent.ended) == (1, 1), sent
    ended = tracker.client.get_run(dead)
    assert ended.info.status == "KILLED", ended.info
    assert ended.data.tags["reason"] == f"its worker stopped; trial {again.number} runs it again"
    assert {r.data.tags["trial_number"] for r in tracker.trial_runs(parent)} == {"0", "1"}


def test_a_trial_that_started_and_ended_while_mlflow_was_away_is_sent_once(tmp_path, monkeypatch):
    """A trial that starts and ends while MLflow is away; MLflow answers again at its end. Its
    run is made once, with its metrics and state, and the trial goes on unharmed: the run that
    the return of MLflow sent was ended a second time and failed the trial with a KeyError (a
    scale-out drill's worker log)."""
    from types import SimpleNamespace

    import hpo.track.study_log as tracking

    tracker = tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "back")
    task = SimpleNamespace(name="box", metric="val_mse", direction="minimize")
    log = tracking.StudyLog(tracker, task, "cpu", lambda line: None)
    log.create_parent("back")
    config = SimpleNamespace(params=lambda: {"lr": 0.1})
    start_run = tracker.start_run
    refused = lambda *a, **k: (_ for _ in ()).throw(ConnectionError("refused"))  # noqa: E731
    monkeypatch.setattr(tracker, "start_run", refused)
    monkeypatch.setattr(log, "_answers", lambda: False)
    handle = log.start_trial(0, config, [0])
    log.epoch(handle, 1, {"val_mse": 0.5, "train_loss": 1.0}, [{}])
    assert tracker.trial_runs(log.parent_id) == []  # away: nothing made
    monkeypatch.setattr(tracker, "start_run", start_run)
    monkeypatch.setattr(log, "_answers", lambda: True)
    monkeypatch.setattr(tracking, "PROBE_SECONDS", 0.0)
    log.end_trial(handle, "pruned", "pruned by hyperband at epoch 1", {"val_mse": 0.5}, "fine")
    assert log.flush() == 0
    (run,) = tracker.trial_runs(log.parent_id)
    assert run.info.status == "KILLED" and run.data.tags["optuna_state"] == "PRUNED"
    assert [m.step for m in tracker.client.get_metric_history(run.info.run_id, "val_mse")] == [1]
    assert run.data.params == {"lr": "0.1"}
