"""Sampler and pruner factories (named by hpo.search.spec's registry), and creating or loading the
study so that exactly one of many simultaneous workers creates it."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna

from hpo import __version__
from hpo.search.samplers import LocalMoves, RankStoppedByValue
from hpo.search.spec import PRUNERS, SAMPLERS, Spec
from hpo.study.options import directions_of, objective_names
from hpo.tasks.base import Task
from hpo.util.errors import UserError


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


# The factories, one per name of hpo.search.spec's registry (SAMPLERS, PRUNERS: the CLI's choices and
# the spec's validation are drawn from the same names); each takes (seed, n_startup) / epochs.
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
    HyperbandPruner, so samplers go on seeing one bracket's trials (optuna.pruners)."""

    def __init__(self, min_resource: int, max_resource: int, reduction_factor: int = 3) -> None:
        super().__init__(
            min_resource=min_resource,
            max_resource=max_resource,
            reduction_factor=reduction_factor,
        )
        self._first, self._factor = min_resource, reduction_factor

    def at_rung(self, step: int) -> bool:
        """Whether `step` is min_resource x reduction_factor^k for some k >= 0."""
        at = self._first
        while at < step:
            at *= self._factor
        return at == step

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is not None and not self.at_rung(step):
            return False
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


def create_or_load(
    storage: Any,
    name: str,
    task: Task,
    spec: Spec,
    settings: dict,
    sampler,
    pruner,
    objectives: tuple[str, ...] = ("metric",),
) -> tuple[optuna.Study, bool]:
    """(study, created_here). Exactly one of many simultaneous workers creates the study:
    the storage's unique study name decides."""
    directions = directions_of(task, objectives)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=directions,
            sampler=sampler,
            pruner=pruner,
        )
        study.set_user_attr("task", task.name)
        study.set_user_attr("metric", task.metric)
        study.set_user_attr("objectives", objective_names(task, objectives))
        study.set_user_attr("data", settings)
        study.set_user_attr("original_epochs", spec.original_epochs)  # for `hpo diagnose`
        study.set_user_attr("seed_objective", spec.objective)  # for `hpo train`'s finalists
        study.set_user_attr("hpo_version", __version__)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    attrs = wait_for_attr(study, "data")
    if attrs.get("task") not in (None, task.name):
        raise UserError(
            f"study {name!r} belongs to task {attrs['task']!r}; choose another --study-name"
        )
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        names = ",".join(attrs.get("objectives") or [task.metric])
        raise UserError(
            f"study {name!r} was created with objective(s) {names} ({', '.join(found)}); "
            "choose another --study-name or the same --objective"
        )
    if attrs.get("data") not in (None, settings):
        raise UserError(
            f"study {name!r} was created with data settings {attrs['data']}, not {settings}; "
            "choose another --study-name"
        )
    return study, False


def wait_for_attr(study: optuna.Study, key: str, seconds: float = 30.0) -> dict[str, Any]:
    """The study's user attrs once `key` is set by the creating worker (bounded wait)."""
    deadline = time.monotonic() + seconds
    while True:
        attrs = study.user_attrs
        if key in attrs or time.monotonic() > deadline:
            return attrs
        time.sleep(0.2)
