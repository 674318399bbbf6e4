"""`hpo ui`: MLflow's UI on the study's runs."""

from __future__ import annotations

from typing import Annotated

import typer

from hpo.cli.app import TrackingUri, app, echo_err


@app.command()
def ui(
    study: Annotated[
        str | None,
        typer.Argument(
            help="Study (MLflow experiment) to open. [default: the one with the latest run]",
            show_default=False,
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
    port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, help="Port on 127.0.0.1 for the MLflow server; 0 picks a free one."
        ),
    ] = 5000,
) -> None:
    """Start MLflow's UI on 127.0.0.1 over the tracking store and print one line with the URL
    of the study's runs: MLflow's model-training view, the trials, baselines and the original
    in one flat table sorted by the metric (best first), with the metric, kind, Optuna state,
    diagnosis and the params that differ as columns (a shared view, the experiment tag
    mlflow.sharedViewState.hpo). Ctrl-C or SIGTERM stops the server and every process it
    started. With an http(s) tracking server, prints the study's URL there and exits."""
    from hpo.ui import view as ui_mod

    raise typer.Exit(ui_mod.run(study, tracking_uri, port, typer.echo, echo_err))
