"""`hpo study`: the command, its options, and the worker processes of --workers K."""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer

from hpo.cli.app import (
    ARGV,
    STARTED,
    DataDir,
    DataItems,
    Kind,
    Pruner,
    Sampler,
    SkipBad,
    Storage,
    StudyName,
    Target,
    TrackingUri,
    app,
    echo_err,
    parse_data,
    task_from_spec,
)
from hpo.search.space import help_lines

KNOBS_HELP = (
    "Knobs a spec's [space] can search (hpo.search.space.KNOBS), in the order a trial draws "
    "them:\n\n\b\n" + "\n".join(help_lines())
)


@app.command(epilog=KNOBS_HELP)
def study(
    task: Annotated[
        str | None,
        typer.Argument(
            help="A task (see `hpo tasks`), a data set's path (an image folder, a .csv or "
            ".parquet table, an .npz: see `hpo tasks PATH`), or the name of a study made from "
            "one. [default: the --spec file's task or data]",
            show_default=False,
        ),
    ] = None,
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
            "--workers together); a trial still running then is stopped (pruned, its last "
            "value kept), then the summary is printed."
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
            help="Seconds of work one trial may take: on a CPU its CPU time over the "
            "machine's cores (other processes' load does not count; a wall-clock guard of 5x "
            "this x the workers stops a hung trial); on a GPU wall seconds from the end of its "
            "first epoch (which pays one-off costs such as CUDA's start-up, and may take 3x "
            "this on its own). A trial past it is stopped and recorded as pruned. [default: "
            "from the spec]"
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
        str,
        typer.Option(
            help="Worker processes on this machine, sharing the study storage: a number, or "
            "auto (one per GPU, 1 on a CPU). On a GPU machine each worker gets one GPU "
            "(CUDA_VISIBLE_DEVICES, round robin: 4 workers on 2 GPUs share them 2 each); on a "
            "CPU the threads are split between them. More machines: run the same command on "
            "each.",
        ),
    ] = "1",
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
    data_dir: DataDir = None,
    data: DataItems = None,
    target: Target = None,
    kind: Kind = None,
    skip_bad: SkipBad = False,
    original_config: Annotated[
        str | None,
        typer.Option(
            metavar="FILE.toml",
            help="The user's own net, as a TOML file of config fields (conv_channels = [32, "
            '64, 128], optimizer = "adam", lr = 0.01, ...: hpo.train.config), replayed and '
            "cached beside the search as the original. [default: the task's own; a data set "
            "has none]",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            metavar="MODULE:FACTORY",
            help="Search your own PyTorch net: factory(input_shape, n_outputs, **knobs) -> "
            "nn.Module, from an importable module (the working directory is on the path) or "
            "a file (nets.py:make). Its knobs are its SPACE attribute (a spec's [space] table; "
            "`dropout` is searched where it takes one), searched with hpo's training knobs "
            "(optimizer, lr, batch, weight decay, epochs, ...) in place of hpo's architecture.",
        ),
    ] = None,
    original_model: Annotated[
        str | None,
        typer.Option(
            metavar="MODULE:FACTORY",
            help="Your own PyTorch net as the original, at its default knobs, trained with the "
            "optimiser settings of --original-config (else of the task's own original), "
            "replayed and cached beside the search.",
        ),
    ] = None,
) -> None:
    """Create or resume a study and run it until it holds --trials finished trials. The
    argument is a task, or a data set's path: then one line first says what was found (kind,
    classes or targets, shape, splits), the space is derived from the data (`hpo init PATH`
    writes it to edit), and the study records the data's digest."""
    from hpo.study.options import Options
    from hpo.study.workers import WORKER_ENV, inherited_deadline, run_study, worker_index

    task = task_from_spec(task, spec)
    overrides = parse_data(data or [])
    if subset is not None:  # the task checks its range (one line, exit 2)
        overrides["subset"] = subset
    worker = WORKER_ENV in os.environ
    if not worker:  # at once, before the slow imports, and once, not once per worker
        from hpo.track.server import check_server
        from hpo.track.server import tracking_uri as resolve_tracking

        check_server(resolve_tracking(tracking_uri))
    deadline = inherited_deadline() if worker else None  # a worker keeps its parent's
    if deadline is None and timeout is not None:
        deadline = (STARTED[0] if STARTED else time.time()) + timeout
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
        worker_index=worker_index(),
        started=STARTED[0] if STARTED else None,
        target=tuple(target or ()),
        kind=kind.value if kind else None,
        skip_bad=skip_bad,
        original_config=original_config,
        model=model,
        original_model=original_model,
    )
    if not worker and workers != "1":  # once, before the workers start: bad data is one line
        _say_found(task, options)
    _finish(*run_study(task, options, workers, ARGV, echo_err, _plots, _meanwhile))


def _finish(summary, code: int) -> None:
    """The study's summary on stdout (a worker has none), and the command's exit code."""
    if summary is not None:
        from hpo.report.summary import format_summary

        typer.echo(format_summary(summary))
        if summary.stopped:
            echo_err(f"stopped early: {summary.stopped}")
    if code:
        raise typer.Exit(code)


def _say_found(task: str, options) -> None:
    """A data set's one line (what was found), said by the parent before its workers start."""
    from hpo.study.session import open_task_of

    found = open_task_of(task, options)[0].found
    if found:
        echo_err(f"data set: {found}")


def _meanwhile() -> None:
    """The summary's imports, while the workers of --workers K train."""
    import mlflow  # noqa: F401

    import hpo.report.figures  # noqa: F401
    import hpo.study.session  # noqa: F401


def _plots(*args):
    """The study's plots (hpo.report.figures), drawn where the study sums up."""
    from hpo.report.figures import plots

    return plots(*args)
