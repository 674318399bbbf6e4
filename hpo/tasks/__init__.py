"""The registry of studied tasks: {name: Task}. Adding a task = one module + one studies/*.toml."""

from __future__ import annotations

from hpo.tasks import box, cifar10, pixel
from hpo.tasks.base import Task
from hpo.util.errors import UserError

TASKS: dict[str, Task] = {
    box.TASK.name: box.TASK,
    pixel.TASK.name: pixel.TASK,
    cifar10.TASK.name: cifar10.TASK,
}

__all__ = ["TASKS", "Task", "get_task"]


def get_task(name: str) -> Task:
    """The task called `name`, or a UserError listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
