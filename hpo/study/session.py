"""The two entry points of `hpo study`: run (create or resume a study and train its trials) and
summarize (the parent of --workers K, once its workers stopped)."""

from __future__ import annotations

import sys
import time

import optuna

from hpo.study.options import Echo, Options, Summary, directions_of, objective_names, resolve_spec
from hpo.study.queries import counts
from hpo.study.runner import Runner, load_data, timeout_text
from hpo.study.storage import mask, storage_url
from hpo.tasks import get_task
from hpo.util import logs as quiet
from hpo.util.outcomes import Stop


def _echo(echo: Echo | None) -> Echo:
    return echo or (lambda s: print(s, file=sys.stderr, flush=True))


def run(task_name: str, options: Options, echo: Echo | None = None) -> Summary:
    """Create or resume the study for `task_name` and run it to `options.trials` finished."""
    echo = _echo(echo)
    # Optuna would log each failed trial with a traceback; our own line gives the reason.
    optuna.logging.set_verbosity(quiet.optuna_level())
    task = get_task(task_name)
    spec = resolve_spec(task_name, options, echo)
    runner = Runner(task, spec, options, echo)
    runner.open()
    finished, _ = counts(runner.study)
    objectives = zip(
        objective_names(task, options.objectives),
        directions_of(task, options.objectives),
        strict=True,
    )
    echo(
        f"study {runner.study_name!r} (task {task.name}: "
        + ", ".join(f"{n}, {d}" for n, d in objectives)
        + f") in {mask(storage_url(options.storage))}: {finished}/{runner.budget} trials "
        "finished" + (f"; MLflow {runner.log.uri}" if runner.log.uri else "")
    )
    if finished < runner.budget:
        if runner.device.type == "cpu":  # up front, before a long data load or baseline
            echo("no GPU in use: trials run on the CPU")
        t0 = time.monotonic()
        data = load_data(task, runner.settings, runner.device)
        runner.data = data
        c, h, w = data.image_shape
        echo(
            f"data: {len(data.train)} train / {len(data.val)} val images {c}x{h}x{w} on "
            f"{runner.device} ({time.monotonic() - t0:.1f} s); {spec.epochs} epochs per trial, "
            f"sampler {spec.sampler}"
            + (f" + local moves {spec.local_moves:g}, " if spec.local_moves else ", ")
            + ("no pruning (multi-objective)" if runner.multi else f"pruner {spec.pruner}")
        )
        runner.baselines()  # first, so that every trial can log its gain over the baseline
    stop = runner.optimize() if finished < runner.budget else (Stop.NONE, "")
    return runner.summary(stop, sum_up=not options.worker)


def summarize(task_name: str, options: Options, echo: Echo | None = None) -> Summary:
    """The parent of `--workers K`, after its workers stopped: the study's summary (original
    replay and plots included, once), without training a trial."""
    echo = _echo(echo)
    optuna.logging.set_verbosity(quiet.optuna_level())
    task = get_task(task_name)
    runner = Runner(task, resolve_spec(task_name, options), options, echo)
    runner.open()
    finished, _ = counts(runner.study)
    deadline = runner.deadline()
    stop = (Stop.NONE, "")
    if finished < runner.budget and deadline is not None and time.monotonic() >= deadline:
        stop = (Stop.TIMEOUT, timeout_text(options.timeout))
    return runner.summary(stop)
