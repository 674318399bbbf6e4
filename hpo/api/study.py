"""`hpo.run` and `hpo.retrain`: a study and its selected model from Python, with the CLI's
arguments as keyword arguments of the same names (`--no-original` is original=False,
`--storage memory` is storage="memory"); errors are hpo.UserError, never a SystemExit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo.util.errors import UserError

LOG = logging.getLogger("hpo")  # progress lines; silence with logging.getLogger("hpo")


@dataclass(frozen=True)
class Best:
    """The study's best trial: its number, objective value, config and metrics."""

    number: int
    value: float
    config: Any  # hpo.train.config.Config
    metrics: dict[str, float]


@dataclass
class Result:
    """What a study holds after `run`: read from the study's storage, so it stays current."""

    study_name: str
    task: str  # the task's name, or the data set's path, as given to run()
    storage: str | None
    summary: Any = field(repr=False)  # hpo.study.options.Summary

    @property
    def best(self) -> Best | None:
        from hpo.train.config import Config

        b, config = self.summary.best, self.summary.best_config
        if not b or config is None:
            return None
        return Best(b["number"], b["value"], Config.from_dict(config), b["metrics"])

    @property
    def baseline(self) -> dict[str, dict[str, float]]:
        """{baseline name: its validation metrics}."""
        return dict(self.summary.baselines)

    @property
    def original(self) -> dict[str, float] | None:
        """The replayed original's final metrics (None: not replayed)."""
        return self.summary.original.metrics if self.summary.original else None

    def report(self):
        """The leaderboard of `hpo report`, a row a trial, as a pandas DataFrame."""
        import pandas as pd

        from hpo.report.table import build
        from hpo.study.queries import load

        rows = []
        for t in build(load(self.study_name, self.storage))["trials"]:
            flat = {k: v for k, v in t.items() if not isinstance(v, dict | list)}
            rows.append(flat | t.get("metrics", {}) | t.get("params", {}))
        return pd.DataFrame(rows)


def run(
    task: Any,
    *,
    trials: int = 20,
    progress: Callable[[str], None] | str | None = None,
    workers: int | str = 1,
    **options: Any,
) -> Result:
    """Create or resume a study and run it until it holds `trials` finished trials.

    `task`: a task's name ("box"), a data set's path ("./images", "rows.csv"), or a Task from
    hpo.Task.from_arrays. Every other keyword is a flag of `hpo study` under its own name
    (storage, study_name, tracking_uri, sampler, pruner, epochs, device, seed, spec, seeds,
    original, baseline, target, kind, data, model, original_model, ...). Progress lines go to
    `progress` (a callable); progress="bar" draws a tqdm bar of the trials (the default in a
    notebook) and sends the lines to the "hpo" logger at debug level; otherwise they go to the
    "hpo" logger at info level.

    >>> import hpo
    >>> result = hpo.run("box", trials=3, epochs=1, storage="memory", original=False)
    >>> result.best.value < result.baseline["linear_regression"]["val_mse"] * 100
    True
    """
    from hpo.study.options import Options
    from hpo.study.workers import run_study
    from hpo.util import logs

    logs.libraries()  # the libraries' warnings stay off, as on the command line
    arg, options = _task_arg(task, options)
    bar = _bar(progress, trials)
    echo = bar or progress or LOG.info
    if "baseline" in options:
        options["baselines"] = options.pop("baseline")
    if "objective" in options:
        options["objectives"] = options.pop("objective")
    if options.pop("subset", None) is not None:
        raise UserError("subset: give it as data={'subset': F}")
    try:
        opts = Options(trials=trials, **options)
    except TypeError as e:
        raise UserError(f"hpo.run: {e}") from None
    argv = _argv(arg, trials, options)
    try:
        summary, _ = run_study(arg, opts, str(workers), argv, echo)
    finally:
        if bar is not None:
            bar.close()
    return Result(summary.study_name, arg, opts.storage, summary)


def _bar(progress: Any, trials: int) -> Any:
    """The trials' progress bar where asked for ("bar"), or by default in a notebook."""
    from hpo.api.bar import Bar, in_notebook

    if progress == "bar" or (progress is None and in_notebook()):
        return Bar(trials, LOG)
    if isinstance(progress, str) or not (progress is None or callable(progress)):
        raise UserError(f"progress must be a callable, 'bar' or None, not {progress!r}")
    return None


def _task_arg(task: Any, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The task as `hpo study` takes it: a name or a path (a Task of a data set: its file)."""
    from hpo.tasks.base import Task

    if isinstance(task, Path):
        return str(task), options
    if isinstance(task, Task):
        if task.dataset is None or not Path(task.source).exists():
            raise UserError(
                f"task {task.name!r} is not a data set: register it under the hpo.tasks "
                "entry-point group and give its name"
            )
        return task.source, {"study_name": task.name, **options}
    if not isinstance(task, str):
        raise UserError(f"hpo.run takes a task's name, a path or an hpo.Task, not {task!r}")
    return task, options


def _argv(arg: str, trials: int, options: dict[str, Any]) -> list[str]:
    """The `hpo study` command line of the same study, for the processes of workers=K."""
    out = ["study", arg, "--trials", str(trials)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif key == "data":
            out += [item for k, v in value.items() for item in ("--data", f"{k}={v}")]
        elif key == "target":
            out += [item for t in value for item in ("--target", t)]
        elif value is not None:
            out += [flag, str(value)]
    return out


def retrain(
    result: Result | str,
    *,
    best: bool = False,
    trial: int | None = None,
    original: bool = False,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> Any:
    """Retrain the selected config (the best trial, trial N, or the original) on train +
    validation, evaluate it once on the test split and register it in MLflow (`hpo train`);
    returns hpo.final.retrain.Final (test_metrics, model_uri). `result`: a Result, or a
    study's task, name or path as `hpo train` takes it.

    >>> final = hpo.retrain(result, finalists=0)  # doctest: +SKIP
    """
    from hpo.final.retrain import retrain_and_register

    if isinstance(result, Result):
        options = {"study_name": result.study_name, "storage": result.storage, **options}
        result = result.task
    if best and (trial is not None or original):
        raise UserError("choose one of best, trial=N, original=True")
    return retrain_and_register(
        result, trial=trial, original=original, echo=progress or LOG.info, **options
    )
