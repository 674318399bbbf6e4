"""`hpo tasks`: what can be studied; `hpo tasks PATH`: what a data set was found to be."""

from __future__ import annotations

from typing import Annotated

import typer

from hpo.cli.app import Kind, SkipBad, Target, app


@app.command()
def tasks(
    path: Annotated[
        str | None,
        typer.Argument(
            help="A data set's path: say what it was found to be (kind, classes or targets, "
            "shape, splits, what was converted), without running anything.",
            show_default=False,
        ),
    ] = None,
    target: Target = None,
    kind: Kind = None,
    skip_bad: SkipBad = False,
) -> None:
    """List the tasks that can be studied (built-in and from installed plugins), with their
    metric, direction and data sizes; or, given a PATH, what that data set was found to be."""
    if path is not None:
        from hpo.study.task_of import from_path

        task, _ = from_path(
            path,
            "memory",
            None,
            tuple(target or ()),
            kind.value if kind else None,
            skip_bad,
            None,
            True,
        )
        typer.echo(task.found)
        return
    from hpo.tasks import all_tasks

    for task in all_tasks().values():
        sizes = task.sizes(task.settings())
        size = " / ".join(f"{v:,} {k.removeprefix('n_')}" for k, v in sizes.items())
        source = "" if task.source == "hpo" else f" [from {task.source}]"
        typer.echo(f"{task.name:8} {task.metric} ({task.direction}); {size}{source}")
        typer.echo(f"{'':8} {task.summary}")
