"""The `hpo` command line: thin commands that parse, call one function, and print.

Heavy libraries (torch, optuna, mlflow, sklearn) are imported inside the commands, so that
`hpo --help` answers at once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from enum import StrEnum
from typing import Annotated, Any

import typer

from hpo.errors import UserError
from hpo.spec import PRUNERS, SAMPLERS

# typer may vendor its own click: take the exception classes from wherever BadParameter lives
_click = sys.modules[typer.BadParameter.__module__]

ENV_HELP = (
    "Environment: HPO_STORAGE (study storage URL), MLFLOW_TRACKING_URI (MLflow store), "
    "HPO_DATA_DIR (data sets), HPO_CACHE_DIR (cached baselines and original replays), "
    "HPO_LOG_LEVEL (DEBUG, INFO, ...: the libraries' logs and warnings, hidden by default)."
)
app = typer.Typer(
    help="Hyperparameter optimisation for deep learning: Optuna studies of PyTorch models, "
    "compared in MLflow. " + ENV_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


# the choices, from hpo.spec's registry (which the spec validation and the factories use too)
Sampler = StrEnum("Sampler", {name: name for name in SAMPLERS})
Pruner = StrEnum("Pruner", {name: name for name in PRUNERS})


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class AnswerFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


Storage = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="HPO_STORAGE",
        help="Optuna storage URL; several workers share one (e.g. postgresql+psycopg2://...). "
        "'memory' keeps it in this process only. [default: sqlite:///hpo.db]",
        show_default=False,
    ),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI. An http(s) server must answer within 5 s when the command "
        "starts, else it stops with one line and exit code 2. [default: sqlite:///mlflow.db]",
        show_default=False,
    ),
]
StudyName = Annotated[
    str | None, typer.Option("--study-name", help="Study name. [default: the task name]")
]


def echo_err(text: str) -> None:
    typer.echo(text, err=True)


def parse_data(items: list[str]) -> dict[str, Any]:
    """`--data KEY=VALUE` items -> settings; values parse as JSON (224 -> int), else text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--data takes KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


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
def study(
    task: Annotated[str, typer.Argument(help="Task to study (see `hpo tasks`).")],
    trials: Annotated[
        int,
        typer.Option(
            help="Total finished trials (complete + pruned) the study should hold, "
            "all workers together; a rerun resumes up to it."
        ),
    ] = 20,
    timeout: Annotated[
        float | None,
        typer.Option(
            help="Start no trial after this many seconds from the command's start (all "
            "--workers together); a running trial finishes, then the summary is printed."
        ),
    ] = None,
    storage: Storage = None,
    study_name: StudyName = None,
    tracking_uri: TrackingUri = None,
    sampler: Annotated[
        Sampler | None, typer.Option(help="Sampler. [default: from the spec, else tpe]")
    ] = None,
    pruner: Annotated[
        Pruner | None, typer.Option(help="Pruner. [default: from the spec, else hyperband]")
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Epochs per trial (the pruner's maximum); it also replaces a spec's [space] "
            "epochs, saying so in one line. [default: from the spec]",
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (CUDA if present, else CPU) | cpu | cuda | cuda:N.")
    ] = "auto",
    seed: Annotated[
        int | None, typer.Option(help="Seed for the sampler and the trials' training.")
    ] = None,
    spec: Annotated[
        str | None, typer.Option(help="Study spec TOML. [default: studies/<task>.toml]")
    ] = None,
    trial_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds one trial may run before it is stopped and "
            "recorded as pruned. [default: from the spec]"
        ),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Train every config under K seeds (the same K for all trials) and judge it by "
            "the mean (or, spec objective = 'worst', the worst seed). [default: from the spec, "
            "else 1]",
        ),
    ] = None,
    objective: Annotated[
        str,
        typer.Option(
            help="'metric', or 'metric,train_seconds' for a multi-objective study (the metric "
            "and the training seconds of each trial; multi-objective TPE, no pruning): "
            "`hpo report` then shows the Pareto front.",
        ),
    ] = "metric",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes on this machine, sharing the study storage (CPU threads "
            "are split between them). More machines: run the same command on each.",
        ),
    ] = 1,
    original: Annotated[
        bool,
        typer.Option(
            "--original/--no-original",
            help="Replay the user's original config (cached across studies).",
        ),
    ] = True,
    baseline: Annotated[
        bool, typer.Option("--baseline/--no-baseline", help="Fit the scikit-learn baseline.")
    ] = True,
    subset: Annotated[
        float | None,
        typer.Option(
            help="Train on this fraction of the training split (tasks with a `subset` data "
            "setting, e.g. cifar10 on a CPU)."
        ),
    ] = None,
    data_dir: Annotated[
        str | None,
        typer.Option(
            "--data-dir",
            envvar="HPO_DATA_DIR",
            help="Where downloaded data sets live. [default: ~/.cache/hpo/data]",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            metavar="KEY=VALUE",
            help="Override a data setting, e.g. --data image_size=32.",
        ),
    ] = None,
) -> None:
    """Create or resume a study and run it until it holds --trials finished trials."""
    from hpo.outcomes import Stop
    from hpo.study.options import Options
    from hpo.workers import DEADLINE_ENV, WORKER_ENV

    overrides = parse_data(data or [])
    if subset is not None:  # the task checks its range (one line, exit 2)
        overrides["subset"] = subset
    worker = WORKER_ENV in os.environ
    if not worker:  # at once, before the slow imports, and once, not once per worker
        from hpo.tracking import check_server
        from hpo.tracking import tracking_uri as resolve_tracking

        check_server(resolve_tracking(tracking_uri))
    deadline = None
    if worker and os.environ.get(DEADLINE_ENV):  # the parent's deadline, not our own
        deadline = float(os.environ[DEADLINE_ENV])
    elif timeout is not None:
        deadline = (_STARTED[0] if _STARTED else time.time()) + timeout
    if data_dir:
        os.environ["HPO_DATA_DIR"] = data_dir  # read by the tasks that download data
    options = Options(
        trials=trials,
        timeout=timeout,
        storage=storage,
        study_name=study_name,
        tracking_uri=tracking_uri,
        sampler=sampler.value if sampler else None,
        pruner=pruner.value if pruner else None,
        epochs=epochs,
        device=device,
        seed=seed,
        spec=spec,
        trial_timeout=trial_timeout,
        seeds=seeds,
        objectives=objective,
        original=original,
        baselines=baseline,
        data=overrides,
        deadline=deadline,
        worker=worker,
    )
    code = 0
    if workers > 1:  # before torch and optuna are imported here: the workers start at once
        from hpo.storage import storage_url
        from hpo.workers import spawn

        def load() -> None:  # the summary's imports, while the workers train
            import mlflow  # noqa: F401

            import hpo.study.runner  # noqa: F401

        code = spawn(_ARGV, workers, storage_url(storage), deadline, meanwhile=load)
        if code not in (0, 1):  # 1: a worker stopped on failing trials; the summary still helps
            raise typer.Exit(code)
    from hpo.study import runner

    if workers > 1:  # every worker has stopped: the parent only sums up what they filled
        summary = runner.summarize(task, options, echo_err)
    else:
        summary = runner.run(task, options, echo_err)
    if options.worker:  # a worker of --workers K: the parent sums up, once
        if summary.stop is Stop.FAILURES:
            echo_err(f"worker {os.environ[WORKER_ENV]} stopped early: {summary.stopped}")
            raise typer.Exit(1)
        return
    typer.echo(format_summary(summary))
    if summary.stopped:
        echo_err(f"stopped early: {summary.stopped}")
        if summary.stop is Stop.FAILURES:
            raise typer.Exit(1)
    if workers > 1 and code:
        raise typer.Exit(code)


def format_summary(s: Any) -> str:
    """The end-of-study summary: best trial beside the baseline and the original config."""
    lines = [
        f"study {s.study_name}: {s.finished}/{s.trials} trials finished ({s.metric}, "
        f"{s.direction})"
    ]
    if s.best:
        label = _label(s.best.get("diagnosis"))
        lines.append(
            f"  best      trial {s.best['number']}: {_metrics(s.best['metrics'], s.seeds)}{label}"
        )
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in s.best["searched"].items())
        lines.append(f"            {params}")
    else:
        lines.append("  best      no complete trial yet")
    if s.cut:
        c = s.cut
        lines.append(
            f"  cut short trial {c['number']}: {s.metric} {_fmt(c['value'])} after {c['epochs']} "
            f"epoch(s), then pruned ({c['reason']})"
        )
        lines.append(
            "            it beat every complete trial: a larger --trial-timeout (or a GPU) "
            "lets such a trial finish"
        )
    if len(s.objectives) > 1:
        from hpo.report import front_lines

        lines.append(f"  Pareto front ({', '.join(s.objectives)}), {len(s.pareto)} trial(s):")
        lines += [f"            {line}" for line in front_lines(s.objectives, s.pareto)]
    for name, metrics in s.baselines.items():
        lines.append(f"  baseline  {name}: {_metrics(metrics)}")
    if s.original:
        o = s.original
        how = f"{o['epochs']}/{o['of_epochs']} epochs" + (
            f", {o['status']}: {o['reason']}" if o["status"] != "ok" else ""
        )
        how += f", {o['diagnosis']}" if o.get("diagnosis") not in (None, "ok") else ""
        lines.append(f"  original  {_metrics(o['metrics'])} ({how})")
    return "\n".join(lines)


PER_SEED = ("_std", "_worst")  # with success_rate: statistics over a config's seeds
DIAGNOSTIC = ("_over_chance", "_pred_spread")  # inputs of the diagnosis label, shown as it


def _metrics(m: dict[str, float], seeds: int = 1) -> str:
    """The validation metrics of one line; the per-seed statistics only where the study
    trains every config under more than one seed (a single seed's success_rate 0, std 0 and
    worst = mean read as failures and tell nothing)."""
    keys = [k for k in m if k.startswith("val_") and k != "val_loss"] or list(m)
    keys = [k for k in keys if not k.endswith(DIAGNOSTIC)]
    if seeds > 1:
        keys += ["success_rate"] if "success_rate" in m else []
    else:
        keys = [k for k in keys if not k.endswith(PER_SEED) and k != "success_rate"]
    return ", ".join(f"{k} {_fmt(m[k])}" for k in keys)


def _label(diagnosis: str | None) -> str:
    """The failure label of a run, where it failed ('' for ok)."""
    return f" ({diagnosis})" if diagnosis not in (None, "ok") else ""


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


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
) -> None:
    """Retrain the selected config on train + validation, evaluate it once on the test split,
    log the model to MLflow and register it under the study's name."""
    from hpo.train import retrain_and_register

    if sum([best, trial is not None, original]) > 1:
        raise UserError("choose one of --best, --trial N, --original")
    final = retrain_and_register(
        task,
        study_name=study_name,
        storage=storage,
        tracking_uri=tracking_uri,
        trial=trial,
        original=original,
        device=device,
        seed=seed,
        echo=echo_err,
    )
    typer.echo(
        f"{final.source}: "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in final.test_metrics.items())
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
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            metavar="KEY=VALUE",
            help="Override a data setting of the study, e.g. --data image_size=64 (cheaper).",
        ),
    ] = None,
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
    tracking_uri: TrackingUri = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Start the MLflow UI on 127.0.0.1 over the same tracking store."""
    import subprocess

    from hpo.tracking import tracking_uri as resolve

    uri = resolve(tracking_uri)
    if uri.startswith("http"):
        raise UserError(f"{uri} is a tracking server already: open it in a browser")
    echo_err(f"MLflow UI for {uri} on http://127.0.0.1:{port} (Ctrl-C stops it)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    raise typer.Exit(subprocess.call([*command, "--host", "127.0.0.1", "--port", str(port)]))


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


_ARGV: list[str] = []  # the command line, for --workers to start its workers with
_STARTED: list[float] = []  # time.time() when main() began: --timeout counts from it


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors are one line on stderr and exit code 2, never a traceback."""
    _ARGV[:] = sys.argv[1:] if argv is None else argv
    _STARTED[:] = [time.time()]
    from hpo import quiet

    quiet.libraries()  # library warnings that tell the user nothing stay off the terminal
    from hpo.perf import tune_malloc

    tune_malloc()
    command = typer.main.get_command(app)
    # SIGTERM (docker stop, a scheduler) ends a run like Ctrl-C: the trial is recorded as failed
    signal.signal(signal.SIGTERM, _terminate)
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
