"""Create or resume a study and run its trials: objective, pruning, budget, failures, MLflow."""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from hpo import __version__, quiet
from hpo.config import Config
from hpo.data import TaskData, resolve_device
from hpo.diagnose import diagnose
from hpo.errors import UserError, first_line
from hpo.sampling import RankStoppedByValue
from hpo.seeds import aggregate, objective_value, seed_list
from hpo.spec import Param, Spec, default_spec_path, load_spec
from hpo.storage import (
    Patient,
    StorageLost,
    mask,
    open_storage,
    patient_storage,
    scrub,
    storage_url,
)
from hpo.tasks import get_task
from hpo.tasks.base import Task

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what --trials counts
Echo = Callable[[str], None]
MAX_CONSECUTIVE_FAILURES = 10  # a broken setup stops the run instead of failing forever
STORAGE_BACKOFF = (2, 4, 8, 16, 30)  # seconds between tries while the database is away
SECOND_OBJECTIVES = {"train_seconds": "minimize"}  # optional objectives after the metric


def parse_objectives(text: str) -> tuple[str, ...]:
    """'metric' or 'metric,train_seconds' -> names; a UserError names what is wrong."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    allowed = ", ".join(["metric", *(f"metric,{n}" for n in SECOND_OBJECTIVES)])
    if not names or names[0] != "metric" or any(n not in SECOND_OBJECTIVES for n in names[1:]):
        raise UserError(f"--objective must be one of {allowed}, got {text!r}")
    if len(set(names)) != len(names):
        raise UserError(f"--objective names an objective twice: {text!r}")
    return names


def directions_of(task: Task, objectives: tuple[str, ...]) -> list[str]:
    return [task.direction, *(SECOND_OBJECTIVES[n] for n in objectives[1:])]


def objective_names(task: Task, objectives: tuple[str, ...]) -> list[str]:
    """The objectives as shown and stored: 'metric' is the task's metric name."""
    return [task.metric, *objectives[1:]]


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best trial; in a multi-objective study the Pareto-front trial with the best metric
    (the first objective). ValueError if no trial is complete yet."""
    if len(study.directions) == 1:
        return study.best_trial
    front = study.best_trials
    if not front:
        raise ValueError("no complete trial yet")
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(front, key=lambda t: (sign * t.values[0], -t.number))


def pareto_front(study: optuna.Study) -> list[int]:
    """Trial numbers on the Pareto front (multi-objective studies; [] otherwise)."""
    if len(study.directions) == 1:
        return []
    return sorted(t.number for t in study.best_trials)


@dataclass
class Options:
    """What `hpo study` was asked to do; None means: take it from the spec or the environment."""

    trials: int = 20
    timeout: float | None = None  # seconds: no trial starts after them (see deadline)
    # time.time() after which no trial starts; `hpo study` sets it from --timeout at the start
    # of the command, so that one timeout bounds it and all of its --workers; None: from now
    deadline: float | None = None
    storage: str | None = None
    study_name: str | None = None
    tracking_uri: str | None = None
    sampler: str | None = None
    pruner: str | None = None
    epochs: int | None = None
    device: str = "auto"
    seed: int | None = None
    spec: str | None = None
    trial_timeout: float | None = None
    seeds: int | None = None  # seeds each config is trained under
    objectives: tuple[str, ...] = ("metric",)  # ("metric", "train_seconds"): multi-objective
    original: bool = True
    baselines: bool = True
    tracking: bool = True
    data: dict[str, Any] = field(default_factory=dict)  # data setting overrides
    # a worker of `--workers K`: it trains; the parent process sums up (original, plots)
    worker: bool = False


@dataclass
class Summary:
    """How the study stands after this run."""

    study_name: str
    task: str
    metric: str
    direction: str
    finished: int
    trials: int
    best: dict[str, Any] | None
    baselines: dict[str, Any]
    original: dict[str, Any] | None
    stopped: str = ""  # why this run ended early, if it did
    objectives: list[str] = field(default_factory=list)  # metric (+ train_seconds)
    pareto: list[dict[str, Any]] = field(default_factory=list)  # multi-objective front
    # the best trial the time budget stopped, where it had already beaten every complete one
    cut: dict[str, Any] | None = None
    seeds: int = 1  # seeds every config is trained under: per-seed statistics mean something


class SurplusTrial(Exception):
    """Other workers already started enough trials to fill the budget."""


_DATA: dict[tuple, TaskData] = {}  # built once per process, kept on the device


def load_data(task: Task, settings: dict[str, Any], device: torch.device) -> TaskData:
    key = (task.name, tuple(sorted(settings.items())), str(device))
    if key not in _DATA:
        _DATA[key] = task.load(settings, device)
    return _DATA[key]


def resolve_spec(task_name: str, options: Options, echo: Echo | None = None) -> Spec:
    """The spec file (default studies/<task>.toml) with CLI options laid over it. A flag wins
    over the spec, never in silence: where the spec's [space] fixes or searches `epochs`,
    --epochs replaces it and `echo` says so in one line."""
    spec = load_spec(options.spec or default_spec_path(task_name))
    if spec.task != task_name:
        raise UserError(f"spec {spec.path} is for task {spec.task!r}, not {task_name!r}")
    changes: dict[str, Any] = {}
    for name in ("sampler", "pruner", "epochs", "trial_timeout", "seeds"):
        if getattr(options, name) is not None:
            changes[name] = getattr(options, name)
    space = spec.space.get("epochs")
    if options.epochs is not None and space is not None:
        changes["space"] = {**spec.space, "epochs": Param("epochs", value=options.epochs)}
        if echo is not None:
            echo(
                f"note: --epochs {options.epochs} replaces the spec's [space] epochs "
                f"({_describe(space)}): every trial trains {options.epochs} epoch(s)"
            )
    return replace(spec, data={**spec.data, **options.data}, **changes)


def _describe(param: Param) -> str:
    if param.fixed:
        return f"= {param.value}"
    if param.choices is not None:
        return f"one of {', '.join(map(str, param.choices))}"
    return f"searched in {param.low:g}..{param.high:g}"


def make_sampler(name: str, seed: int | None, n_startup: int) -> optuna.samplers.BaseSampler:
    """TPE (multivariate, grouped for the conditional space, constant liar for parallel
    workers, and seeing a pruned trial ranked by the last value it reported: hpo.sampling),
    random, CMA-ES or GP."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    if name == "tpe":  # pruned trials ranked by their last value, not below every complete one
        return RankStoppedByValue(
            optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=n_startup,
                multivariate=True,
                group=True,
                constant_liar=True,
            )
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=seed, n_startup_trials=n_startup, warn_independent_sampling=False
        )
    return optuna.samplers.GPSampler(
        seed=seed, n_startup_trials=n_startup, warn_independent_sampling=False
    )


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """Hyperband over epochs (default), median, or none."""
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def create_or_load(
    storage: Any,
    name: str,
    task: Task,
    spec: Spec,
    settings: dict,
    sampler,
    pruner,
    objectives: tuple[str, ...] = ("metric",),
) -> tuple[optuna.Study, bool]:
    """(study, created_here). Exactly one of many simultaneous workers creates the study:
    the storage's unique study name decides."""
    directions = directions_of(task, objectives)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=directions,
            sampler=sampler,
            pruner=pruner,
        )
        study.set_user_attr("task", task.name)
        study.set_user_attr("metric", task.metric)
        study.set_user_attr("objectives", objective_names(task, objectives))
        study.set_user_attr("data", settings)
        study.set_user_attr("original_epochs", spec.original_epochs)  # for `hpo diagnose`
        study.set_user_attr("hpo_version", __version__)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    attrs = _wait_for_attr(study, "data")
    if attrs.get("task") not in (None, task.name):
        raise UserError(
            f"study {name!r} belongs to task {attrs['task']!r}; choose another --study-name"
        )
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        names = ",".join(attrs.get("objectives") or [task.metric])
        raise UserError(
            f"study {name!r} was created with objective(s) {names} ({', '.join(found)}); "
            "choose another --study-name or the same --objective"
        )
    if attrs.get("data") not in (None, settings):
        raise UserError(
            f"study {name!r} was created with data settings {attrs['data']}, not {settings}; "
            "choose another --study-name"
        )
    return study, False


def _wait_for_attr(study: optuna.Study, key: str, seconds: float = 30.0) -> dict[str, Any]:
    """The study's user attrs once `key` is set by the creating worker (bounded wait)."""
    deadline = time.monotonic() + seconds
    while True:
        attrs = study.user_attrs
        if key in attrs or time.monotonic() > deadline:
            return attrs
        time.sleep(0.2)


def counts(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials of the study, all workers together."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return len(trials) - running, running


def trial_record(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as the JSON report shows it (and the summary)."""
    attrs = t.user_attrs
    return {
        "number": t.number,
        "state": t.state.name,
        "value": _finite(t.values[0]) if t.values else None,  # the metric (first objective)
        "values": [_finite(v) for v in t.values] if t.values else None,
        "params": attrs.get("params", t.params),  # the whole config, flattened
        "searched": t.params,  # what the sampler chose
        "metrics": attrs.get("metrics", {}),
        "reason": attrs.get("fail_reason") or attrs.get("prune_reason") or "",
        "diagnosis": attrs.get("diagnosis"),
        "seconds": t.duration.total_seconds() if t.duration else None,
        "retry_of": optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t),
    }


TIMEOUT_REASON = "trial_timeout"  # how the reason of a trial stopped by its time budget starts


def cut_short(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best trial stopped by its time budget (pruned, with the value of its last epoch)
    if it beats every complete trial: a candidate `best_trial` does not see, which a larger
    `--trial-timeout` (or a GPU) would let finish. None otherwise, and in multi-objective
    studies."""
    if len(study.directions) != 1:
        return None
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    cut = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if t.user_attrs.get("prune_reason", "").startswith(TIMEOUT_REASON)
        and t.value is not None
        and math.isfinite(t.value)
    ]
    if not cut:
        return None
    top = max(cut, key=lambda t: (sign * t.value, -t.number))
    try:
        if sign * top.value <= sign * study.best_value:
            return None
    except ValueError:  # no complete trial: the cut one is all there is
        pass
    return top


def scaling_note(asked: Config, used: Config, n_train: int) -> str:
    """One line: how min_steps_per_epoch changed a config for `n_train` images."""
    return (
        f"note: {n_train} training images: batch {asked.batch_size} -> {used.batch_size} and "
        f"lr {asked.lr:g} -> {used.lr:g}, so that an epoch keeps >= "
        f"{asked.min_steps_per_epoch} steps (min_steps_per_epoch)"
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class Objective:
    """Trains one trial's config; reports epochs to the pruner, MLflow and the console."""

    def __init__(self, ctx: Runner) -> None:
        self.ctx = ctx

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        from hpo.space import suggest
        from hpo.train import OutOfTime, Trainer, TrainingError

        ctx = self.ctx
        ctx.current = trial._trial_id
        state, reason, metrics = "FAIL", "", {}
        history: list[dict[str, float]] = []
        run_id = None
        t0 = time.monotonic()
        try:
            ctx.check_surplus(trial)
            try:
                config = suggest(trial, ctx.spec, ctx.base)
            except ValueError as e:
                raise TrainingError(f"invalid config: {e}") from None
            seeds = seed_list(ctx.options.seed, ctx.spec.seeds)
            trial.set_user_attr("params", config.params())
            trial.set_user_attr("config", config.to_dict())  # `hpo train --trial N` rebuilds it
            trial.set_user_attr("seeds", seeds)
            run_id = ctx.start_trial_run(trial, config, seeds)
            ctx.progress.trial_start(trial.number, ctx.budget, ctx.finished_so_far() + 1, config)

            deadline = t0 + ctx.spec.trial_timeout if ctx.spec.trial_timeout else None
            task, metric = ctx.task, ctx.task.metric
            # K seeds in lockstep, so the pruner sees each epoch's mean over seeds
            trainers = [
                Trainer(
                    config,
                    ctx.data,
                    device=ctx.device,
                    seed=s,
                    deadline=deadline,
                    augment=task.augment,
                )
                for s in seeds
            ]
            ctx.note_scaling(config, trainers[0].config)
            try:
                for epoch in range(1, config.epochs + 1):
                    per_seed = [t.run_epoch() for t in trainers]
                    metrics = aggregate(per_seed, metric, task.direction, task.solved)
                    history.append(metrics)
                    ctx.log_epoch(run_id, epoch, metrics, per_seed)
                    ctx.progress.epoch(trial.number, epoch, config.epochs, metrics)
                    ctx.estimate_on_cpu(config, time.monotonic() - t0)
                    if not ctx.multi:  # Optuna prunes single-objective studies only
                        trial.report(objective_value(metrics, metric, ctx.spec.objective), epoch)
                        if trial.should_prune():
                            raise optuna.TrialPruned(
                                f"pruned by {ctx.spec.pruner} at epoch {epoch}"
                            )
            except OutOfTime as e:  # pruned with its reason (valueless if no epoch finished)
                raise optuna.TrialPruned(
                    f"{TIMEOUT_REASON} {ctx.spec.trial_timeout:g} s: {e}"
                ) from e
            trial.set_user_attr("seed_metrics", [t.history[-1] for t in trainers])
            # training time of all seeds and epochs (evaluation excluded): the cost objective
            seconds = sum(h["epoch_seconds"] for t in trainers for h in t.history)
            metrics = metrics | {"train_seconds": seconds}
            state = "COMPLETE"
            value = objective_value(metrics, metric, ctx.spec.objective)
            return (value, seconds) if ctx.multi else value
        except optuna.TrialPruned as e:
            state, reason = "PRUNED", str(e)
            trial.set_user_attr("prune_reason", reason)
            raise
        except KeyboardInterrupt:
            reason = "interrupted by the user (Ctrl-C)"
            trial.set_user_attr("fail_reason", reason)
            raise
        except torch.OutOfMemoryError as e:
            reason = f"out of memory: {str(e).splitlines()[0][:200]}"
            trial.set_user_attr("fail_reason", reason)
            raise TrainingError(reason) from None
        except Exception as e:  # recorded with its reason; the study goes on
            reason = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
            trial.set_user_attr("fail_reason", reason)
            raise
        finally:
            label = diagnose(history, reason)
            trial.set_user_attr("metrics", metrics)
            trial.set_user_attr("diagnosis", label)
            ctx.end_trial_run(run_id, state, reason, metrics, label)


class Runner:
    """Holds what every trial of one `hpo study` process shares."""

    def __init__(self, task: Task, spec: Spec, options: Options, echo: Echo) -> None:
        self.task, self.spec, self.options, self.echo = task, spec, options, echo
        try:
            self.device = resolve_device(options.device)
            self.settings = task.settings(spec.data)
        except ValueError as e:
            raise UserError(str(e)) from None
        if (
            spec.trial_timeout
            and spec.trial_timeout_device == "cuda"
            and self.device.type != "cuda"
            and options.trial_timeout is None
        ):
            echo(
                f"note: the spec's trial_timeout ({spec.trial_timeout:g} s) is sized for a GPU "
                "and is off on this device; --trial-timeout sets one"
            )
            spec = self.spec = replace(spec, trial_timeout=None)
        self.base = Config.from_dict(spec.base) if spec.base else Config()
        self.budget = options.trials
        self.multi = len(options.objectives) > 1
        self.study_name = options.study_name or task.name
        self.tracker = None
        self.parent_id: str | None = None
        self.progress = Progress(self.budget, task.metric, echo)
        self.study: optuna.Study | None = None
        self.patient: Patient | None = None  # retries the RDB storage's calls (outages)
        self.data: TaskData | None = None
        self.current: int | None = None  # storage id of this worker's running trial
        self.baseline_metrics: dict[str, dict[str, float]] = {}
        self.estimated = False  # the CPU duration estimate is printed once per process
        self.scaling_noted = False  # likewise the small-data batch note

    def note_scaling(self, asked: Config, used: Config) -> None:
        """Once per process: say that small data made a trial's batch (and SGD lr) smaller."""
        if self.scaling_noted or used.batch_size == asked.batch_size:
            return
        self.scaling_noted = True
        self.echo(scaling_note(asked, used, len(self.data.train)))

    def finished_so_far(self) -> int:
        return counts(self.study)[0]

    def estimate_on_cpu(self, config: Config, seconds: float) -> None:
        """Once per process on a CPU, after the first epoch: the study's duration at this pace."""
        if self.device.type != "cpu" or self.estimated:
            return
        self.estimated = True
        left = max(self.budget - self.finished_so_far(), 1)  # includes the running trial
        if self.progress.tty:  # end the live epoch line that the estimate would otherwise join
            print(file=sys.stderr)
        self.echo(cpu_estimate(seconds, config.epochs, left, "subset" in self.task.defaults))

    def check_surplus(self, trial: optuna.Trial) -> None:
        """Only when workers raced past the budget check: a trial beyond N is not trained."""
        ahead = [
            t
            for t in self.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
            if t.number < trial.number
        ]
        if len(ahead) >= self.budget:
            raise SurplusTrial(f"budget of {self.budget} already taken by other workers")

    # MLflow (failures here never fail a trial: they are reported once and logging goes on)
    def _safe(self, what: str, fn: Callable[[], Any]) -> Any:
        if self.tracker is None:
            return None
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - tracking must not kill the study
            self.echo(f"warning: MLflow {what} failed: {str(e).splitlines()[0][:200]}")
            return None

    def start_trial_run(self, trial: optuna.Trial, config: Config, seeds: list[int]) -> str | None:
        def go() -> str:
            run_id = self.tracker.start_run(
                self.parent_id,
                f"trial-{trial.number}",
                {
                    "kind": "trial",
                    "task": self.task.name,
                    "trial_number": trial.number,
                    "optuna_state": "RUNNING",
                    "device": self.device.type,
                    "seeds": ",".join(map(str, seeds)),
                },
            )
            self.tracker.log_params(run_id, config.params())
            return run_id

        return self._safe("start run", go)

    def log_epoch(
        self, run_id: str | None, epoch: int, metrics: dict[str, float], per_seed: list[dict]
    ) -> None:
        if not run_id:
            return
        both = dict(metrics)
        if len(per_seed) > 1:  # per-seed curves next to the mean
            for k, m in enumerate(per_seed):
                both[f"{self.task.metric}_seed{k}"] = m[self.task.metric]
                both[f"train_loss_seed{k}"] = m["train_loss"]
        self._safe("log metrics", lambda: self.tracker.log_metrics(run_id, both, epoch))

    def gain_over_baseline(self, metrics: dict[str, float]) -> float | None:
        """How much better than the first baseline the run is (> 0 = better), in the metric."""
        value = metrics.get(self.task.metric)
        if value is None or not self.baseline_metrics:
            return None
        reference = next(iter(self.baseline_metrics.values())).get(self.task.metric)
        if reference is None:
            return None
        return value - reference if self.task.direction == "maximize" else reference - value

    def end_trial_run(
        self, run_id: str | None, state: str, reason: str, metrics: dict, label: str
    ) -> None:
        if not run_id:
            return

        def go() -> None:
            tags = {"optuna_state": state, "diagnosis": label}
            if reason:
                tags["reason"] = reason
            self.tracker.set_tags(run_id, tags)
            gain = self.gain_over_baseline(metrics)
            if gain is not None:
                self.tracker.log_metrics(run_id, {"gain_over_baseline": gain})
            self.tracker.end_run(run_id, state)

        self._safe("end run", go)

    # the run
    def open(self) -> None:
        """Open storage, create or load the study, set up MLflow."""
        o, spec = self.options, self.spec
        # every storage call rides out a database restart (hpo.storage.Patient)
        storage, self.patient = patient_storage(open_storage(o.storage), self.echo)
        from hpo.workers import worker_index

        # workers of one study must not sample alike: each offsets the sampler seed
        seed = None if o.seed is None else o.seed + worker_index()
        if self.multi and spec.sampler not in ("tpe", "random"):
            raise UserError(
                f"sampler {spec.sampler} optimises one objective; with --objective "
                f"{','.join(o.objectives)} use --sampler tpe (multi-objective TPE) or random"
            )
        if o.tracking:  # before the study exists: an unreachable server stops the run here
            from hpo.tracking import Tracker

            self.tracker = Tracker(o.tracking_uri, self.study_name)
        sampler = make_sampler(spec.sampler, seed, spec.n_startup_trials)
        pruner = make_pruner(spec.pruner, spec.epochs)
        self.study, created = create_or_load(
            storage,
            self.study_name,
            self.task,
            spec,
            self.settings,
            sampler,
            pruner,
            o.objectives,
        )
        if created and spec.enqueue:  # the spec's known-good point is trial 0
            self.study.enqueue_trial(spec.enqueue, skip_if_exists=True)
        if self.tracker is not None:
            self.parent_id = self._parent_run(created)

    def _parent_run(self, created: bool) -> str:
        key = "mlflow_parent_run_id"
        if not created:
            found = _wait_for_attr(self.study, key).get(key)
            if found:
                return found
        run_id = self.tracker.create_parent(
            self.study_name, self.task.name, {"metric": self.task.metric}
        )
        self.study.set_user_attr(key, run_id)
        return run_id

    def optimize(self) -> str:
        """Run trials until the study holds `budget` finished ones; returns why it stopped."""
        from sqlalchemy.exc import DBAPIError, OperationalError

        deadline = self.deadline()
        failures, outage = 0, 0
        while True:
            try:
                stop, failed = self._step(deadline)
            except Exception as e:
                # past the Patient's retry window (Optuna may have turned it into another error)
                lost = self.patient.lost if self.patient is not None else None
                if lost is None and isinstance(e, StorageLost):
                    lost = str(e)
                if lost is not None:
                    raise UserError(
                        f"lost the study storage {mask(storage_url(self.options.storage))}: "
                        f"{lost}; rerun the same command to resume (the running trial is "
                        "failed by the heartbeat and run again)"
                    ) from None
                if not isinstance(e, OperationalError | DBAPIError):
                    raise
                # The database went away (restart, network): finished trials are stored; wait
                # with backoff, then go on. A trial cut off now is failed by the heartbeat.
                outage += 1
                if outage > len(STORAGE_BACKOFF):
                    reason = scrub(first_line(e), storage_url(self.options.storage))
                    raise UserError(f"lost the study storage: {reason}") from None
                wait = STORAGE_BACKOFF[outage - 1]
                reason = scrub(first_line(e), storage_url(self.options.storage))
                self.echo(f"storage unreachable ({reason}); retrying in {wait} s")
                time.sleep(wait)
                continue
            if outage:
                self.echo("storage reachable again; going on")
                outage = 0
            if stop is not None:
                return stop
            if failed is None:
                continue
            failures = failures + 1 if failed else 0
            if failures >= MAX_CONSECUTIVE_FAILURES:
                return f"{failures} trials in a row failed (last: {failed})"

    def _step(self, deadline: float | None) -> tuple[str | None, str | None]:
        """One trial (or one wait). Returns (why to stop or None, failure reason / '' / None)."""
        finished, running = counts(self.study)
        if finished >= self.budget:
            return "", None
        if deadline is not None and time.monotonic() > deadline:
            return f"--timeout {self.options.timeout:g} s reached", None
        if finished + running >= self.budget:
            # Other workers hold the rest of the budget: wait for them, and fail stale trials
            # of dead workers (heartbeat) so that their retries can run.
            optuna.storages.fail_stale_trials(self.study)
            time.sleep(1.0)
            return None, None
        self.current = None
        self.study.optimize(
            Objective(self),
            n_trials=1,
            timeout=None if deadline is None else max(deadline - time.monotonic(), 0.1),
            catch=(Exception,),
            gc_after_trial=False,
        )
        if self.current is None:
            return None, None
        mine = self.study._storage.get_trial(self.current)
        self.progress.trial_end(trial_record(mine), self._best())
        if mine.state != TrialState.FAIL:
            return None, ""
        reason = mine.user_attrs.get("fail_reason", "unknown")
        return None, (None if "already taken by other workers" in reason else reason)

    def deadline(self) -> float | None:
        """time.monotonic() after which no trial starts (from --timeout), or None."""
        o = self.options
        if o.deadline is not None:
            return time.monotonic() + (o.deadline - time.time())
        return time.monotonic() + o.timeout if o.timeout else None

    def _best(self) -> dict[str, Any] | None:
        try:
            return trial_record(best_trial(self.study))
        except ValueError:  # no complete trial yet
            return None

    def baselines(self) -> dict[str, dict[str, float]]:
        """The scikit-learn baselines (cached on disk, stored in the study, logged once)."""
        from hpo import references

        base = self.study.user_attrs.get("baselines")
        if self.options.baselines and base is None:
            data = load_data(self.task, self.settings, self.device)
            base = references.baselines(self.task, self.settings, data, self.echo)
            self.study.set_user_attr("baselines", base)
            for name, metrics in base.items():
                self._safe(
                    "log baseline",
                    lambda n=name, m=metrics: self.tracker.log_reference(
                        self.parent_id, "baseline", n, m
                    ),
                )
        self.baseline_metrics = base or {}
        return self.baseline_metrics

    def references(self) -> tuple[dict, dict | None]:
        """Baselines and the replayed original, computed or taken from the cache, stored in
        the study so that `hpo report` can show them."""
        from hpo import references

        base = self.baselines()
        original = self.study.user_attrs.get("original")
        if self.options.original and original is None:
            data = load_data(self.task, self.settings, self.device)
            original = references.replay_original(
                self.task, self.settings, data, self.device, self.spec.original_epochs, self.echo
            )
            original["diagnosis"] = diagnose(original["history"], original["reason"])
            self.study.set_user_attr("original", original)
            self._safe(
                "log original",
                lambda: self.tracker.log_reference(
                    self.parent_id,
                    "original",
                    self.task.name,
                    original["metrics"],
                    original["params"],
                    {"diagnosis": original["diagnosis"]},
                ),
            )
        return base, original

    def log_plots(self) -> None:
        """Study plots as PNG artifacts on the parent run."""
        if self.tracker is None or not self.parent_id:
            return
        import tempfile

        from hpo.plots import plots

        with tempfile.TemporaryDirectory() as tmp:
            paths = plots(self.study, tmp)
            self._safe("plots", lambda: self.tracker.log_files(self.parent_id, paths))

    def summary(self, stopped: str, sum_up: bool = True) -> Summary:
        """How the study stands. `sum_up` (once per study: the single process, or the parent
        of --workers) also replays the original and logs the plots; a worker does neither."""
        if sum_up:
            base, original = self.references()
            self.log_plots()
        else:
            base = self.study.user_attrs.get("baselines") or {}
            original = self.study.user_attrs.get("original")
        finished, _ = counts(self.study)
        best = self._best()
        front = set(pareto_front(self.study))
        cut = cut_short(self.study)
        if self.tracker is not None and self.parent_id and best:
            self._safe(
                "parent run",
                lambda: self.tracker.log_metrics(
                    self.parent_id, {f"best_{self.task.metric}": best["value"]}
                ),
            )
        return Summary(
            self.study_name,
            self.task.name,
            self.task.metric,
            self.task.direction,
            finished,
            self.budget,
            best,
            base,
            original,
            stopped,
            objective_names(self.task, self.options.objectives),
            [trial_record(t) for t in self.study.get_trials(deepcopy=False) if t.number in front],
            cut=trial_record(cut) | {"epochs": len(cut.intermediate_values)} if cut else None,
            seeds=self.spec.seeds,
        )


def run(task_name: str, options: Options, echo: Echo | None = None) -> Summary:
    """Create or resume the study for `task_name` and run it to `options.trials` finished."""
    echo = echo or (lambda s: print(s, file=sys.stderr, flush=True))
    # Optuna would log each failed trial with a traceback; our own line gives the reason.
    optuna.logging.set_verbosity(quiet.optuna_level())
    if options.trials < 1:
        raise UserError("--trials must be at least 1")
    task = get_task(task_name)
    spec = resolve_spec(task_name, options, echo)
    runner = Runner(task, spec, options, echo)
    runner.open()
    finished, _ = counts(runner.study)
    echo(
        f"study {runner.study_name!r} (task {task.name}: "
        + ", ".join(
            f"{n}, {d}"
            for n, d in zip(
                objective_names(task, options.objectives),
                directions_of(task, options.objectives),
                strict=True,
            )
        )
        + ") in "
        f"{mask(storage_url(options.storage))}: {finished}/{runner.budget} trials finished"
        + (f"; MLflow {runner.tracker.uri}" if runner.tracker else "")
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
            f"sampler {spec.sampler}, "
            + ("no pruning (multi-objective)" if runner.multi else f"pruner {spec.pruner}")
        )
        runner.baselines()  # first, so that every trial can log its gain over the baseline
    stopped = runner.optimize() if finished < runner.budget else ""
    return runner.summary(stopped, sum_up=not options.worker)


def summarize(task_name: str, options: Options, echo: Echo | None = None) -> Summary:
    """The parent of `--workers K`, after its workers stopped: the study's summary (original
    replay and plots included, once), without training a trial."""
    echo = echo or (lambda s: print(s, file=sys.stderr, flush=True))
    optuna.logging.set_verbosity(quiet.optuna_level())
    task = get_task(task_name)
    runner = Runner(task, resolve_spec(task_name, options), options, echo)
    runner.open()
    finished, _ = counts(runner.study)
    deadline = runner.deadline()
    stopped = ""
    if finished < runner.budget and deadline is not None and time.monotonic() >= deadline:
        stopped = f"--timeout {options.timeout:g} s reached"
    return runner.summary(stopped)


def cpu_estimate(first_epoch_s: float, epochs: int, trials_left: int, subset: bool) -> str:
    """One line: trial and study duration if every trial ran all epochs like the first one."""
    trial = first_epoch_s * epochs
    hints = ["--subset 0.1 (a tenth of the training images)"] if subset else []
    hints += [f"fewer --epochs (now {epochs})", "fewer --trials"]
    return (
        f"CPU estimate: epoch 1 took {_duration(first_epoch_s)}, so a {epochs}-epoch trial takes "
        f"~{_duration(trial)} and the {trials_left} trial(s) left up to ~"
        f"{_duration(trial * trials_left)} (less where trials are pruned); to go faster: "
        + ", ".join(hints)
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class Progress:
    """Live progress on stderr: trial k/N, the epoch, the best so far."""

    def __init__(self, budget: int, metric: str, echo: Echo) -> None:
        self.budget, self.metric, self.echo = budget, metric, echo
        self.tty = sys.stderr.isatty()

    def trial_start(self, number: int, budget: int, k: int, config: Config) -> None:
        conv = "-".join(map(str, config.conv_channels)) or "none"
        dense = "-".join(map(str, config.dense_units)) or "none"
        self.echo(
            f"trial {number} ({k}/{budget}): conv {conv} dense {dense} {config.activation} "
            f"{config.optimizer} lr {config.lr:.2g} bs {config.batch_size}"
            f"{' bn' if config.batch_norm else ''}{f' l1 {config.l1:.2g}' if config.l1 else ''}"
        )

    def epoch(self, number: int, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        line = (
            f"  epoch {epoch}/{epochs}: {self.metric} {metrics[self.metric]:.4g} "
            f"train_loss {metrics['train_loss']:.4g} ({metrics['images_per_second']:.0f} img/s)"
        )
        if self.tty:
            print("\r" + line.ljust(78), end="", file=sys.stderr, flush=True)
        else:
            self.echo(line)

    def trial_end(self, record: dict[str, Any], best: dict[str, Any] | None) -> None:
        if self.tty:
            print("\r" + " " * 78 + "\r", end="", file=sys.stderr, flush=True)
        value = record["metrics"].get(self.metric)
        shown = f"{self.metric} {value:.4g}" if value is not None else "no metric"
        line = f"trial {record['number']} {record['state']}: {shown}"
        if record["seconds"] is not None:
            line += f" in {record['seconds']:.1f} s"
        if record["reason"]:
            line += f" ({record['reason']})"
        if best is not None:
            line += f"; best so far {best['value']:.4g} (trial {best['number']})"
        self.echo(line)
