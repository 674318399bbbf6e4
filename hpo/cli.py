"""The `hpo` command line: thin commands that parse, call one function, and print.

Heavy libraries (torch, optuna, mlflow, sklearn) are imported inside the commands, so that
`hpo --help` answers at once.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

import hpo.cli_study  # noqa: F401  (registers `hpo study`)
from hpo import interrupts
from hpo.cli_app import (
    ARGV,
    STARTED,
    AnswerFormat,
    DataItems,
    Format,
    Storage,
    StudyName,
    TrackingUri,
    _click,
    app,
    echo_err,
    parse_data,
)
from hpo.errors import UserError


@app.command()
def tasks() -> None:
    """List the tasks that can be studied, with their metric, direction and data sizes."""
    from hpo.tasks import TASKS

    for task in TASKS.values():
        sizes = task.sizes(task.settings())
        size = " / ".join(f"{v:,} {k.removeprefix('n_')}" for k, v in sizes.items())
        typer.echo(f"{task.name:8} {task.metric} ({task.direction}); {size}")
        typer.echo(f"{'':8} {task.summary}")


@app.command()
def report(
    task: Annotated[str, typer.Argument(help="Task whose study to show.")],
    study_name: StudyName = None,
    storage: Storage = None,
    format: Annotated[
        Format, typer.Option("--format", help="Output format (the JSON is a stable contract).")
    ] = Format.table,
    top: Annotated[int | None, typer.Option(help="Show only the best N trials.")] = None,
    plots: Annotated[
        str | None,
        typer.Option(
            "--plots",
            metavar="DIR",
            help="Also write optimisation history, parameter importances and parallel "
            "coordinates as PNG files into DIR and attach them to the study's MLflow run.",
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Print the study's leaderboard, with the baselines and the original config."""
    from hpo import report as report_mod
    from hpo.study import queries as study_queries
    from hpo.tasks import get_task

    get_task(task)
    loaded = study_queries.load(study_name or task, storage)
    typer.echo(report_mod.render(report_mod.build(loaded), format.value, top))
    if plots:
        from pathlib import Path

        from hpo.plots import plots as draw

        Path(plots).mkdir(parents=True, exist_ok=True)
        paths = draw(loaded, plots)
        parent = loaded.user_attrs.get("mlflow_parent_run_id")
        if parent:
            from hpo.tracking import Tracker

            Tracker(tracking_uri, loaded.study_name).log_files(parent, paths)
        echo_err(f"wrote {len(paths)} plot(s) to {plots}")


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
    finalist_seeds: Annotated[
        int, typer.Option(min=1, help="Fresh seeds each finalist is scored under.")
    ] = 2,
) -> None:
    """Retrain the selected config on train + validation, evaluate it once on the test split,
    log the model to MLflow and register it under the study's name. --best (the default)
    first rescores the best few trials under fresh seeds (--finalists); the scores are kept
    in the study, so a rerun reuses them."""
    from hpo.study.summary import fmt
    from hpo.train import retrain_and_register

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
    )
    typer.echo(
        f"{final.source}: "
        + ", ".join(f"{k} {fmt(v)}" for k, v in final.test_metrics.items())
        + f"; registered as {final.model_uri}"
    )


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
        typer.Option("--format", help="text, markdown to paste into an answer, or json."),
    ] = AnswerFormat.text,
) -> None:
    """Replay the original config over seeds, say whether that is the reported failure, and
    measure what fixes it: one change at a time from the original (screened on one seed,
    confirmed on K), a smallest set of changes that succeeds on K of K seeds, and the reverse
    from the study's best config."""
    from hpo import diagnose as diagnosis
    from hpo import diagnose_report

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
    )
    if tracking:
        run_id = diagnose_report.log_to_mlflow(result, storage, tracking_uri)
        echo_err(f"MLflow: run {run_id} (kind=diagnosis) of experiment {result['study']!r}")
    typer.echo(diagnose_report.render(result, format.value))


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
        int, typer.Option(help="Port on 127.0.0.1 for the MLflow server; 0 picks a free one.")
    ] = 5000,
) -> None:
    """Start MLflow's UI on 127.0.0.1 over the tracking store and print one line with the URL
    of the study's runs: MLflow's model-training view, the trials, baselines and the original
    in one flat table sorted by the metric (best first), with the metric, kind, Optuna state,
    diagnosis and the params that differ as columns (a shared view, the experiment tag
    mlflow.sharedViewState.hpo). Ctrl-C or SIGTERM stops the server and every process it
    started. With an http(s) tracking server, prints the study's URL there and exits."""
    from hpo import ui as ui_mod

    raise typer.Exit(ui_mod.run(study, tracking_uri, port, typer.echo, echo_err))


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors are one line on stderr and exit code 2, never a traceback."""
    ARGV[:] = sys.argv[1:] if argv is None else argv
    STARTED[:] = [time.time()]
    from hpo import quiet

    quiet.libraries()  # library warnings that tell the user nothing stay off the terminal
    from hpo.perf import tune_malloc

    tune_malloc()
    command = typer.main.get_command(app)
    # SIGTERM (docker stop, a scheduler) ends a run like Ctrl-C: the trial is recorded as
    # failed; neither lands in the middle of a store call
    interrupts.install()
    interrupted = (
        "hpo: interrupted; the running trial was recorded as failed. "
        "Run the same command again to resume."
    )
    try:
        # non-standalone: typer returns an exit code (130 for Ctrl-C) or raises for usage errors
        code = command.main(args=argv, prog_name="hpo", standalone_mode=False)
    except _click.NoArgsIsHelpError as e:  # `hpo` alone: the help, as --help
        typer.echo(e.ctx.get_help())
        return 0
    except _click.UsageError as e:
        echo_err(f"hpo: error: {e.format_message()}")
        return 2
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        echo_err(interrupted)
        return 130
    except UserError as e:
        echo_err(f"hpo: error: {e}")
        return 2
    if code == 130:
        echo_err(interrupted)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
