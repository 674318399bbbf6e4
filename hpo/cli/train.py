"""`hpo train`: retrain the chosen config, test it once, register it."""

from __future__ import annotations

from typing import Annotated

import typer

from hpo.cli.app import DataDir, Storage, StudyName, TrackingUri, app, echo_err
from hpo.util.errors import UserError


@app.command()
def train(
    task: Annotated[str, typer.Argument(help="Task whose study to select from.")],
    best: Annotated[
        bool, typer.Option("--best", help="Retrain the best trial (default).")
    ] = False,
    trial: Annotated[int | None, typer.Option(help="Retrain trial N instead.")] = None,
    original: Annotated[
        bool, typer.Option("--original", help="Retrain the user's original config instead.")
    ] = False,
    study_name: StudyName = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    finalists: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="With --best: first train the study's best K configs again under fresh seeds "
            "on the trials' own images, and retrain the one with the best mean (the best single "
            "trial is partly its seed's luck). 0: retrain the best trial as it is. [default: 3, "
            "when that costs at most a quarter of the study's trial time, else 0]",
        ),
    ] = None,
    data_dir: DataDir = None,
    finalist_seeds: Annotated[
        int, typer.Option(min=1, help="Fresh seeds each finalist is scored under.")
    ] = 2,
) -> None:
    """Retrain the selected config on train + validation, evaluate it once on the test split,
    log the model to MLflow and register it under the study's name. --best (the default)
    first rescores the best few trials under fresh seeds (--finalists); the scores are kept
    in the study, so a rerun reuses them."""
    from hpo.final.retrain import retrain_and_register
    from hpo.report.summary import fmt

    if sum([best, trial is not None, original]) > 1:
        raise UserError("choose one of --best, --trial N, --original")
    if finalists and (trial is not None or original):
        raise UserError("--finalists rescores the study's best: use it with --best")
    final = retrain_and_register(
        task,
        study_name=study_name,
        storage=storage,
        tracking_uri=tracking_uri,
        trial=trial,
        original=original,
        device=device,
        seed=seed,
        finalists=finalists,
        finalist_seeds=finalist_seeds,
        echo=echo_err,
        data_dir=data_dir,
    )
    typer.echo(
        f"{final.source}: "
        + ", ".join(f"{k} {fmt(v)}" for k, v in final.test_metrics.items())
        + f"; registered as {final.model_uri}"
    )
