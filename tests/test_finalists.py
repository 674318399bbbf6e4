"""`hpo train --best`'s finalists: the best few configs rescored under fresh seeds, the pick
by that score, the default's cost rule, and the scores kept in the study for a rerun."""

from __future__ import annotations

import datetime as dt
import json

import optuna
import pytest

from hpo.final.finalists import (
    Finalist,
    candidates,
    cost_seconds,
    fresh_seeds,
    pick,
    plan,
)
from hpo.search import record
from hpo.search.record import Score
from hpo.study.queries import load
from hpo.train.config import Config

from .conftest import cli

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _add(study, value, config, seconds=10.0, seeds=(0,), state=None):
    t = optuna.trial.create_trial(
        state=state or optuna.trial.TrialState.COMPLETE,
        value=value,
        user_attrs={"config": config.to_dict(), "seeds": list(seeds)},
    )
    t.datetime_complete = dt.datetime.now()
    t.datetime_start = t.datetime_complete - dt.timedelta(seconds=seconds)
    study.add_trial(t)


def test_candidates_are_the_best_distinct_configs_best_first():
    study = optuna.create_study(direction="maximize")
    a, b, c = (Config(lr=lr) for lr in (0.1, 0.2, 0.3))
    _add(study, 0.5, a)
    _add(study, 0.9, b, seconds=30, seeds=(0, 1, 2))
    _add(study, 0.9, b)  # the same config again (a local move can land on it): once
    _add(study, 0.7, c)
    _add(study, 0.99, a, state=optuna.trial.TrialState.PRUNED)  # not complete: never a finalist
    found = candidates(study, 3)
    assert [f.number for f in found] == [1, 3, 0]
    assert [f.config for f in found] == [b, c, a]
    assert found[0].per_seed_seconds == pytest.approx(10.0)  # 30 s over its 3 seeds
    assert candidates(study, 2) == found[:2]
    low = optuna.create_study(direction="minimize")
    _add(low, 0.5, a)
    _add(low, 0.1, b)
    assert [f.number for f in candidates(low, 3)] == [1, 0]


def test_fresh_seeds_follow_the_highest_any_trial_used():
    study = optuna.create_study(direction="maximize")
    _add(study, 0.5, Config(), seeds=(3000, 3001))
    _add(study, 0.6, Config(lr=0.5), seeds=(3000, 3001))
    assert fresh_seeds(study, 2) == [3002, 3003]


def test_by_default_finalists_run_only_when_they_cost_a_quarter_of_the_study_or_less():
    study = optuna.create_study(direction="maximize")
    for i in range(20):  # 200 s of trials; 3 finalists x 2 seeds x 10 s = 60 s > 50 s
        _add(study, i / 100, Config(lr=0.01 * (i + 1)))
    said = []
    assert plan(study, None, 2, said.append) == ([], [])
    assert "over a quarter" in said[0] and "--finalists 3" in said[0], said
    chosen, seeds = plan(study, 3, 2, said.append)  # asked for: always
    assert [f.number for f in chosen] == [19, 18, 17] and seeds == [1, 2]
    assert cost_seconds(study, chosen, seeds) == pytest.approx(60.0)
    # scores kept from an earlier run are not paid again: 2 of 6 runs left, 20 s
    record.set_rescored(study, {n: {1: Score(0.1), 2: Score(0.1)} for n in (19, 18)})
    assert cost_seconds(study, chosen, seeds) == pytest.approx(20.0)
    said.clear()
    chosen, _ = plan(study, None, 2, said.append)
    assert len(chosen) == 3 and not said
    for i in range(20, 40):  # a longer study affords them by default
        _add(study, i / 1000, Config(lr=0.01 * (i + 1)))
    record.set_rescored(study, {})
    assert len(plan(study, None, 2, said.append)[0]) == 3


def test_nothing_to_choose_between_means_no_finalists():
    study = optuna.create_study(direction="maximize")
    _add(study, 0.5, Config())
    assert plan(study, 3, 2, print) == ([], [])
    multi = optuna.create_study(directions=["maximize", "minimize"])
    said = []
    assert plan(multi, 3, 2, said.append) == ([], []) and "multi-objective" in said[0]


def test_the_pick_is_the_best_fresh_score_and_a_failed_seed_rules_a_finalist_out():
    def f(number, value, scores, maximize=True, worst=False):  # a score or "failed: why"
        scored = {seed: Score.of(v) for seed, v in enumerate(scores)}
        return Finalist(number, value, Config(), 1.0, scored, worst, maximize)

    best, second, third = f(0, 0.95, [0.90, 0.91]), f(1, 0.94, [0.93, 0.92]), f(2, 0.9, [0.8])
    assert pick([best, second, third]) is second
    assert pick([best, f(1, 0.94, [0.99, "failed: loss became nan"])]) is best
    assert pick([f(0, 0.9, ["failed: x"]), f(1, 0.8, ["failed: y"])]).number == 0
    # the study's objective "worst": judged by the worst fresh seed
    steady, spiky = f(0, 0.9, [0.85, 0.86], worst=True), f(1, 0.9, [0.99, 0.80], worst=True)
    assert spiky.rescored == 0.80 and pick([spiky, steady]) is steady
    low = [f(0, 0.01, [0.05, 0.07], maximize=False), f(1, 0.02, [0.03, 0.04], maximize=False)]
    assert pick(low).number == 1


def test_hpo_train_best_passes_over_a_lucky_trial(finished_study):
    """A study whose best trial is a fluke (a net that cannot learn at lr 1e-9, recorded with
    the best value): the finalists retrain it under fresh seeds, and `hpo train --best`
    retrains the config that holds up instead. A rerun reuses the kept scores."""
    stored = load("box", None)
    real = stored.best_trial
    hopeless = Config.from_dict(real.user_attrs["config"]).replace(
        lr=1e-9, optimizer="sgd", momentum=0.0
    )
    fluke = optuna.trial.create_trial(
        value=real.value / 10,  # box minimises val_mse: ten times better than any trial
        user_attrs={"config": hopeless.to_dict(), "seeds": real.user_attrs["seeds"]},
    )
    stored.add_trial(fluke)
    train = cli("train", "box", "--best", "--finalists", "2")
    assert train.returncode == 0, train.stderr[-2000:]
    err = train.stderr
    assert "finalists: the best 2 trials (3, " in err, err
    assert f"picked trial {real.number} over the study's best, trial 3" in err, err
    assert train.stdout.startswith(f"trial {real.number}: "), train.stdout
    kept = record.rescored(load("box", None))
    assert set(kept) == {3, real.number} and all(len(v) == 2 for v in kept.values())
    again = cli("train", "box", "--best", "--finalists", "2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "(done before)" in again.stderr and f"picked trial {real.number}" in again.stderr
    # hpo report shows them: the fluke first (its study value), the pick marked
    report = json.loads(cli("report", "box", "--format", "json").stdout)["finalists"]
    assert [f["number"] for f in report["trials"]] == [3, real.number]
    assert report["picked"] == real.number and report["objective"] == "mean"
    assert all(len(f["fresh"]) == 2 and f["score"] is not None for f in report["trials"])
    table = cli("report", "box").stdout
    assert f"  trial {real.number}: study " in table and table.rstrip().endswith("<- picked")
    bad = cli("train", "box", "--trial", "0", "--finalists", "2")
    assert bad.returncode == 2 and "use it with --best" in bad.stderr  # a user error: exit 2
