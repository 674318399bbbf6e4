"""Local moves: a share of a study's trials spent on the best trial so far with one to three of
its knobs changed (LocalMoves). The incumbent is the best trial of the whole study, a pruned
trial ranked by the last value it reported (hpo.search.samplers.as_ranked).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
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

from hpo.search import record
from hpo.search.optuna_private import all_trials, enqueued
from hpo.search.samplers import Delegating, as_ranked
from hpo.util.values import sign

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
    trials = all_trials(study, (TrialState.COMPLETE, TrialState.PRUNED))
    ranked = [as_ranked(t) for t in trials]
    done = [
        t
        for t in ranked
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    if not done:
        return None
    better = sign(study.direction)
    return max(done, key=lambda t: (better * t.value, -t.number))


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
        self._moves: dict[int, Move] = {}  # trial number -> its move, while the trial runs

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.inner}, share={self.share})"

    def plan(self, study: optuna.Study, trial: FrozenTrial) -> Move | None:
        """The move this trial makes, or None where it goes to the inner sampler."""
        if enqueued(trial) or len(study.directions) > 1:
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
            self._moves[trial.number] = move
            record.set_local_move(study, trial, move.describe())

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if trial.number in self._moves:
            return {}
        return super().infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if trial.number in self._moves:
            return {}
        return super().sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        move = self._moves.get(trial.number)
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
        self._moves.pop(trial.number, None)
        super().after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._seed = secrets.randbits(32)
        self._random.reseed_rng()
        super().reseed_rng()
