"""`hpo report`: the study's leaderboard, its JSON contract, its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hpo.cli.app import Format, Storage, StudyName, TrackingUri, app, echo_err
from hpo.util.errors import UserError


@app.command()
def report(
    task: Annotated[
        str, typer.Argument(help="Task whose study to show, or a study's name (a data set's).")
    ],
    study_name: StudyName = None,
    storage: Storage = None,
    format: Annotated[
        Format, typer.Option("--format", help="Output format (the JSON is a stable contract).")
    ] = Format.table,
    top: Annotated[int | None, typer.Option(min=1, help="Show only the best N trials.")] = None,
    all_columns: Annotated[
        bool,
        typer.Option(
            "--all-columns",
            help="Every metric and param as a column (the table is otherwise cut to 120 "
            "characters: rank, trial, state, the metric, seconds, a note and the params that "
            "differ, as many as fit). --format csv always has them all.",
        ),
    ] = False,
    plots: Annotated[
        str | None,
        typer.Option(
            "--plots",
            metavar="DIR",
            help="Also write optimisation history, parameter importances and parallel "
            "coordinates as PNG files into DIR and attach them to the study's MLflow run.",
        ),
    ] = None,
    to_mlflow: Annotated[
        bool,
        typer.Option(
            "--to-mlflow",
            help="Write to MLflow the trial runs it lacks (those a study could not send while "
            "its server was away) and end those a stopped worker left running, from what the "
            "study keeps; runs MLflow has are left as they are.",
        ),
    ] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Print the study's leaderboard, with the baselines and the original config."""
    from hpo.report import table as report_mod
    from hpo.study import queries as study_queries
    from hpo.tasks import all_tasks, get_task, is_path

    if is_path(task):
        from hpo.tasks.dataset.task import name_of

        task = name_of(task)  # a data set's study is named after it
    elif task not in all_tasks(warn=False) and study_name is None:
        try:  # a study's name (a data set's), else the unknown task's one line
            loaded = study_queries.load(task, storage)
        except UserError:
            get_task(task)
            raise
    loaded = study_queries.load(study_name or task, storage)
    typer.echo(report_mod.render(report_mod.build(loaded), format.value, top, all_columns))
    if plots:
        from hpo.report.figures import publish

        Path(plots).mkdir(parents=True, exist_ok=True)
        paths = publish(loaded, plots, tracking_uri)
        echo_err(f"wrote {len(paths)} plot(s) to {plots}")
    if to_mlflow:
        from hpo.report.to_mlflow import to_mlflow as send

        sent, uri = send(loaded, tracking_uri)
        echo_err(sent.line(uri))
