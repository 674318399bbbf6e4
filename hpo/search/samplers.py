"""The samplers a spec names (SAMPLERS: tpe, random, cmaes, gp), the wrapper that shows them a
stopped trial ranked by the last value it reported, and the one that draws a share of the
trials at random (RandomShare). (Local moves: hpo.search.moves.)

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
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from hpo.search.optuna_private import StudyView, enqueued


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


class Delegating(BaseSampler):
    """A sampler that hands every call to `inner`; the wrappers below change what they need."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.inner})"

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

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


class RankStoppedByValue(Delegating):
    """Delegates to `inner`, showing it pruned trials ranked by their last reported value
    (single-objective studies; a multi-objective study is passed through as it is). Only the
    sampling calls see the ranked view; before_trial and after_trial see the real study."""

    def __init__(self, inner: BaseSampler) -> None:
        super().__init__(inner)
        self._trials: dict[int, list] = {}  # trial number -> the study's trials, while it samples

    def _view(self, study: optuna.Study, trial: FrozenTrial) -> Any:
        """The study with pruned trials ranked by value; one read of its trials serves the
        whole of a trial's sampling. Optuna's own cache does that between a trial's ask and
        tell for the reads that allow it, but a Hyperband pruner shows the sampler a new study
        object for each knob, and constant liar's reads of the running trials, which TPE made
        once per group of knobs, bypass it: TPE read every trial from the storage ~8 times a
        cifar10 trial (benchmarks/trial_overhead.py). A worker's trial that started during
        this trial's sampling (a fraction of a second) is not seen as running; it would not
        have been seen a moment earlier either."""
        if len(study.directions) > 1:
            return study
        return StudyView(study, as_ranked, self._trials.setdefault(trial.number, []))

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._trials.pop(trial.number, None)
        super().before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return super().infer_relative_search_space(self._view(study, trial), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return super().sample_relative(self._view(study, trial), trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        view = self._view(study, trial)
        return super().sample_independent(view, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._trials.pop(trial.number, None)
        super().after_trial(study, trial, state, values)


class RandomShare(Delegating):
    """Delegates to `inner`, except for a `share` of the trials, which are drawn at random from
    the whole space: SMAC's random design, BOHB's random fraction (1/3). A model-based sampler
    follows the best trials it has seen, and where the early best are a decoy it can spend
    the whole study beside them. On pixel, nets that fit the noise read val 0.6-0.7 while the
    L1 nets that find the pixel read 0.5 until they do (benchmarks/pixel_rungs.py): an
    unseeded 20-trial study ended at 0.70. The random share keeps a random search's floor
    under the model's trials: each is drawn from the prior whatever the model believes.
    Enqueued trials go to `inner`. Each trial's coin is seeded by (seed, trial number), so
    workers and resumed runs agree on which trials are random."""

    def __init__(self, inner: BaseSampler, share: float, seed: int | None = None) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")
        super().__init__(inner)
        self.share = share
        self._seed = secrets.randbits(32) if seed is None else seed
        # trial number -> its own random sampler, seeded by (seed, number): a sampler seeded
        # like the inner one would repeat the inner one's random start-up draws in order
        self._random: dict[int, optuna.samplers.RandomSampler] = {}

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.inner}, share={self.share})"

    def is_random(self, trial: FrozenTrial) -> bool:
        """Whether this trial is one of the random share."""
        if enqueued(trial):
            return False
        return bool(np.random.default_rng([self._seed, trial.number, 7]).random() < self.share)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self.is_random(trial):
            return {}
        return super().infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self.is_random(trial):
            return {}
        return super().sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self.is_random(trial):
            if trial.number not in self._random:
                seed = np.random.default_rng([self._seed, trial.number, 11]).integers(2**32)
                self._random[trial.number] = optuna.samplers.RandomSampler(seed=int(seed))
            draw = self._random[trial.number]
            return draw.sample_independent(study, trial, param_name, param_distribution)
        return super().sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._random.pop(trial.number, None)
        super().after_trial(study, trial, state, values)
