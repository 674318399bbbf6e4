"""`hpo tasks`: what can be studied."""

from __future__ import annotations

import typer

from hpo.cli.app import app


@app.command()
def tasks() -> None:
    """List the tasks that can be studied, with their metric, direction and data sizes."""
    from hpo.tasks import TASKS

    for task in TASKS.values():
        sizes = task.sizes(task.settings())
        size = " / ".join(f"{v:,} {k.removeprefix('n_')}" for k, v in sizes.items())
        typer.echo(f"{task.name:8} {task.metric} ({task.direction}); {size}")
        typer.echo(f"{'':8} {task.summary}")
