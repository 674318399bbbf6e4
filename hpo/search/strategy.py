"""The search strategy a spec names: its sampler (tpe, random, cmaes, gp; TPE seeing stopped
trials by their values, and a share of local moves if the spec asks) and its pruner (hyperband,
asked at its rungs only; median; none)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna

from hpo.search.moves import LocalMoves
from hpo.search.samplers import RankStoppedByValue
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


class HyperbandAtRungs(optuna.pruners.HyperbandPruner):
    """Optuna's Hyperband, which looks only at the epochs where one of its brackets can stop a
    trial: min_resource x reduction_factor^k (1, 3, 9, ... for ours). At any other epoch its
    answer is "go on" in every bracket, but Optuna found that out by reading the running trial
    back from the storage (~6 ms an epoch on SQLite, benchmarks/trial_overhead.py). Still a
    HyperbandPruner, so samplers go on seeing one bracket's trials (optuna.pruners). Nor does
    it stop a trial at its last epoch (where the epochs are a rung, 3 or 9): Optuna's brackets
    did, and in a 30-trial box study of 3 epochs a trial, 7 trials that had trained all 3 were
    recorded as pruned, beside the 5 that completed."""

    def __init__(self, min_resource: int, max_resource: int, reduction_factor: int = 3) -> None:
        super().__init__(
            min_resource=min_resource,
            max_resource=max_resource,
            reduction_factor=reduction_factor,
        )
        self._first, self._factor, self._last = min_resource, reduction_factor, max_resource

    def at_rung(self, step: int) -> bool:
        """Whether `step` is min_resource x reduction_factor^k for some k >= 0."""
        at = self._first
        while at < step:
            at *= self._factor
        return at == step

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is not None and (not self.at_rung(step) or step >= self._last):
            return False  # not a rung; or the last epoch: the trial is done, and complete
        return super().prune(study, trial)


PRUNER_FACTORIES: dict[str, Callable[[int], optuna.pruners.BasePruner]] = {
    "hyperband": lambda epochs: HyperbandAtRungs(min_resource=1, max_resource=epochs),
    "median": lambda epochs: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    "none": lambda epochs: optuna.pruners.NopPruner(),
}
if tuple(SAMPLER_FACTORIES) != SAMPLERS or tuple(PRUNER_FACTORIES) != PRUNERS:
    raise ImportError(
        "hpo.search.spec's SAMPLERS/PRUNERS and the factories here name different sets"
    )


def make_sampler(
    name: str, seed: int | None, n_startup: int, local_moves: float = 0.0
) -> optuna.samplers.BaseSampler:
    """The sampler registered under `name` (hpo.search.spec.SAMPLERS); with `local_moves` > 0, that
    share of the trials are local moves around the best trial so far (hpo.search.samplers)."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    sampler = SAMPLER_FACTORIES[name](seed, n_startup)
    return LocalMoves(sampler, local_moves, seed) if local_moves > 0 else sampler


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """The pruner registered under `name` (hpo.search.spec.PRUNERS): Hyperband over epochs, median,
    or none."""
    return PRUNER_FACTORIES[name](max_epochs)
