"""The `hpo` command as a user runs it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from hpo.cli import app

from .conftest import ROOT, cli, hpo, write_spec


def test_help_is_fast_and_lists_commands_and_environment():
    t0 = time.monotonic()
    out = hpo("--help")
    elapsed = time.monotonic() - t0
    assert out.returncode == 0
    for word in ("tasks", "study", "report", "HPO_STORAGE", "MLFLOW_TRACKING_URI"):
        assert word in out.stdout
    # Loose bound for noisy CI; benchmarks/ measures it properly. Fails if torch is imported.
    assert elapsed < 5, elapsed
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hpo.cli; print('torch' in sys.modules, "
            "'mlflow' in sys.modules, 'optuna' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert probe.stdout.strip() == "False False False"


def test_tasks_lists_metric_direction_and_sizes():
    out = cli("tasks")
    assert out.returncode == 0
    assert "box" in out.stdout and "val_mse (minimize)" in out.stdout
    assert "10,000 train / 2,000 val" in out.stdout
    assert "pixel" in out.stdout and "val_accuracy (maximize)" in out.stdout


def test_cli_runner_in_process(tiny_spec, scratch):
    result = CliRunner().invoke(
        app,
        [
            "study",
            "box",
            "--trials",
            "2",
            "--spec",
            str(tiny_spec),
            "--storage",
            f"sqlite:///{scratch / 'hpo.db'}",
            "--no-original",
            "--no-baseline",
            "--tracking-uri",
            f"sqlite:///{scratch / 'm.db'}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2/2 trials finished" in result.output


def test_a_study_on_the_embedded_defaults_then_its_report_in_three_formats(finished_study):
    out = finished_study  # one real `hpo study box --trials 3`, run in this folder
    assert "3/3 trials finished" in out.stdout
    assert "baseline  linear_regression" in out.stdout and "original" in out.stdout
    timing = out.stdout.splitlines()[-1].strip()  # where the time went, last
    assert timing.startswith("time: ") and " in all: start-up " in timing, timing
    for part in ("data", "baseline", "trials", "complete", "original", "summary"):
        assert part in timing, (part, timing)
    assert Path("hpo.db").exists() and Path("mlflow.db").exists()  # the working directory's
    rep = cli("report", "box", "--format", "json")
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    assert set(data) >= {
        "study",
        "task",
        "metric",
        "direction",
        "trials",
        "best",
        "baselines",
        "original",
    }
    assert (data["study"], data["task"], data["metric"], data["direction"]) == (
        "box",
        "box",
        "val_mse",
        "minimize",
    )
    assert len(data["trials"]) == 3
    for trial in data["trials"]:
        assert set(trial) >= {"number", "state", "value", "params", "metrics"}
        assert trial["state"] in ("COMPLETE", "PRUNED", "FAIL")
    complete = [t for t in data["trials"] if t["state"] == "COMPLETE"]
    assert data["best"]["value"] == min(t["value"] for t in complete)
    assert data["best"]["metrics"]["val_mse"] == pytest.approx(data["best"]["value"])
    assert 0 <= data["baselines"]["linear_regression"]["val_r2"] <= 1
    assert "val_r2" in data["original"]
    table = cli("report", "box")
    rows = [line.split() for line in table.stdout.splitlines()]
    assert table.returncode == 0 and ["-", "baseline", "REFERENCE"] == rows[-2][:3]
    assert "linear_regression" in rows[-2] and rows[-1][:3] == ["-", "original", "REFERENCE"]
    csv = cli("report", "box", "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("trial,state,val_mse")


@pytest.mark.parametrize(
    "args, message",
    [
        (["study", "nosuch"], "unknown task 'nosuch'"),
        (["study", "box", "--trials", "0"], "--trials must be at least 1"),
        (["study", "box", "--trials", "abc"], "Invalid value for '--trials'"),
        (["study", "box", "--spec", "missing.toml"], "spec file not found: missing.toml"),
        (["study", "box", "--storage", "nonsense"], "malformed storage URL"),
        (
            ["study", "box", "--storage", "postgresql+psycopg2://u:s3cret@127.0.0.1:9/db"],
            "cannot open storage postgresql+psycopg2://u:***@127.0.0.1:9/db",
        ),
        (["study", "box", "--sampler", "magic"], "Invalid value for '--sampler'"),
        (["study", "box", "--data", "colour=red"], "unknown data setting 'colour'"),
        (["report", "box", "--study-name", "none"], "no study 'none'"),
        (["study", "box", "--objective", "metric,speed"], "--objective must be one of"),
        (
            ["study", "box", "--objective", "metric,train_seconds", "--sampler", "cmaes"],
            "sampler cmaes optimises one objective",
        ),
        (["ui", "--port", "99999"], "Invalid value for '--port'"),  # was a 34-line traceback
        (["report", "box", "--top", "0"], "Invalid value for '--top'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    out = cli(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr
    assert "Traceback" not in out.stderr and "s3cret" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.parametrize(
    "env, message",
    [
        ({"HPO_GRACE_SECONDS": "10"}, "HPO_GRACE_SECONDS=10 must be longer than HPO_HEARTBEAT"),
        ({"HPO_HEARTBEAT_SECONDS": "soon"}, "HPO_HEARTBEAT_SECONDS='soon': expected a whole"),
        ({"HPO_GRACE_SECONDS": "0"}, "HPO_GRACE_SECONDS='0': expected a whole number"),
    ],
)
def test_a_heartbeat_that_would_fail_live_trials_is_one_line_and_exit_2(env, message, scratch):
    """A grace period not longer than the heartbeat lets Optuna fail a live worker's trial
    whose beat is a moment late (a scale-out drill was set up so: grace 10 s, the default
    heartbeat 10 s); a value that is not seconds was a traceback at import."""
    out = cli("study", "box", "--trials", "1", env={"HPO_HEARTBEAT_SECONDS": "10", **env})
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (scratch / "hpo.db").exists()  # stopped before it made anything


def test_invalid_spec_file_is_one_line(scratch):
    spec = write_spec(
        scratch / "bad.toml", "task = 'box'\n[space]\nlr = { low = 0.0, high = 1.0, log = true }\n"
    )
    out = cli("study", "box", "--spec", str(spec))
    assert out.returncode == 2 and "log range needs low > 0" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_ctrl_c_fails_the_running_trial_and_a_rerun_resumes(scratch, tracking_uri):
    spec = write_spec(
        scratch / "slow.toml", **{"epochs = 2": "epochs = 400", "n_train = 256": "n_train = 2048"}
    )
    args = [
        "study",
        "box",
        "--trials",
        "2",
        "--spec",
        str(spec),
        "--tracking-uri",
        tracking_uri,
        "--study-name",
        "interrupt",
        "--no-original",
        "--no-baseline",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpo", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        # a background runner may hand SIGINT down as ignored; a user's terminal does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # wait until a trial is training, then press Ctrl-C
        if "epoch 1/400" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "Run the same command again to resume" in rest and "Traceback" not in rest
    study = optuna.load_study(study_name="interrupt", storage="sqlite:///hpo.db")
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert states[-1] == optuna.trial.TrialState.FAIL
    assert "interrupted" in study.trials[-1].user_attrs["fail_reason"]
    # The rerun, with a short epoch budget, completes the study to its 2 finished trials.
    again = cli(*args, "--epochs", "1")
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="interrupt", storage="sqlite:///hpo.db")
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == 2


def test_multi_objective_study_reports_its_pareto_front(tiny_spec, scratch, tracking_uri):
    """--objective metric,train_seconds: two objectives, no pruning, the Pareto front."""
    args = ["--spec", str(tiny_spec), "--no-original", "--no-baseline", "--seed", "3"]
    args += ["--tracking-uri", tracking_uri, "--study-name", f"pareto-{scratch.name}"]
    out = cli("study", "box", "--trials", "5", "--objective", "metric,train_seconds", *args)
    assert out.returncode == 0, out.stderr
    assert "no pruning (multi-objective)" in out.stderr
    assert "Pareto front (val_mse, train_seconds)" in out.stdout
    name = ["--study-name", f"pareto-{scratch.name}"]
    data = json.loads(cli("report", "box", *name, "--format", "json").stdout)
    assert data["objectives"] == {"val_mse": "minimize", "train_seconds": "minimize"}
    complete = [t for t in data["trials"] if t["state"] == "COMPLETE"]
    assert len(complete) == 5  # nothing pruned: Optuna cannot prune multi-objective studies
    for t in complete:
        assert t["values"] == [t["metrics"]["val_mse"], t["metrics"]["train_seconds"]]
        assert t["value"] == t["values"][0]

    def dominated(a, b):  # b dominates a: no worse in both, better in one
        return all(y <= x for x, y in zip(a, b, strict=True)) and a != b

    front = {
        t["number"]
        for t in complete
        if not any(dominated(t["values"], o["values"]) for o in complete)
    }
    assert set(data["pareto_front"]) == front
    assert data["best"]["number"] in front
    assert data["best"]["value"] == min(t["value"] for t in complete)
    table = cli("report", "box", *name)
    assert "Pareto front (val_mse minimize, train_seconds minimize)" in table.stdout
    # the same study cannot be resumed as single-objective
    again = cli("study", "box", "--trials", "6", *args)
    assert (
        again.returncode == 2 and "created with objective(s) val_mse,train_seconds" in again.stderr
    )


def test_the_reference_of_flags_and_environment_is_the_clis_own():
    """docs/cli.md is made from the CLI (python -m hpo.cli.reference): every flag of every
    command and every environment variable hpo reads, in one place that cannot drift."""
    from hpo.cli.reference import reference

    assert (ROOT / "docs" / "cli.md").read_text() == reference(), (
        "docs/cli.md is out of date: python -m hpo.cli.reference > docs/cli.md"
    )
    text = reference()
    for flag in ("--sampler", "--pruner", "--device", "--seed", "--storage", "--top", "--all",
                 "--full-budget", "--reverse", "--all-columns", "--data-dir"):  # fmt: skip
        assert f"`{flag}`" in text, flag
    for variable in ("HPO_HEARTBEAT_SECONDS", "HPO_MALLOC_TUNING", "XDG_CACHE_HOME",
                     "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_TOKEN"):  # fmt: skip
        assert f"`{variable}`" in text, variable


def test_every_variable_hpo_reads_is_in_the_reference():
    import re

    from hpo.cli.app import ENVIRONMENT

    internal = {"HPO_WORKER_INDEX", "HPO_WORKERS", "HPO_DEADLINE"}  # --workers K to its workers
    named = set()
    for path in (ROOT / "hpo").rglob("*.py"):
        named |= set(
            re.findall(r'"((?:HPO|XDG)_[A-Z_]+|MLFLOW_TRACKING_[A-Z]+)"', path.read_text())
        )
    assert named - internal <= set(ENVIRONMENT), named - internal - set(ENVIRONMENT)


def test_a_signal_while_optuna_records_a_trials_end_stops_the_study_cleanly(
    scratch, tracking_uri, monkeypatch
):
    """SIGTERM that arrives while Optuna writes a trial's end (its tell) waits for the write and
    stops the study after it: exit 130, no traceback. Raised inside the tell, it left Optuna's
    own bookkeeping half done (UnboundLocalError: 'updated_state'), which a CI run of the
    MLflow outage test met once."""
    import optuna.study._optimize as optimize_module

    tell = optimize_module._tell_with_warning
    sent = []

    def signalled_tell(*args, **kwargs):
        if not sent:
            sent.append(True)
            signal.raise_signal(signal.SIGTERM)  # as a user's Ctrl-C or `docker stop` would
        return tell(*args, **kwargs)

    monkeypatch.setattr(optimize_module, "_tell_with_warning", signalled_tell)
    out = cli("study", "box", "--trials", "3", "--spec", str(write_spec(scratch / "tiny.toml")),
              "--tracking-uri", tracking_uri, "--no-original", "--no-baseline")  # fmt: skip
    assert sent and out.returncode == 130, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "UnboundLocalError" not in out.stderr, out.stderr
    study = optuna.load_study(study_name="box", storage="sqlite:///hpo.db")
    (trial,) = study.trials  # its end written whole, and no trial after it
    assert trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
