"""Create or resume a study and run its trials: budget, deadline, failures in a row, storage
outages, the references (baselines, original) and the summary."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from sqlalchemy.exc import DBAPIError, OperationalError

from hpo.report.figures import plots
from hpo.search.spec import Spec
from hpo.study import references
from hpo.study.create import create_or_load, make_pruner, make_sampler, wait_for_attr
from hpo.study.objective import Objective
from hpo.study.options import (
    Options,
    Summary,
    objective_names,
    scaling_note,
)
from hpo.study.progress import Progress, cpu_estimate, time_left
from hpo.study.queries import (
    FINISHED,
    best_trial,
    counts,
    cut_short,
    pareto_front,
    trial_record,
)
from hpo.study.storage import (
    Patient,
    StorageLost,
    mask,
    open_storage,
    patient_storage,
    scrub,
    storage_url,
)
from hpo.study.workers import worker_index
from hpo.tasks.base import Task
from hpo.track.runs import StudyLog, Tracker
from hpo.train.config import Config
from hpo.train.data import TaskData, resolve_device
from hpo.train.labels import diagnose
from hpo.util.errors import UserError, first_line
from hpo.util.outcomes import Outcome, Stop, SurplusTrial

Echo = Callable[[str], None]
MAX_CONSECUTIVE_FAILURES = 10  # a broken setup stops the run instead of failing forever
STORAGE_BACKOFF = (2, 4, 8, 16, 30)  # seconds between tries while the database is away
_DATA: dict[tuple, TaskData] = {}  # built once per process, kept on the device


def load_data(task: Task, settings: dict[str, Any], device: torch.device) -> TaskData:
    key = (task.name, tuple(sorted(settings.items())), str(device))
    if key not in _DATA:
        _DATA[key] = task.load(settings, device)
    return _DATA[key]


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
        self.log = StudyLog(None, task, self.device.type, echo)  # MLflow: set up in open()
        self.progress = Progress(self.budget, task.metric, echo)
        self.study: optuna.Study | None = None
        self.patient: Patient | None = None  # retries the RDB storage's calls (outages)
        self.data: TaskData | None = None
        self.estimated = False  # the CPU duration estimate is printed once per process
        self.scaling_noted = False  # likewise the small-data batch note
        self._pace = (time.monotonic(), 0)  # (when, finished trials) as optimize() began

    def note_scaling(self, asked: Config) -> None:
        """Once per process: say that small data made a trial's batch (and SGD lr) smaller."""
        used = asked.scaled_to(len(self.data.train))  # what the trainer does with it
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

    # the run
    def open(self) -> None:
        """Open storage, create or load the study, set up MLflow."""
        o, spec = self.options, self.spec
        # every storage call rides out a database restart (hpo.study.storage.Patient)
        storage, self.patient = patient_storage(open_storage(o.storage), self.echo)
        # workers of one study must not sample alike: each offsets the sampler seed
        seed = None if o.seed is None else o.seed + worker_index()
        if self.multi and spec.sampler not in ("tpe", "random"):
            raise UserError(
                f"sampler {spec.sampler} optimises one objective; with --objective "
                f"{','.join(o.objectives)} use --sampler tpe (multi-objective TPE) or random"
            )
        if o.tracking:  # before the study exists: an unreachable server stops the run here
            self.log.tracker = Tracker(o.tracking_uri, self.study_name)
        sampler = make_sampler(spec.sampler, seed, spec.n_startup_trials, spec.local_moves)
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
        self.log.parent(self.study, created, wait_for_attr)

    def optimize(self) -> tuple[Stop, str]:
        """Run trials until the study holds `budget` finished ones; returns why it stopped
        (Stop.NONE: the budget is filled), as a type and in words."""
        deadline = self.deadline()
        failures, outage = 0, 0
        self._pace = (time.monotonic(), counts(self.study)[0])  # for the time left
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
                return Stop.FAILURES, f"{failures} trials in a row failed (last: {failed})"

    def _step(self, deadline: float | None) -> tuple[tuple[Stop, str] | None, str | None]:
        """One trial (or one wait). Returns (why to stop or None, failure reason / '' / None)."""
        finished, running = counts(self.study)
        if finished >= self.budget:
            return (Stop.NONE, ""), None
        if deadline is not None and time.monotonic() > deadline:
            return (Stop.TIMEOUT, timeout_text(self.options.timeout)), None
        if finished + running >= self.budget:
            # Other workers hold the rest of the budget: wait for them, and fail stale trials
            # of dead workers (heartbeat) so that their retries can run.
            optuna.storages.fail_stale_trials(self.study)
            time.sleep(1.0)
            return None, None
        objective = Objective(self)
        self.study.optimize(
            objective,
            n_trials=1,
            timeout=None if deadline is None else max(deadline - time.monotonic(), 0.1),
            catch=(Exception,),
            gc_after_trial=False,
        )
        if objective.number is None:  # no trial started (the timeout)
            return None, None
        trials = self.study.get_trials(deepcopy=False)
        mine = next(t for t in trials if t.number == objective.number)
        finished = sum(t.state in FINISHED for t in trials)
        start, finished_at_start = self._pace
        now = time.monotonic()
        left = time_left(
            finished,
            self.budget,
            finished - finished_at_start,
            now - start,
            None if deadline is None else deadline - now,
        )
        self.progress.trial_end(trial_record(mine), self._best(), left)
        if mine.state != TrialState.FAIL:
            return None, ""
        if mine.user_attrs.get("outcome") == Outcome.SURPLUS:  # not trained: no failure
            return None, None
        return None, mine.user_attrs.get("fail_reason", "unknown")

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
        base = self.study.user_attrs.get("baselines")
        if self.options.baselines and base is None:
            data = load_data(self.task, self.settings, self.device)
            base = references.baselines(self.task, self.settings, data, self.echo)
            self.study.set_user_attr("baselines", base)
            for name, metrics in base.items():
                self.log.reference("baseline", name, metrics)
        self.log.baseline = base or {}
        return self.log.baseline

    def references(self) -> tuple[dict, dict | None]:
        """Baselines and the replayed original, computed or taken from the cache, stored in
        the study so that `hpo report` can show them."""
        base = self.baselines()
        original = self.study.user_attrs.get("original")
        if self.options.original and original is None:
            data = load_data(self.task, self.settings, self.device)
            original = references.replay_original(
                self.task, self.settings, data, self.device, self.spec.original_epochs, self.echo
            )
            original["diagnosis"] = diagnose(original["history"], original["outcome"])
            self.study.set_user_attr("original", original)
            self.log.reference(
                "original",
                self.task.name,
                original["metrics"],
                original["params"],
                {"diagnosis": original["diagnosis"]},
            )
        return base, original

    def log_plots(self) -> None:
        """Study plots as PNG artifacts on the parent run."""
        if self.log.parent_id is None:
            return
        with tempfile.TemporaryDirectory() as tmp:
            self.log.files(plots(self.study, tmp))

    def summary(self, stop: tuple[Stop, str] = (Stop.NONE, ""), sum_up: bool = True) -> Summary:
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
        if best:
            self.log.best(best["value"])
        if sum_up:
            self.log.finish()
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
            stop[1],
            stop[0],
            objective_names(self.task, self.options.objectives),
            [trial_record(t) for t in self.study.get_trials(deepcopy=False) if t.number in front],
            cut=trial_record(cut) | {"epochs": len(cut.intermediate_values)} if cut else None,
            seeds=self.spec.seeds,
        )


def timeout_text(timeout: float | None) -> str:
    return f"--timeout {timeout:g} s reached"
