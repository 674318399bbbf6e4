"""`hpo report --format json` is a contract for scripts: strict JSON (no NaN, no Infinity) with a
pinned set of keys, over a study holding COMPLETE, PRUNED and FAIL trials. And one study
through the shipped default path: TPE with Hyperband pruning."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo.util.outcomes import Outcome

from .conftest import cli

REPORT_KEYS = {
    "study",
    "task",
    "metric",
    "direction",
    "objectives",
    "trials",
    "best",
    "finalists",  # hpo train --best's (null before it ran: tests/test_finalists.py)
    "pareto_front",
    "baselines",
    "original",
    "original_replay",
}
TRIAL_KEYS = {
    "number",
    "state",
    "value",
    "values",
    "params",
    "searched",
    "metrics",
    "reason",
    "diagnosis",
    "seconds",
    "retry_of",
    "local_move",
}


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_report_json_is_strict_and_pinned_over_complete_pruned_and_failed_trials(scratch):
    url = f"sqlite:///{scratch / 'hpo.db'}"
    study = optuna.create_study(study_name="box", storage=url, direction="minimize")
    for key, value in {"task": "box", "metric": "val_mse", "data": {}}.items():
        study.set_user_attr(key, value)
    lr = {"lr": FloatDistribution(1e-4, 1.0, log=True)}
    study.add_trial(
        create_trial(
            value=0.02,
            params={"lr": 0.01},
            distributions=lr,
            user_attrs={"metrics": {"val_mse": 0.02, "val_r2": 0.9}, "outcome": "complete"},
        )
    )
    study.add_trial(  # pruned at epoch 2 with a NaN metric: must come out as null
        create_trial(
            state=TrialState.PRUNED,
            params={"lr": 0.5},
            distributions=lr,
            intermediate_values={1: 0.3, 2: 0.4},
            user_attrs={
                "metrics": {"val_mse": math.nan, "val_r2": -math.inf},
                "prune_reason": "pruned by hyperband at epoch 2",
                "outcome": "pruned",
            },
        )
    )
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params={"lr": 1.0},
            distributions=lr,
            user_attrs={"fail_reason": "loss became nan at epoch 1", "outcome": "diverged"},
        )
    )
    out = cli("report", "box", "--storage", url, "--format", "json")
    assert out.returncode == 0, out.stderr
    data = _strict(out.stdout)
    assert set(data) == REPORT_KEYS and data["finalists"] is None
    assert [t["state"] for t in data["trials"]] == ["COMPLETE", "PRUNED", "FAIL"]
    for trial in data["trials"]:
        assert set(trial) == TRIAL_KEYS
    complete, pruned, failed = data["trials"]
    assert data["best"]["number"] == complete["number"] and data["best"]["value"] == 0.02
    assert pruned["metrics"] == {"val_mse": None, "val_r2": None}
    assert failed["value"] is None and failed["reason"] == "loss became nan at epoch 1"


@pytest.mark.parametrize("spec", ["studies/box.toml"])
def test_a_study_through_the_default_tpe_and_hyperband_path(spec, scratch, tracking_uri):
    """The shipped box spec's own sampler and pruner (TPE, Hyperband), at tiny sizes: the
    trials finish, the run says which sampler and pruner it used, and the report agrees."""
    from .conftest import ROOT

    text = (ROOT / spec).read_text()
    assert 'sampler = "tpe"' in text and 'pruner = "hyperband"' in text
    url = f"sqlite:///{scratch / 'hpo.db'}"
    out = cli(
        "study",
        "box",
        "--trials",
        "6",
        "--epochs",
        "3",
        "--seed",
        "0",
        "--data",
        "n_train=256",
        "--data",
        "n_val=64",
        "--data",
        "image_size=32",
        "--data",
        "square_size=6",
        "--storage",
        url,
        "--no-original",
        "--no-baseline",
        "--tracking-uri",
        tracking_uri,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sampler tpe, pruner hyperband" in out.stderr
    assert "6/6 trials finished" in out.stdout
    study = optuna.load_study(study_name="box", storage=url)
    states = {t.state for t in study.trials}
    assert states <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert TrialState.COMPLETE in states
    # Hyperband saw every epoch of every trial: one intermediate value per epoch it ran
    for t in study.trials:
        assert sorted(t.intermediate_values) == list(range(1, len(t.intermediate_values) + 1))


def test_the_table_fits_a_terminal_and_keeps_the_references(scratch):
    """30 trials of the shipped box space, every knob drawn: the table is cut to 120
    characters (the params that differ, as many as fit, and a line for the rest); per-seed
    statistics of a single-seed study and all-empty columns are left out; the baseline and
    the original stay; --all-columns and CSV have every column."""
    import random

    from hpo.search import record
    from hpo.search.space import suggest
    from hpo.search.spec import load_spec
    from hpo.train.config import Config

    from .conftest import ROOT

    spec = load_spec(ROOT / "studies" / "box.toml")
    url = f"sqlite:///{scratch / 'hpo.db'}"
    study = optuna.create_study(
        study_name="box",
        storage=url,
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    record.write_info(study, record.StudyInfo("box", "val_mse", ["val_mse"], {}))
    record.set_baselines(study, {"linear_regression": {"val_mse": 1e-6, "val_r2": 1.0}})
    rng = random.Random(0)
    for i in range(30):
        trial = study.ask()
        config = suggest(trial, spec, Config())
        record.start_trial(trial, config.params(), config.to_dict(), [0])
        mse = rng.uniform(1e-4, 0.4)
        metrics = {"val_mse": mse, "val_r2": 1 - mse / 0.34, "val_mse_std": 0.0,
                   "val_mse_worst": mse, "success_rate": 0.0, "val_pred_spread": 1.0}  # fmt: skip
        if i % 7 == 3:
            record.set_reason(trial, Outcome.PRUNED, "pruned by hyperband at epoch 1")
            record.end_trial(trial, Outcome.PRUNED, metrics, "ok")
            trial.report(mse, 1)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            record.end_trial(trial, Outcome.COMPLETE, metrics, "ok")
            study.tell(trial, mse)
    original = record.Replay({"val_mse": 0.34, "val_r2": -0.001}, 1, 1000, Outcome.COMPLETE)
    record.set_original(study, original)
    table = cli("report", "box", "--storage", url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(map(len, lines)) <= 120, max(lines, key=len)
    head = lines[1].split()
    assert head[:5] == ["rank", "trial", "state", "val_mse", "val_r2"], head
    assert "seconds" in head and "note" in head and "depth" in head
    assert not {"val_mse_std", "val_mse_worst", "success_rate", "val_pred_spread"} & set(head)
    baseline = next(line.split() for line in lines[2:] if line.split()[1] == "baseline")
    assert "linear_regression" in baseline and "1e-06" in baseline
    assert any(line.split()[1] == "original" for line in lines[2:])
    assert "--all-columns shows every column" in lines[-1]
    wide = cli("report", "box", "--storage", url, "--all-columns").stdout
    assert max(map(len, wide.splitlines())) > 120 and "weight_decay" in wide
    csv = cli("report", "box", "--storage", url, "--format", "csv").stdout.splitlines()
    assert {"weight_decay", "momentum", "val_mse_std"} <= set(csv[0].split(","))
