"""`hpo diagnose`: what happened to the original config, and what fixed it."""

from __future__ import annotations

from typing import Annotated

import typer

from hpo.cli.app import (
    AnswerFormat,
    DataDir,
    DataItems,
    Storage,
    StudyName,
    TrackingUri,
    app,
    echo_err,
    parse_data,
)
from hpo.util.errors import UserError


@app.command(name="diagnose")
def diagnose_cmd(
    task: Annotated[str, typer.Argument(help="Task whose original config to replay.")],
    original: Annotated[
        bool, typer.Option("--original", help="Replay the user's original config (required).")
    ] = False,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds (K) to judge each config on.")] = 3,
    epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Epoch budget of every run (the original's, capped). [default: the "
            "original_epochs of the study's spec, as in the study's replay (box: 10 of the "
            "user's 1,000), else its own]",
        ),
    ] = None,
    data: DataItems = None,
    data_dir: DataDir = None,
    screen_all: Annotated[
        bool,
        typer.Option(
            "--all", help="Screen every single change, not only until one fixes it on K seeds."
        ),
    ] = False,
    full_budget: Annotated[
        bool,
        typer.Option("--full-budget", help="Train every run to the budget, even once solved."),
    ] = False,
    reverse: Annotated[
        bool,
        typer.Option("--reverse/--no-reverse", help="Also put back one original value at a time."),
    ] = True,
    study_name: StudyName = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    tracking: Annotated[
        bool, typer.Option("--tracking/--no-tracking", help="Log the answer to MLflow.")
    ] = True,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option(help="First of the seeds (seed*1000 + k).")] = 0,
    format: Annotated[
        AnswerFormat,
        DataDir,
        typer.Option("--format", help="text, markdown to paste into an answer, or json."),
    ] = AnswerFormat.text,
) -> None:
    """Replay the original config over seeds, say whether that is the reported failure, and
    measure what fixes it: one change at a time from the original (screened on one seed,
    confirmed on K), a smallest set of changes that succeeds on K of K seeds, and the reverse
    from the study's best config."""
    from hpo.diagnose import answer as diagnose_report
    from hpo.diagnose import diagnosis

    if not original:
        raise UserError("hpo diagnose needs --original (what it replays)")
    result = diagnosis.run(
        task,
        seeds=seeds,
        study_name=study_name,
        storage=storage,
        epochs=epochs,
        device=device,
        base_seed=seed,
        echo=echo_err,
        data=parse_data(data or []),
        screen_all=screen_all,
        full_budget=full_budget,
        reverse=reverse,
        data_dir=data_dir,
    )
    if tracking:
        run_id = diagnose_report.log_to_mlflow(result, storage, tracking_uri)
        echo_err(f"MLflow: run {run_id} (kind=diagnosis) of experiment {result.study!r}")
    typer.echo(diagnose_report.render(result, format.value))
