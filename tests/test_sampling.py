"""The default TPE sees a pruned trial ranked by its last reported value (hpo.sampling)."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hpo.sampling import RankStoppedByValue, as_ranked
from hpo.study.create import make_sampler

X = optuna.distributions.FloatDistribution(0.0, 1.0)


def pruned(values: dict[int, float]) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=TrialState.PRUNED,
        params={"x": 0.5},
        distributions={"x": X},
        intermediate_values=values,
    )


def test_a_pruned_trial_is_seen_complete_with_its_last_value():
    seen = as_ranked(pruned({1: 0.6, 3: 0.87, 2: 0.7}))
    assert seen.state == TrialState.COMPLETE and seen.value == 0.87


@pytest.mark.parametrize(
    "trial",
    [
        pruned({}),  # stopped before its first epoch ended: nothing to rank it by
        pruned({1: 0.7, 2: math.nan}),
        create_trial(
            state=TrialState.COMPLETE, value=0.5, params={"x": 0.1}, distributions={"x": X}
        ),
        create_trial(state=TrialState.FAIL, params={"x": 0.1}, distributions={"x": X}),
    ],
)
def test_other_trials_are_seen_as_they_are(trial):
    assert as_ranked(trial) is trial


def slow_winner(trial: optuna.Trial) -> float:
    """x > 0.8 wins (0.9) but always runs out of time after one epoch; elsewhere the trials
    complete at a plateau of 0.5-0.51, like pixel nets that never find the pixel."""
    x = trial.suggest_float("x", 0.0, 1.0)
    if x > 0.8:
        trial.report(0.9, 1)
        raise optuna.TrialPruned("trial_timeout")
    return 0.51 - 0.01 * x  # the plateau leans away from the winners


def share_in_winning_region(sampler: optuna.samplers.BaseSampler) -> float:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(slow_winner, n_trials=40)
    after_startup = [t.params["x"] for t in study.trials[8:]]
    return sum(x > 0.8 for x in after_startup) / len(after_startup)


def test_tpe_follows_pruned_winners_only_when_it_ranks_them_by_value():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ours = make_sampler("tpe", seed=3, n_startup=8)
    assert isinstance(ours, RankStoppedByValue)
    plain = make_sampler("tpe", seed=3, n_startup=8).inner  # the same TPE, unwrapped
    plain_share, our_share = share_in_winning_region(plain), share_in_winning_region(ours)
    assert our_share >= 0.5, (plain_share, our_share)
    assert our_share >= plain_share + 0.3, (plain_share, our_share)


def test_only_the_samplers_view_changes():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 0, 4))
    study.optimize(slow_winner, n_trials=12)
    assert TrialState.PRUNED in {t.state for t in study.trials}  # stored states are kept ...
    assert study.best_trial.value < 0.6  # ... and best_trial still counts complete ones only
