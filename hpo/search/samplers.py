"""Sampler wrappers: one ranks a stopped trial by the last value it reported; one spends a share
of the trials on local moves around the best trial so far.

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
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
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
    everything else (writes included) reaches the real study.

    `cache` (one list per sampled trial, kept by RankStoppedByValue) holds the study's trials
    as the trial's first read found them, and serves every later read of that trial's
    sampling. Optuna's own cache does the same between a trial's ask and tell, for the reads
    that allow it; it cannot work here, because a Hyperband pruner shows the sampler a new
    study object for each knob. Nor does it serve constant liar's reads of the running trials,
    which TPE made once per group of knobs. So TPE read every trial from the storage ~8 times
    per cifar10 trial (benchmarks/trial_overhead.py). With the cache, a worker's trial that
    started during this trial's sampling (a fraction of a second) is not seen as running; it
    would not have been seen a moment earlier either."""

    def __init__(self, study: optuna.Study, cache: list | None = None) -> None:
        self._study = study
        self._cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        if self._cache is None:
            trials = self._study._get_trials(deepcopy=deepcopy, states=states)
            return [as_ranked(t) for t in trials]
        if not self._cache:
            self._cache.append(self._study._get_trials(deepcopy=False, states=None))
        trials = [as_ranked(t) for t in self._cache[0] if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return [as_ranked(t) for t in self._study.get_trials(deepcopy=deepcopy, states=states)]

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


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
        self._trials: dict[int, list] = {}  # trial id -> the study's trials, while it samples

    def _view(self, study: optuna.Study, trial: FrozenTrial) -> Any:
        if len(study.directions) > 1:
            return study
        return _RankedView(study, self._trials.setdefault(trial._trial_id, []))

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._trials.pop(trial._trial_id, None)
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
        self._trials.pop(trial._trial_id, None)
        super().after_trial(study, trial, state, values)


# --- local moves -------------------------------------------------------------------------------
#
# A study that starts from a strong known point (cifar10 enqueues the public recipe as trial 0)
# has its best region around that point, and in a space of 40 knobs neither random draws nor
# TPE's early model come near it: on the H100, 75 trials drew nothing that beat trial 0, while
# the recipe with one knob changed (width 1.25 or 1.5) scored 0.4-0.7 points more. So a share of
# the trials are local moves, as in SMAC's local search around its incumbents and in
# evolutionary search: the best trial so far with one to three of its parameters changed (one
# with probability 1/2, two 1/4, three 1/4). The other trials go to the inner sampler,
# which keeps exploring and sees every trial, local moves included. Where the start is not
# near the best (cifar10 at 450 images and 2 epochs on a CPU, benchmarks/RESULTS.md §6), local
# moves did no better than TPE alone over 3 study seeds, and no worse.


def neighbour(dist: BaseDistribution, value: Any, rng: np.random.Generator) -> Any:
    """A value of `dist` near `value` and different from it where `dist` allows: another
    choice; a grid of <= 8 points: one step (a quarter of the time two) either way; otherwise
    a normal step of a tenth of the range (in log space for a log range), reflected at the
    ends. `value` outside the range gives a value inside it."""
    if isinstance(dist, CategoricalDistribution):
        others = [c for c in dist.choices if c != value] or list(dist.choices)
        return others[int(rng.integers(len(others)))]
    assert isinstance(dist, FloatDistribution | IntDistribution)
    is_int = isinstance(dist, IntDistribution)
    step = dist.step if dist.step is not None else (None if not is_int else 1)
    if step is not None and not dist.log:
        points = int(round((dist.high - dist.low) / step)) + 1
        if points <= 8:
            at = int(round((min(max(value, dist.low), dist.high) - dist.low) / step))
            jump = 2 if rng.random() < 0.25 and points > 2 else 1
            to = at + jump * (1 if rng.random() < 0.5 else -1)
            if not 0 <= to < points:
                to = at - (to - at)  # reflect: the other way
            to = min(max(to, 0), points - 1)
            new = dist.low + to * step
            return int(new) if is_int else float(new)
    lo, hi = (math.log(dist.low), math.log(dist.high)) if dist.log else (dist.low, dist.high)
    x = math.log(value) if dist.log and value > 0 else value
    x = min(max(x, lo), hi)
    new = value
    for _ in range(20):  # a step that rounds back to `value` is drawn again
        y = x + rng.normal(0.0, 0.1 * (hi - lo))
        y = 2 * hi - y if y > hi else y
        y = 2 * lo - y if y < lo else y
        y = min(max(y, lo), hi)
        new = math.exp(y) if dist.log else y
        if step is not None:
            new = dist.low + round((new - dist.low) / step) * step
        new = min(max(new, dist.low), dist.high)
        new = int(round(new)) if is_int else float(new)
        if new != value:
            break
    return new


@dataclass
class Move:
    """A local move: the incumbent's number, parameters and distributions, and new values for
    the parameters it changes."""

    base: int
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    changed: dict[str, Any]

    def describe(self) -> str:
        """'trial 0 with width 1 -> 1.25, optimizer sgd -> adam'."""
        show = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
        parts = [f"{n} {show(self.params[n])} -> {show(v)}" for n, v in self.changed.items()]
        return f"trial {self.base} with " + ", ".join(parts)


def incumbent(study: optuna.Study) -> FrozenTrial | None:
    """The best trial of the whole study (not only the Hyperband bracket the sampler is shown),
    pruned trials ranked by their last reported value as TPE sees them; None before the first
    one that has a finite value."""
    # a Hyperband pruner shows samplers a _BracketStudy: its storage and study id are the study's
    trials = study._storage.get_all_trials(
        study._study_id, deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
    )
    ranked = [as_ranked(t) for t in trials]
    done = [
        t
        for t in ranked
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    if not done:
        return None
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    return max(done, key=lambda t: (sign * t.value, -t.number))


class LocalMoves(Delegating):
    """Delegates to `inner`, except for a `share` of the trials, which are local moves around
    the best trial so far (see above). A move's new parameters, the ones the incumbent does not
    have (a conditional knob its change brings in), are drawn at random. Enqueued trials and
    multi-objective studies go to `inner` alone. Each trial's draw is seeded by (seed, trial
    number), so workers and resumed runs do not repeat each other's moves."""

    def __init__(self, inner: BaseSampler, share: float, seed: int | None = None) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")
        super().__init__(inner)
        self.share = share
        self._seed = secrets.randbits(32) if seed is None else seed
        self._random = RandomSampler(seed=seed)
        self._moves: dict[int, Move] = {}  # trial id -> its move, while the trial runs

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.inner}, share={self.share})"

    def plan(self, study: optuna.Study, trial: FrozenTrial) -> Move | None:
        """The move this trial makes, or None where it goes to the inner sampler."""
        if "fixed_params" in trial.system_attrs or len(study.directions) > 1:
            return None
        rng = np.random.default_rng([self._seed, trial.number])
        if rng.random() >= self.share:
            return None
        best = incumbent(study)
        if best is None:
            return None
        names = sorted(n for n, d in best.distributions.items() if not d.single())
        if not names:
            return None
        k = min(len(names), 3, int(rng.geometric(0.5)))
        picked = [names[i] for i in sorted(rng.choice(len(names), size=k, replace=False))]
        changed = {n: neighbour(best.distributions[n], best.params[n], rng) for n in picked}
        return Move(best.number, dict(best.params), dict(best.distributions), changed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        super().before_trial(study, trial)
        move = self.plan(study, trial)
        if move is not None:
            self._moves[trial._trial_id] = move
            study._storage.set_trial_user_attr(trial._trial_id, "local_move", move.describe())
            trial.user_attrs["local_move"] = move.describe()  # the running Trial's own copy

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if trial._trial_id in self._moves:
            return {}
        return super().infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if trial._trial_id in self._moves:
            return {}
        return super().sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        move = self._moves.get(trial._trial_id)
        if move is None:
            return super().sample_independent(study, trial, param_name, param_distribution)
        if move.distributions.get(param_name) == param_distribution:
            return move.changed.get(param_name, move.params[param_name])
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._moves.pop(trial._trial_id, None)
        super().after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._seed = secrets.randbits(32)
        self._random.reseed_rng()
        super().reseed_rng()
