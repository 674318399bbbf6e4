"""Configs judged over seeds: aggregation, determinism, labels, and the answer to the user."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hpo.study.options import Options
from hpo.study.session import run
from hpo.train.labels import diagnose
from hpo.train.seeds import aggregate, objective_value, seed_list
from hpo.util.outcomes import Outcome

from .conftest import cli


def test_aggregate_against_numpy():
    per_seed = [
        {"val_accuracy": v, "train_loss": t}
        for v, t in [(0.5, 0.7), (1.0, 0.01), (0.995, 0.02), (0.5, 0.69)]
    ]
    out = aggregate(per_seed, "val_accuracy", "maximize", lambda m: m["val_accuracy"] >= 0.99)
    values = np.array([0.5, 1.0, 0.995, 0.5])
    assert out["val_accuracy"] == pytest.approx(values.mean())
    assert out["val_accuracy_std"] == pytest.approx(values.std())
    assert out["val_accuracy_worst"] == 0.5
    assert out["success_rate"] == 0.5
    assert out["train_loss"] == pytest.approx(np.mean([0.7, 0.01, 0.02, 0.69]))
    assert objective_value(out, "val_accuracy", "worst") == 0.5
    assert objective_value(out, "val_accuracy", "mean") == pytest.approx(0.74875)


def test_worst_of_a_minimised_metric_is_the_largest():
    per_seed = [{"val_mse": 0.1}, {"val_mse": 0.3}]
    out = aggregate(per_seed, "val_mse", "minimize", lambda m: False)
    assert out["val_mse_worst"] == 0.3 and out["success_rate"] == 0.0


def test_every_trial_is_judged_on_the_same_seeds():
    assert seed_list(0, 3) == [0, 1, 2]
    assert seed_list(7, 2) == [7000, 7001]


@pytest.mark.parametrize(
    "history, outcome, label",
    [
        (
            [{"val_r2": 0.001, "val_pred_spread": 0.01, "val_loss": 1, "train_loss": 1}],
            Outcome.COMPLETE,
            "collapsed_to_mean",
        ),
        (
            [{"val_r2": -0.2, "val_pred_spread": 0.0, "val_loss": 1, "train_loss": 1}],
            Outcome.COMPLETE,
            "collapsed_to_mean",
        ),
        (  # varied predictions that explain nothing (issue 16: was called "ok")
            [{"val_r2": -1.7, "val_pred_spread": 0.8, "val_loss": 1, "train_loss": 1}],
            Outcome.COMPLETE,
            "no_better_than_mean",
        ),
        (
            [{"val_r2": 0.97, "val_pred_spread": 0.95, "val_loss": 1, "train_loss": 1}],
            "complete",
            "ok",
        ),
        (
            [{"val_accuracy": 0.51, "val_over_chance": 0.01, "val_loss": 1, "train_loss": 1}],
            Outcome.COMPLETE,
            "stuck_at_chance",
        ),
        ([], Outcome.DIVERGED, "diverged"),
        ([], Outcome.FAILED, "failed"),  # no epoch finished
        ([], Outcome.OUT_OF_TIME, "failed"),
        (
            [
                {"val_accuracy": 0.7, "val_over_chance": 0.6, "val_loss": v, "train_loss": t}
                for v, t in [(1.4, 1.0), (1.3, 0.9), (1.35, 0.8), (1.4, 0.7), (1.5, 0.6)]
            ],
            Outcome.COMPLETE,
            "overfitting",
        ),
    ],
)
def test_diagnosis_labels(history, outcome, label):
    assert diagnose(history, outcome) == label


def test_a_multi_seed_study_is_deterministic_on_cpu(tiny_spec, scratch):
    results = []
    for _ in range(2):
        options = Options(
            trials=2,
            storage="memory",
            spec=str(tiny_spec),
            seed=5,
            seeds=2,
            device="cpu",
            tracking=False,
            original=False,
            baselines=False,
        )
        summary = run("box", options, lambda s: None)
        results.append((summary.best["value"], summary.best["metrics"]["val_mse_std"]))
        assert summary.best["metrics"]["success_rate"] in (0.0, 0.5, 1.0)
    assert results[0] == results[1]


def test_diagnose_command_tells_what_happened(finished_study):
    answer = cli("diagnose", "box", "--original", "--seeds", "2", "--format", "markdown")
    assert answer.returncode == 0, answer.stderr
    text = answer.stdout
    assert "### box: what happened" in text
    # no --epochs: the budget the study's own spec (--spec tiny_spec) gave the original
    assert "Your original config (2 of its 1000 epochs): collapsed to the mean in" in text
    assert 'reported failure ("the network just predicts the mean") is reproduced' in text
    assert "| change | solved | R² | val_mse | epochs | outcome |" in text  # measured
    assert "importance" not in text
    assert "Baseline `linear_regression`" in text
    assert "cost: ~" in answer.stderr and "kind=diagnosis" in answer.stderr
    assert "original seed 0: " in answer.stderr and "(study's replay)" in answer.stderr
    again = cli(
        "diagnose", "box", "--original", "--seeds", "2", "--format", "json", "--no-tracking"
    )
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["runs_trained"] == 0  # every run came from the cache of the first
    assert data["original"]["solved"] == 0 and data["ablation"]["singles"]
    assert cli("diagnose", "box").returncode == 2  # --original is what it replays


def test_diagnose_replays_the_original_for_the_spec_budget_by_default():
    """Without --epochs, `hpo diagnose` replays the original for the spec's original_epochs
    (box: 10 of the user's 1,000, hours on a CPU otherwise), like the study's replay."""
    from hpo.diagnose.diagnosis import _spec_original_epochs
    from hpo.tasks import TASKS

    assert _spec_original_epochs("box") == 10 < TASKS["box"].original.epochs
    assert _spec_original_epochs("pixel") is None  # pixel's spec replays all 10 epochs
