"""Several workers on one PostgreSQL study: exact budget, one parent run, crash recovery.

Needs a real server: .ci/run starts one on 127.0.0.1 and sets HPO_TEST_PG_URL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from .conftest import ROOT, hpo, write_spec

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not os.environ.get("HPO_TEST_PG_URL"), reason="needs HPO_TEST_PG_URL"),
]
FAST_HEARTBEAT = {"HPO_HEARTBEAT_SECONDS": "1", "HPO_GRACE_SECONDS": "4"}


@pytest.fixture
def pg_url():
    """A fresh database on the test server, dropped afterwards."""
    import sqlalchemy

    base = os.environ["HPO_TEST_PG_URL"]
    name = f"hpo_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"create database {name}"))
    url = sqlalchemy.engine.make_url(base).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"drop database if exists {name} with (force)"))
    admin.dispose()


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hpo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})},
    )


def _mlflow_runs(uri: str, experiment: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_three_workers_finish_exactly_the_budget(pg_url, tiny_spec, scratch):
    mlflow_uri = f"sqlite:///{scratch / 'mlflow.db'}"
    args = [
        "study",
        "box",
        "--trials",
        "12",
        "--spec",
        str(tiny_spec),
        "--storage",
        pg_url,
        "--tracking-uri",
        mlflow_uri,
        "--no-original",
        "--study-name",
        "three",
    ]
    procs = [_start(*args) for _ in range(3)]
    outs = [p.communicate(timeout=400) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-2000:] for o in outs]
    study = optuna.load_study(study_name="three", storage=pg_url)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 12
    assert len({t.number for t in study.trials}) == len(study.trials)
    runs = _mlflow_runs(mlflow_uri, "three")
    parents = [r for r in runs if r.data.tags.get("kind") == "study"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("kind") == "trial"]
    numbers = sorted(int(r.data.tags["trial_number"]) for r in children)
    assert len(numbers) == len(set(numbers))  # one run per trial, none duplicated
    assert {t.number for t in finished} <= set(numbers)
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)


def test_a_killed_worker_s_trial_is_failed_and_retried(pg_url, scratch):
    spec = write_spec(
        scratch / "slow.toml",
        **{
            "\nepochs = 2": "\nepochs = 30",
            "depth = { low = 0, high = 1 }": "depth = 0",
        },
    )
    args = [
        "study",
        "box",
        "--trials",
        "3",
        "--spec",
        str(spec),
        "--storage",
        pg_url,
        "--study-name",
        "crash",
        "--no-original",
        "--no-baseline",
        "--tracking-uri",
        f"sqlite:///{scratch / 'mlflow.db'}",
    ]
    victim = _start(*args, env=FAST_HEARTBEAT)
    deadline = time.monotonic() + 120
    for line in victim.stderr:  # wait until it is mid-trial, then kill it without warning
        if "epoch 2/30" in line or time.monotonic() > deadline:
            break
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    survivor = _start(*args, env=FAST_HEARTBEAT)
    out, err = survivor.communicate(timeout=400)
    assert survivor.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="crash", storage=pg_url)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == 3
    killed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(killed) == 1
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retries) == 1 and retries[0].params == killed[0].params
    report = json.loads(
        hpo(
            "report", "box", "--storage", pg_url, "--study-name", "crash", "--format", "json"
        ).stdout
    )
    assert any(t["retry_of"] == killed[0].number for t in report["trials"])
    # MLflow: one run per trial; the dead worker's run ended KILLED by the trial that retried it
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{scratch / 'mlflow.db'}")
    exp = client.get_experiment_by_name("crash")
    runs = client.search_runs([exp.experiment_id], "tags.kind = 'trial'")
    numbers = sorted(int(r.data.tags["trial_number"]) for r in runs)
    assert numbers == sorted(t.number for t in study.trials)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    lost = next(r for r in runs if r.data.tags["trial_number"] == str(killed[0].number))
    assert lost.info.status == "KILLED", lost.info
    assert (
        lost.data.tags["reason"] == f"its worker stopped; trial {retries[0].number} runs it again"
    )


def test_four_workers_starting_together_on_a_fresh_database(pg_url, tiny_spec, scratch):
    mlflow_uri = f"sqlite:///{scratch / 'fresh-mlflow.db'}"
    out = hpo(
        "study",
        "box",
        "--trials",
        "4",
        "--workers",
        "4",
        "--spec",
        str(tiny_spec),
        "--storage",
        pg_url,
        "--tracking-uri",
        mlflow_uri,
        "--study-name",
        "together",
        "--no-original",
        timeout=400,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert "4/4 trials finished" in out.stdout
    summaries = optuna.get_all_study_summaries(pg_url)
    assert [s.study_name for s in summaries] == ["together"]
    runs = _mlflow_runs(mlflow_uri, "together")
    assert sum(r.data.tags.get("kind") == "study" for r in runs) == 1
