"""Creating or loading a study, so that exactly one of many simultaneous workers creates it and
the others join it as it was made (its task, objectives and data settings)."""

from __future__ import annotations

from typing import Any

import optuna

from hpo import __version__
from hpo.search import record
from hpo.search.spec import Spec
from hpo.study.options import directions_of, objective_names
from hpo.tasks.base import Task
from hpo.util.errors import UserError


def create_or_load(
    storage: Any,
    name: str,
    task: Task,
    spec: Spec,
    settings: dict,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    objectives: tuple[str, ...] = ("metric",),
    data_dir: str | None = None,
    data_path: str | None = None,
    original_config: dict | None = None,
) -> tuple[optuna.Study, bool]:
    """(study, created_here). The storage's unique study name decides which worker creates it;
    one that joins checks that the study is the same kind of study it was asked for."""
    directions = directions_of(task, objectives)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=directions,
            sampler=sampler,
            pruner=pruner,
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        _check_joined(study, name, task, directions, settings)
        return study, False
    info = record.StudyInfo(
        task=task.name,
        metric=task.metric,
        objectives=objective_names(task, objectives),
        data=settings,
        original_epochs=spec.original_epochs,  # for `hpo diagnose`
        seed_objective=spec.objective,  # for `hpo train`'s finalists
        hpo_version=__version__,
        data_dir=data_dir,
        data_path=data_path,
        original_config=original_config,
    )
    record.write_info(study, info)
    return study, True


def _check_joined(
    study: optuna.Study, name: str, task: Task, directions: list[str], settings: dict
) -> None:
    """A UserError (one line) where an existing study was made for something else."""
    info = record.wait_for_info(study)
    if info.task not in (None, task.name):
        raise UserError(
            f"study {name!r} belongs to task {info.task!r}; choose another --study-name"
        )
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        names = ",".join(info.objectives or [task.metric])
        raise UserError(
            f"study {name!r} was created with objective(s) {names} ({', '.join(found)}); "
            "choose another --study-name or the same --objective"
        )
    if info.data not in (None, settings):
        raise UserError(
            f"study {name!r} was created with data settings {info.data}, not {settings}; "
            "choose another --study-name"
        )
