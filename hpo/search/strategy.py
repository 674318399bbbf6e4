"""The search strategy a spec names: its sampler (tpe, random, cmaes, gp; TPE seeing stopped
trials by their values, and a share of local moves if the spec asks) and its pruner (hyperband,
asked at its rungs only and, given the metric's noise, never on a difference the validation set
cannot tell; median; none)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import optuna

from hpo.search.moves import LocalMoves
from hpo.search.samplers import RandomShare, RankStoppedByValue
from hpo.search.spec import PRUNERS, SAMPLERS


def _tpe(seed: int | None, n_startup: int) -> optuna.samplers.BaseSampler:
    """Multivariate TPE, grouped for the conditional space, constant liar for parallel workers,
    seeing a pruned trial ranked by the last value it reported (hpo.search.samplers)."""
    return RankStoppedByValue(
        optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=n_startup,
            multivariate=True,
            group=True,
            constant_liar=True,
        )
    )


# One factory per name of hpo.search.spec's SAMPLERS and PRUNERS (the CLI's choices and the
# spec's validation are drawn from the same names); each takes (seed, n_startup) / epochs.
SAMPLER_FACTORIES: dict[str, Callable[[int | None, int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "random": lambda seed, n_startup: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda seed, n_startup: optuna.samplers.CmaEsSampler(
        seed=seed, n_startup_trials=n_startup, warn_independent_sampling=False
    ),
    "gp": lambda seed, n_startup: optuna.samplers.GPSampler(
        seed=seed, n_startup_trials=n_startup, warn_independent_sampling=False
    ),
}


# A noise model: the standard error of a metric's value on the validation set, given the value.
Noise = Callable[[float], float]
NOISE_Z = 2.0  # standard errors: a trial this close to the cut-off is not told apart from it


def binomial_se(n_val: int) -> Noise:
    """An accuracy's standard error on `n_val` validation examples: sqrt(p (1 - p) / n)."""
    return lambda p: math.sqrt(max(p * (1.0 - p), 0.0) / max(n_val, 1))


def top_share_cut(values: list[float], reduction_factor: int, maximize: bool) -> float:
    """The value a trial needs to be among the top 1 / reduction_factor of `values` (at least
    the best one): successive halving's rule, as Optuna applies it."""
    keep = max(len(values) // reduction_factor, 1)
    return sorted(values, reverse=maximize)[keep - 1]


class HyperbandAtRungs(optuna.pruners.HyperbandPruner):
    """Optuna's Hyperband, which looks only at the epochs where one of its brackets can stop a
    trial: min_resource x reduction_factor^k (1, 3, 9, ... for ours). At any other epoch its
    answer is "go on" in every bracket, but Optuna found that out by reading the running trial
    back from the storage (~6 ms an epoch on SQLite, benchmarks/trial_overhead.py). Still a
    HyperbandPruner, so samplers go on seeing one bracket's trials (optuna.pruners). Nor does
    it stop a trial at its last epoch (where the epochs are a rung, 3 or 9): Optuna's brackets
    did, and in a 30-trial box study of 3 epochs a trial, 7 trials that had trained all 3 were
    recorded as pruned, beside the 5 that completed.

    Nor does it stop a trial at a rung from which the survivors would not get reduction_factor
    times the epochs: only rungs up to max_resource / reduction_factor stop trials, as in
    Hyperband itself (Li et al. 2018: a bracket's last halving is at R / eta, its survivors
    train to R). Optuna's brackets also halve at 3 of 6 epochs and at 1 of 2, keeping a third
    of the trials for one or three more epochs: with `--epochs 2` and 3 workers on box, 12 of 20
    trials were stopped at epoch 1 and the study ended at val R2 0.955 (the drill of
    benchmarks/scale_out_drill.sh).

    Given `noise` (the metric's standard error on the validation set), it also does not stop a
    trial that the validation set cannot tell from the ones that go on: one within NOISE_Z
    standard errors (of the difference) of the top 1 / reduction_factor of all trials at that
    epoch. On pixel at
    epoch 1 nearly every trial reads 0.5 +- 0.03 (1,000 validation images: one standard error
    is 0.016), and Hyperband stopped the slow starters that go on to 1.0 by epoch 3-6 on that
    noise: in an unseeded 20-trial study 11 of 20 trials were pruned at epoch 1 or 3 and the
    study ended at 0.70 (benchmarks/pixel_rungs.py measures it on random draws)."""

    def __init__(
        self,
        min_resource: int,
        max_resource: int,
        reduction_factor: int = 3,
        noise: Noise | None = None,
    ) -> None:
        super().__init__(
            min_resource=min_resource,
            max_resource=max_resource,
            reduction_factor=reduction_factor,
        )
        self._first, self._factor, self._last = min_resource, reduction_factor, max_resource
        self._noise = noise

    def at_rung(self, step: int) -> bool:
        """Whether `step` is min_resource x reduction_factor^k for some k >= 0."""
        at = self._first
        while at < step:
            at *= self._factor
        return at == step

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is not None and (not self.at_rung(step) or step * self._factor > self._last):
            return False  # not a rung; or one whose survivors would not train eta x as long
        if not super().prune(study, trial):
            return False
        return self._noise is None or self._told_apart(study, trial, step)

    def _told_apart(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, step: int) -> bool:
        """Whether `trial`'s value at `step` is clearly (NOISE_Z standard errors) worse than
        the top share of every trial's value there."""
        value = trial.intermediate_values[step]
        values = [
            t.intermediate_values[step]
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and step in t.intermediate_values
        ] + [value]
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        cut = top_share_cut(values, self._factor, maximize)
        gap = cut - value if maximize else value - cut
        # both are estimates on the validation set: the standard error of their difference
        return gap > NOISE_Z * math.hypot(self._noise(cut), self._noise(value))


PRUNER_FACTORIES: dict[str, Callable[[int, Noise | None], optuna.pruners.BasePruner]] = {
    "hyperband": lambda epochs, noise: HyperbandAtRungs(1, epochs, noise=noise),
    "median": lambda epochs, noise: optuna.pruners.MedianPruner(
        n_startup_trials=5, n_warmup_steps=1
    ),
    "none": lambda epochs, noise: optuna.pruners.NopPruner(),
}
if tuple(SAMPLER_FACTORIES) != SAMPLERS or tuple(PRUNER_FACTORIES) != PRUNERS:
    raise ImportError(
        "hpo.search.spec's SAMPLERS/PRUNERS and the factories here name different sets"
    )


def make_sampler(
    name: str,
    seed: int | None,
    n_startup: int,
    local_moves: float = 0.0,
    random_share: float = 0.0,
) -> optuna.samplers.BaseSampler:
    """The sampler registered under `name` (hpo.search.spec.SAMPLERS); with `random_share` > 0,
    that share of the trials are drawn at random (hpo.search.samplers.RandomShare); with
    `local_moves` > 0, that share are local moves around the best trial so far
    (hpo.search.moves)."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    sampler = SAMPLER_FACTORIES[name](seed, n_startup)
    if random_share > 0 and name != "random":
        sampler = RandomShare(sampler, random_share, seed)
    return LocalMoves(sampler, local_moves, seed) if local_moves > 0 else sampler


def make_pruner(
    name: str, max_epochs: int, noise: Noise | None = None
) -> optuna.pruners.BasePruner:
    """The pruner registered under `name` (hpo.search.spec.PRUNERS): Hyperband over epochs (not
    stopping on differences within the metric's `noise`, where given), median, or none."""
    return PRUNER_FACTORIES[name](max_epochs, noise)
