"""The two entry points of `hpo study`: run (create or resume a study and train its trials) and
summarize (the parent of --workers K, once its workers stopped); both end with the study's
Summary: the best trial beside the baselines and the replayed original."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable

import optuna

from hpo.search import record
from hpo.search.space import suggest
from hpo.study.options import Echo, Options, Summary, directions_of, objective_names, resolve_spec
from hpo.study.progress import cpu_cost
from hpo.study.queries import best_trial, counts, cut_short, pareto_front, trial_record
from hpo.study.references import ensure_baselines, ensure_original
from hpo.study.runner import StudyRunner, timeout_text
from hpo.study.storage import storage_url
from hpo.study.task_of import open_task
from hpo.tasks import all_tasks, is_path
from hpo.tasks.base import Task
from hpo.train.cost import image_seconds
from hpo.train.data import resolve_device
from hpo.util import logs
from hpo.util.errors import UserError, masked
from hpo.util.outcomes import Stop

# Draws the study's plots into a folder (hpo.report.figures.plots): (study, folder, the
# original's per-epoch metrics) -> the files written. Given by the caller, which sits above.
Plots = Callable[[optuna.Study, str, list[dict[str, float]]], list[str]]


def open_task_of(arg: str, options: Options) -> tuple[Task, str | None]:
    """The task `hpo study ARG` studies (a data set's: where its data lies)."""
    return open_task(
        arg,
        storage=options.storage,
        study_name=options.study_name,
        target=tuple(options.target),
        kind=options.kind,
        skip_bad=options.skip_bad,
        data=options.data if is_path(arg) or arg not in all_tasks(warn=False) else None,
        original_config=options.original_config,
        original_model=options.original_model,
        cpu=_device_type(options.device) == "cpu",
    )


def _device_type(name: str) -> str:
    try:
        return resolve_device(name).type
    except (ValueError, RuntimeError) as e:
        raise UserError(str(e)) from None


def _echo(echo: Echo | None) -> Echo:
    return echo or (lambda s: print(s, file=sys.stderr, flush=True))


def run(
    task_name: str, options: Options, echo: Echo | None = None, plots: Plots | None = None
) -> Summary:
    """Create or resume the study for `task_name` and run it to `options.trials` finished."""
    echo = _echo(echo)
    # Optuna would log each failed trial with a traceback; our own line gives the reason.
    optuna.logging.set_verbosity(logs.optuna_level())
    task, data_path = open_task_of(task_name, options)
    if task.found and not options.worker:
        echo(f"data set: {task.found}")
    spec = resolve_spec(task, options, echo)
    runner = StudyRunner(task, spec, options, echo, data_path)
    runner.open()
    runner.timing.lap("start-up")
    finished, _ = counts(runner.study)
    objectives = zip(
        objective_names(task, options.objectives),
        directions_of(task, options.objectives),
        strict=True,
    )
    echo(
        f"study {runner.study_name!r} (task {task.name}: "
        + ", ".join(f"{n}, {d}" for n, d in objectives)
        + f") in {masked(storage_url(options.storage))}: {finished}/{runner.budget} trials "
        "finished" + (f"; MLflow {runner.log.uri}" if runner.log.uri else "")
    )
    if finished < runner.budget:
        if runner.device.type == "cpu":  # up front, before a long data load or baseline
            echo("no GPU in use: trials run on the CPU")
        t0 = time.monotonic()
        data = runner.load()
        _check_families(runner, data)
        runner.timing.lap("data")
        echo(
            f"data: {len(data.train)} train / {len(data.val)} val, {data.shape_text()} on "
            f"{runner.device} ({time.monotonic() - t0:.1f} s); {spec.epochs} epochs per trial, "
            f"sampler {spec.sampler}"
            + (f" + random share {spec.random_share:g}" if spec.random_share else "")
            + (f" + local moves {spec.local_moves:g}, " if spec.local_moves else ", ")
            + ("no pruning (multi-objective)" if runner.multi else f"pruner {spec.pruner}")
        )
        if runner.device.type == "cpu" and spec.trial_timeout_device == "cuda":
            _cost_on_cpu(runner, task.name, data)  # a study sized for a GPU: say so first
        baselines(runner)  # first, so that every trial can log its gain over the baseline
        runner.timing.lap("baseline")
    try:
        stop = runner.optimize() if finished < runner.budget else (Stop.NONE, "")
    except BaseException:  # Ctrl-C, a lost storage: first say what MLflow still lacks
        _flush(runner)
        raise
    runner.timing.lap("trials")
    return summary(runner, stop, sum_up=not options.worker, plots=plots)


def _check_families(runner: StudyRunner, data) -> None:
    """A user's own net (--model, --original-model) built and run on one batch, before any
    trial: one line naming its factory where it cannot be (hpo.train.family)."""
    original = runner.task.original if runner.options.original else None
    if not (runner.base.model or (original is not None and original.model)):
        return
    from hpo.train.data import to_float
    from hpo.train.family import check_family

    batch = to_float(data.train.x[:4])
    check_family(runner.base, batch, data.n_outputs)
    if original is not None:
        check_family(original, batch, data.n_outputs, "--original-model")


def _cost_on_cpu(runner: StudyRunner, task_name: str, data) -> None:
    """Before a study sized for a GPU starts on a CPU: its cost here, from its first trial's
    config (the spec's enqueued one, else its base) timed on a few batches, in one line."""
    spec = runner.spec
    config = runner.base
    if spec.enqueue:
        try:
            config = suggest(optuna.trial.FixedTrial(spec.enqueue), spec, runner.base)
        except (ValueError, KeyError):  # a searched knob the enqueued spec does not fix
            pass
    per_image = image_seconds(config, data, runner.device, runner.task.augment)
    if per_image is None:
        return
    line = cpu_cost(
        task_name,
        per_image,
        len(data.train),
        len(data.val),
        config.epochs,
        runner.budget - counts(runner.study)[0],
        "subset" in runner.task.defaults,
    )
    runner.echo(line)


def summarize(
    task_name: str, options: Options, echo: Echo | None = None, plots: Plots | None = None
) -> Summary:
    """The parent of `--workers K`, after its workers stopped: the study's summary (original
    replay and plots included, once), without training a trial."""
    echo = _echo(echo)
    optuna.logging.set_verbosity(logs.optuna_level())
    task, data_path = open_task_of(task_name, options)
    runner = StudyRunner(task, resolve_spec(task, options), options, echo, data_path)
    runner.timing.lap("workers")  # from the command's start: they were spawned, and ran
    runner.open()
    finished, _ = counts(runner.study)
    deadline = runner.deadline()
    stop = (Stop.NONE, "")
    if finished < runner.budget and deadline is not None and time.monotonic() >= deadline:
        stop = (Stop.TIMEOUT, timeout_text(options.timeout))
    return summary(runner, stop, plots=plots)


def baselines(runner: StudyRunner) -> dict[str, dict[str, float]]:
    """The study's baselines (fitted once), which each trial's gain is measured against."""
    found = ensure_baselines(
        runner.study,
        runner.task,
        runner.settings,
        runner.load,
        runner.log,
        runner.echo,
        fit=runner.options.baselines,
    )
    runner.log.baseline = found
    return found


def _time_up(runner: StudyRunner) -> bool:
    deadline = runner.deadline()
    return deadline is not None and time.monotonic() >= deadline


def summary(
    runner: StudyRunner,
    stop: tuple[Stop, str] = (Stop.NONE, ""),
    sum_up: bool = True,
    plots: Plots | None = None,
) -> Summary:
    """How the study stands. `sum_up` (once per study: the single process, or the parent of
    --workers) also replays the original and logs the plots; a worker does neither."""
    study, task = runner.study, runner.task
    original = record.original(study)
    if sum_up:
        base = baselines(runner)
        if runner.options.original and task.original is not None:
            original = ensure_original(
                study,
                task,
                runner.settings,
                runner.load,
                runner.device,
                runner.spec.original_epochs,
                runner.log,
                runner.echo,
                may_train=not _time_up(runner),
            )
        runner.timing.lap("original")
        if plots is not None and runner.log.parent_id is not None:
            with tempfile.TemporaryDirectory() as tmp:
                runner.log.files(plots(study, tmp, original.history if original else []))
    else:
        base = record.baselines(study) or {}
    best = runner.best()
    front = set(pareto_front(study))
    cut = cut_short(study)
    if best:
        runner.log.best(best["value"])
    _flush(runner)
    if sum_up:
        runner.log.finish()
        runner.timing.lap("summary")
    return Summary(
        runner.study_name,
        task.name,
        task.metric,
        task.direction,
        counts(study)[0],
        runner.budget,
        best,
        base,
        original,
        stop[1],
        stop[0],
        objective_names(task, runner.options.objectives),
        [trial_record(t) for t in study.get_trials(deepcopy=False) if t.number in front],
        cut=trial_record(cut) | {"epochs": len(cut.intermediate_values)} if cut else None,
        seeds=runner.spec.seeds,
        timing=runner.timing.line(_trials_since(study, runner.timing.started), runner.log.seconds),
        best_config=_config_of(study) if best else None,
    )


def _config_of(study: optuna.Study) -> dict | None:
    try:
        return record.TrialRecord.of(best_trial(study)).config
    except ValueError:
        return None


def _flush(runner: StudyRunner) -> None:
    """Send the trial runs that wait for MLflow; where it is still away, say how to later."""
    if waiting := runner.log.flush():
        task, name = runner.task.name, runner.study_name
        named = "" if name == task else f" --study-name {name}"
        runner.echo(
            f"MLflow: {waiting} trial run(s) not sent (its server does not answer); "
            f"`hpo report {task}{named} --to-mlflow` writes them once it does"
        )


def _trials_since(study: optuna.Study, started: float) -> dict[str, tuple[int, float]]:
    """{state: (trials, seconds)} of the trials that started after `started` (time.time())."""
    out: dict[str, tuple[int, float]] = {}
    for t in study.get_trials(deepcopy=False):
        if t.datetime_start is None or t.datetime_start.timestamp() < started or not t.duration:
            continue
        state = {"COMPLETE": "complete", "PRUNED": "pruned"}.get(t.state.name, "failed")
        n, seconds = out.get(state, (0, 0.0))
        out[state] = (n + 1, seconds + t.duration.total_seconds())
    return out
