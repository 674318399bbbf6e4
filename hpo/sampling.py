"""A sampler wrapper that ranks a stopped trial by the last value it reported.

Optuna's TPE splits past trials into "good" and "bad" with every complete trial ranked above
every pruned one, whatever their values. That is safe when pruned trials are the weak ones a
pruner threw out, but our per-trial time budget also stops trials that were winning, only
slowly (a conv net at 224 px on a CPU). In one 20-trial pixel study the best trial (val 0.867,
a conv net at batch 16) was pruned, most likely by that budget, so TPE ranked it below every
complete trial at 0.5-0.6 and followed a noise-level 0.6 instead.

`RankStoppedByValue` shows its inner sampler each pruned trial that reported a value as if it
had completed with that value. Trials a pruner stopped early rank by their value when they were
stopped, which is below the survivors when the pruner was right. Only the sampler's view
changes: the stored trial, its state, value and reason, and `study.best_trial` are untouched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState


def as_ranked(trial: FrozenTrial) -> FrozenTrial:
    """A pruned trial with a finite last reported value, seen as complete with that value;
    any other trial as it is."""
    if trial.state != TrialState.PRUNED or not trial.intermediate_values:
        return trial
    value = trial.intermediate_values[max(trial.intermediate_values)]
    if not math.isfinite(value):
        return trial
    seen = copy.copy(trial)
    seen.state = TrialState.COMPLETE
    seen.value = value
    return seen


class _RankedView:
    """The study as the inner sampler sees it: every read of trials goes through `as_ranked`;
    everything else (writes included) reaches the real study."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return [as_ranked(t) for t in trials]

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return [as_ranked(t) for t in self._study.get_trials(deepcopy=deepcopy, states=states)]

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class RankStoppedByValue(BaseSampler):
    """Delegates to `inner`, showing it pruned trials ranked by their last reported value
    (single-objective studies; a multi-objective study is passed through as it is)."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.inner})"

    def _view(self, study: optuna.Study) -> Any:
        return study if len(study.directions) > 1 else _RankedView(study)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(self._view(study), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(self._view(study), trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.inner.sample_independent(
            self._view(study), trial, param_name, param_distribution
        )

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
