"""The registry of studied tasks: the built-in ones (one module each), those other packages
register under the `hpo.tasks` entry-point group, and a user's own data set, which is one more
Task made from a path (hpo.tasks.dataset)."""

from __future__ import annotations

import sys
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from hpo.tasks import box, cifar10, pixel
from hpo.tasks.base import Task
from hpo.util.errors import UserError

TASKS: dict[str, Task] = {  # the built-in tasks
    box.TASK.name: box.TASK,
    pixel.TASK.name: pixel.TASK,
    cifar10.TASK.name: cifar10.TASK,
}
ENTRY_POINTS = "hpo.tasks"  # the group a plugin package registers its tasks under

__all__ = ["ENTRY_POINTS", "TASKS", "Task", "all_tasks", "get_task", "is_path"]


def is_path(arg: str) -> bool:
    """Whether a command's argument names a data set rather than a task: it has a path
    separator or a file suffix (`./box`, `data.csv`); a bare word is a task or a study."""
    return "/" in arg or "\\" in arg or bool(Path(arg).suffix) or arg in (".", "..")


@cache
def _plugins() -> tuple[dict[str, Task], tuple[str, ...]]:
    """({name: Task} from the installed plugins, the problems met, a line each). A plugin that
    fails to load, is not a Task, or takes a built-in's name is left out, saying so."""
    found: dict[str, Task] = {}
    problems: list[str] = []
    for ep in sorted(entry_points(group=ENTRY_POINTS), key=lambda e: e.name):
        package = ep.dist.name if ep.dist is not None else ep.value
        try:
            task = ep.load()
            task = task() if callable(task) and not isinstance(task, Task) else task
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break the others
            problems.append(f"plugin task {ep.name!r} ({package}) does not load: {e}")
            continue
        if not isinstance(task, Task):
            problems.append(f"plugin task {ep.name!r} ({package}) is not an hpo.Task")
        elif ep.name in TASKS or task.name in TASKS:
            problems.append(
                f"plugin task {ep.name!r} ({package}) takes the name of a built-in task: left out"
            )
        else:
            found[task.name] = task.with_source(package)
    return found, tuple(problems)


def all_tasks(warn: bool = True) -> dict[str, Task]:
    """The built-in tasks and the plugins' (`warn`: each plugin problem a line on stderr)."""
    plugins, problems = _plugins()
    if warn:
        for line in problems:
            print(f"hpo: warning: {line}", file=sys.stderr)
    return {**TASKS, **plugins}


def get_task(name: str) -> Task:
    """The task called `name`, or a UserError listing the known ones."""
    known = TASKS if name in TASKS else all_tasks()
    try:
        return known[name]
    except KeyError:
        raise UserError(
            f"unknown task {name!r}; known tasks: {', '.join(known)} (a data set is given as a "
            "path: ./folder, data.csv)"
        ) from None
