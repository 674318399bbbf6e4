"""One `hpo study` process's run of a study: open (or create) it, then trials until its budget is
filled, its deadline passes, trials keep failing, or the storage is lost for good."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import tenacity
import torch
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import DBAPIError, OperationalError

from hpo.search import record
from hpo.search.spec import Spec
from hpo.search.strategy import Noise, binomial_se, make_pruner, make_sampler
from hpo.study.create import create_or_load
from hpo.study.objective import Objective, TrialContext
from hpo.study.options import Options
from hpo.study.progress import Echo, Progress, Timing, time_left
from hpo.study.queries import FINISHED, Budget, best_trial, counts, trial_record
from hpo.study.storage import Patient, StorageLost, open_storage, patient_storage, storage_url
from hpo.tasks.base import Task
from hpo.track.client import Tracker
from hpo.track.study_log import StudyLog
from hpo.train.config import Config
from hpo.train.data import TaskData, resolve_device
from hpo.train.seeds import seed_list
from hpo.util.errors import UserError, first_line, masked, scrub
from hpo.util.interrupts import shielded
from hpo.util.outcomes import Outcome, Stop

MAX_CONSECUTIVE_FAILURES = 10  # a broken setup stops the run instead of failing forever
STORAGE_BACKOFF = (2, 4, 8, 16, 30)  # seconds between tries while the database is away
_DATA: dict[tuple, TaskData] = {}  # built once per process, kept on the device


def load_data(task: Task, settings: dict[str, Any], device: torch.device) -> TaskData:
    key = (task.name, json.dumps(settings, sort_keys=True, default=str), str(device))
    if key not in _DATA:
        _DATA[key] = task.load(settings, device)
    return _DATA[key]


def timeout_text(timeout: float | None) -> str:
    return f"--timeout {timeout:g} s reached"


def worker_seed(seed: int | None, index: int) -> int | None:
    """The sampler seed of worker `index` of a study seeded `seed`: worker 0 keeps the seed, so
    a one-worker study is the seeded study; the others draw from a stream of (seed, index), not
    seed + index, which is worker 0 of the study seeded one higher."""
    if seed is None or index == 0:
        return seed
    return int(np.random.default_rng([seed, index]).integers(2**32))  # as RandomShare does


class StudyRunner:
    """What every trial of one `hpo study` process shares, and the loop over them."""

    def __init__(
        self, task: Task, spec: Spec, options: Options, echo: Echo, data_path: str | None = None
    ) -> None:
        self.task, self.options, self.echo = task, options, echo
        self.data_path = data_path  # a user's data set: where this process reads it
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
            spec = replace(spec, trial_timeout=None)
        self.spec = spec
        self.base = Config.from_dict(spec.base) if spec.base else Config()
        self.budget = options.trials
        self.multi = len(options.objectives) > 1
        self.study_name = options.study_name or task.name
        self.log = StudyLog(None, task, self.device.type, echo)  # MLflow: set up in open()
        self.progress = Progress(self.budget, task.metric, echo, cpu=self.device.type == "cpu")
        self.timing = Timing(options.started)  # where this run's time goes
        self.study: optuna.Study | None = None
        self.patient: Patient | None = None  # retries the RDB storage's calls (outages)
        self.data: TaskData | None = None
        self._pace = (time.monotonic(), 0)  # (when, finished trials) as optimize() began
        self._counted: tuple[int, int] | None = None  # (finished, running) as last read

    def load(self) -> TaskData:
        """The task's data on this process's device (built once)."""
        if self.data is None:
            self.data = load_data(self.task, self.settings, self.device)
        return self.data

    def open(self) -> None:
        """Open storage, create or load the study, set up MLflow."""
        o, spec = self.options, self.spec
        # every storage call rides out a database restart (hpo.study.storage.Patient)
        storage, self.patient = patient_storage(open_storage(o.storage), self.echo)
        seed = worker_seed(o.seed, o.worker_index)
        if self.multi and spec.sampler not in ("tpe", "random"):
            raise UserError(
                f"sampler {spec.sampler} optimises one objective; with --objective "
                f"{','.join(o.objectives)} use --sampler tpe (multi-objective TPE) or random"
            )
        if o.tracking:  # before the study exists: an unreachable server stops the run here
            self.log.tracker = Tracker(o.tracking_uri, self.study_name)
        sampler = make_sampler(
            spec.sampler, seed, spec.n_startup_trials, spec.local_moves, spec.random_share
        )
        pruner = make_pruner(spec.pruner, spec.epochs, self._noise())
        given = os.environ.get("HPO_DATA_DIR")  # --data-dir: kept for train and diagnose
        self.study, created = create_or_load(
            storage,
            self.study_name,
            self.task,
            spec,
            self.settings,
            sampler,
            pruner,
            o.objectives,
            str(Path(given).expanduser().resolve()) if given else None,
            self.data_path,
            self.task.original.to_dict()
            if (o.original_config or o.original_model) and self.task.original
            else None,
        )
        if created and spec.enqueue:  # the spec's known-good point is trial 0
            self.study.enqueue_trial(spec.enqueue, skip_if_exists=True)
        self._parent_run(created)

    def _noise(self) -> Noise | None:
        """The objective's standard error on the validation set, for the pruner: binomial for
        an accuracy (on the validation split, loaded when the pruner first asks); None where
        hpo has no model of it (losses, R2)."""
        if not self.task.metric.endswith("accuracy") or self.multi:
            return None
        return lambda p: binomial_se(len(self.load().val))(p)

    def _parent_run(self, created: bool) -> None:
        """The study's MLflow parent run: made by the worker that made the study, found by
        the others in the study's record."""
        if self.log.tracker is None:
            return
        found = None if created else record.parent_run(self.study, wait=30.0)
        if found:
            self.log.parent_id = found
        elif (made := self.log.create_parent(self.study_name)) is not None:
            record.set_parent_run(self.study, made)

    def context(self, end: float | None = None) -> TrialContext:
        """What each trial takes from this run; `end`: when --timeout ends it."""
        return TrialContext(
            task=self.task,
            spec=self.spec,
            base=self.base,
            seeds=seed_list(self.options.seed, self.spec.seeds),
            data=self.load(),
            device=self.device,
            multi=self.multi,
            budget=Budget(self.study, self.budget),
            progress=self.progress,
            log=self.log,
            end=end,
            timeout=self.options.timeout,
        )

    def optimize(self) -> tuple[Stop, str]:
        """Run trials until the study holds `budget` finished ones; returns why it stopped
        (Stop.NONE: the budget is filled), as a type and in words."""
        deadline, failures = self.deadline(), 0
        self._pace = (time.monotonic(), counts(self.study)[0])  # for the time left
        # The database went away (restart, network) where the Patient does not see it:
        # finished trials are stored; wait with backoff, then go on. A trial cut off now is
        # failed by the heartbeat.
        step = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((OperationalError, DBAPIError)),
            wait=tenacity.wait_chain(*map(tenacity.wait_fixed, STORAGE_BACKOFF)),
            stop=tenacity.stop_after_attempt(len(STORAGE_BACKOFF) + 1),
            before_sleep=self._outage,
            reraise=True,
        )
        while True:
            try:
                stop, failed = step(self._step, deadline)
            except Exception as e:
                raise self._lost(e) from None
            if step.statistics.get("attempt_number", 1) > 1:
                self.echo("storage reachable again; going on")
            if stop is not None:
                return stop
            if failed is None:
                continue
            failures = failures + 1 if failed else 0
            if failures >= MAX_CONSECUTIVE_FAILURES:
                return Stop.FAILURES, f"{failures} trials in a row failed (last: {failed})"

    def _outage(self, state: tenacity.RetryCallState) -> None:
        reason = scrub(first_line(state.outcome.exception()), storage_url(self.options.storage))
        self.echo(f"storage unreachable ({reason}); retrying in {state.next_action.sleep:g} s")

    def _lost(self, error: Exception) -> Exception:
        """The error to end the run with, once the storage is gone for good; else `error`."""
        url = storage_url(self.options.storage)
        # past the Patient's retry window (Optuna may have turned it into another error)
        lost = self.patient.lost if self.patient is not None else None
        if lost is None and isinstance(error, StorageLost):
            lost = str(error)
        if lost is not None:
            return UserError(
                f"lost the study storage {masked(url)}: {lost}; rerun the same command to "
                "resume (the running trial is failed by the heartbeat and run again)"
            )
        if isinstance(error, OperationalError | DBAPIError):
            return UserError(f"lost the study storage: {scrub(first_line(error), url)}")
        return error

    def _step(self, deadline: float | None) -> tuple[tuple[Stop, str] | None, str | None]:
        """One trial (or one wait). Returns (why to stop or None, failure reason / '' / None)."""
        # the counts the last trial's end read (no new query), else the study's now
        finished, running = self._counted or counts(self.study)
        self._counted = None
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
        objective = Objective(self.context(deadline))
        with shielded():  # a signal waits for Optuna's writes around the trial (the trial's
            self.study.optimize(  # own work is not shielded: hpo.util.interrupts)
                objective,
                n_trials=1,
                timeout=None if deadline is None else max(deadline - time.monotonic(), 0.1),
                catch=(Exception,),
                gc_after_trial=False,
            )
        if objective.number is None:  # no trial started (the timeout)
            return None, None
        return None, self._ended(objective.number, deadline)

    def _ended(self, number: int, deadline: float | None) -> str | None:
        """Trial `number`'s line; its failure reason ('' if it did not fail, None if it does
        not count: never trained)."""
        trials = self.study.get_trials(deepcopy=False)
        mine = next(t for t in trials if t.number == number)
        finished = sum(t.state in FINISHED for t in trials)
        self._counted = (finished, sum(t.state == TrialState.RUNNING for t in trials))
        start, finished_at_start = self._pace
        now = time.monotonic()
        left = time_left(
            finished,
            self.budget,
            finished - finished_at_start,
            now - start,
            None if deadline is None else deadline - now,
        )
        self.progress.trial_end(trial_record(mine), self.best(trials), left)
        if mine.state != TrialState.FAIL:
            return ""
        kept = record.TrialRecord.of(mine)
        if kept.outcome == Outcome.SURPLUS:  # not trained: no failure
            return None
        return kept.reason or "unknown"

    def deadline(self) -> float | None:
        """time.monotonic() after which no trial starts (from --timeout), or None."""
        o = self.options
        if o.deadline is not None:
            return time.monotonic() + (o.deadline - time.time())
        return time.monotonic() + o.timeout if o.timeout else None

    def best(self, trials: list[FrozenTrial] | None = None) -> dict[str, Any] | None:
        """The best trial's record (from `trials`, the study's as just read, where given)."""
        try:
            return trial_record(best_trial(self.study, trials))
        except ValueError:  # no complete trial yet
            return None
