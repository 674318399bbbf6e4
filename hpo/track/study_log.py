"""Everything one study process logs to MLflow, behind one object (StudyLog): the study's
parent run, one run per trial with its epochs, the references (baselines, the original) and
the plots.

A failing call never fails a trial. Where MLflow's server does not answer (it restarts, the
network is cut), what a trial run needs is kept here (TrialRun) and sent once the server
answers again, which is probed at most every PROBE_SECONDS, at the trials' own pace: one line
when it goes away, one when it is back. `flush` says, at the end, how many trial runs are still
waiting; `hpo report --to-mlflow` writes them from the study later. Any other failing call is a
warning line, and logging goes on."""

from __future__ import annotations

import time
from typing import Any

from hpo.track.client import Tracker, metric_batch
from hpo.track.server import check_server
from hpo.track.trial_run import OPTUNA_STATE, TrialRun, lost_tags
from hpo.util.errors import UserError, first_line
from hpo.util.interrupts import shielded

# A trial's epoch metrics go to MLflow at most this often, and at its end: an H100 trains a
# cifar10 epoch in 0.2 s, and one MLflow call an epoch cost more than a tenth of that in
# bookkeeping (benchmarks/trial_overhead.py); a CPU epoch takes longer, so it is logged live.
EPOCH_FLUSH_SECONDS = 5.0
PROBE_SECONDS = 5.0  # while MLflow is away, how often it is asked whether it is back
PROBE_WAIT = 2.0  # seconds one such question waits for an answer


class StudyLog:
    """Everything one study process logs to MLflow, behind one object: the parent run, one run
    per trial with its epochs, the references and the plots. With `tracker` None (tracking
    off) every call does nothing."""

    def __init__(self, tracker: Tracker | None, task: Any, device: str, echo: Any) -> None:
        self.tracker, self.task, self.device, self.echo = tracker, task, device, echo
        self.parent_id: str | None = None
        self.seconds = 0.0  # spent in MLflow's calls (for the summary's time line)
        self.baseline: dict[str, dict[str, float]] = {}  # for each trial's gain over it
        self._runs: dict[str, TrialRun] = {}  # handle -> a trial run MLflow lacks some of
        self._lost: dict[int, int] = {}  # a dead worker's trial -> its retry, run not ended yet
        self._away: float | None = None  # since when MLflow has not answered
        self._resend = False  # it answers again: what waited goes at the end of this call
        self._probed = 0.0

    @property
    def uri(self) -> str | None:
        return self.tracker.uri if self.tracker is not None else None

    # calls
    def _call(self, what: str, fn: Any) -> tuple[bool, Any]:
        """(whether MLflow took the call or it failed for good, its result). Not done: MLflow
        is away, and the caller keeps what it wanted to send."""
        if self.tracker is None:
            return True, None
        if self._away is not None and not self._back():
            return False, None
        t0 = time.monotonic()
        try:
            with shielded():  # Ctrl-C waits for the call (hpo.util.interrupts)
                return True, fn()
        except Exception as e:  # noqa: BLE001 - tracking must not kill the study
            if self._answers():
                self.echo(f"warning: MLflow {what} failed: {first_line(e, 200)}")
                return True, None
            self._away, self._probed = time.monotonic(), time.monotonic()
            self.echo(
                f"MLflow does not answer ({first_line(e, 120)}); the trials go on and their "
                "runs are sent once it answers again"
            )
            return False, None
        finally:
            self.seconds += time.monotonic() - t0

    def _answers(self) -> bool:
        """Whether MLflow's server answers now (a local store always does)."""
        try:
            check_server(self.tracker.uri, wait=PROBE_WAIT)
        except UserError:
            return False
        return True

    def _back(self, now: bool = False) -> bool:
        """While MLflow is away: whether it answers again (asked at most every PROBE_SECONDS
        unless `now`); once it does, what waited is sent at the end of this call (_drain)."""
        if not now and time.monotonic() - self._probed < PROBE_SECONDS:
            return False
        self._probed = time.monotonic()
        if not self._answers():
            return False
        self._away, self._resend = None, True
        self.echo(f"MLflow answers again; sending the {len(self._runs)} trial run(s) that waited")
        return True

    def _drain(self) -> None:
        """Once MLflow answers again, what waited is sent: at the end of a public call, never
        inside one (a run synced within its own _sync was ended, then ended again)."""
        if self._resend and self._away is None:
            self._resend = False
            for handle in list(self._runs):
                self._sync(handle)
            self._close_lost()

    def _safe(self, what: str, fn: Any) -> Any:
        result = self._call(what, fn)[1]
        self._drain()
        return result

    # the study's parent run
    def create_parent(self, study_name: str) -> str | None:
        """A new parent run for the study (None with tracking off)."""
        if self.tracker is None:
            return None
        tags = {"metric": self.task.metric, "direction": self.task.direction}
        self.parent_id = self.tracker.create_parent(study_name, self.task.name, tags)
        if dataset := getattr(self.task, "dataset", None):  # the UI's Datasets column
            self._safe("log dataset", lambda: self.tracker.log_dataset(self.parent_id, dataset))
        return self.parent_id

    # trial runs
    def start_trial(
        self, number: int, config: Any, seeds: list[int], local_move: str | None = None
    ) -> str | None:
        """The trial's run; its handle (the run id once MLflow made it). `local_move` (a tag)
        says which trial it changed, and how."""
        if self.tracker is None:
            return None
        tags = {
            "kind": "trial",
            "task": self.task.name,
            "trial_number": number,
            "optuna_state": "RUNNING",
            "device": self.device,
            "seeds": ",".join(map(str, seeds)),
        } | ({"local_move": local_move} if local_move else {})
        run = TrialRun(number, tags, config.params())
        handle = f"trial-{number}-{id(run)}"
        self._runs[handle] = run
        self._sync(handle)
        if run.run_id is not None:  # the run id is the handle, as callers expect
            self._runs[run.run_id] = self._runs.pop(handle)
            handle = run.run_id
        self._drain()
        return handle

    def _sync(self, handle: str) -> None:
        """Send what MLflow lacks of a trial run (it is dropped here once MLflow has all)."""
        run = self._runs.get(handle)
        if run is None:
            return
        if run.run_id is None:
            done, made = self._call("start run", lambda: self._create(run))
            if not done:
                return
            if made is None:  # failed for good (not an outage): given up
                self._runs.pop(handle)
                return
            run.run_id = made
        if run.metrics or run.final_tags:
            metrics, tags = run.metrics, run.final_tags
            done, _ = self._call(
                "log metrics", lambda: self.tracker.log_batch(run.run_id, metrics, tags)
            )
            if not done:
                return
            run.metrics, run.final_tags, run.sent = [], {}, time.monotonic()
        if run.state is not None:
            done, _ = self._call("end run", lambda: self.tracker.end_run(run.run_id, run.state))
            if done:
                self._runs.pop(handle)

    def _create(self, run: TrialRun) -> str:
        """The trial's run, made once: where a call to make it failed (the server went away
        mid-call), the server may have made it before, and that run is taken."""
        made = self.tracker.trial_runs(self.parent_id, run.number) if run.tried else []
        run.tried = True
        run_id = made[0].info.run_id if made else None
        if run_id is None:
            run_id = self.tracker.start_run(self.parent_id, f"trial-{run.number}", run.tags)
        self.tracker.log_params(run_id, run.params)
        if dataset := getattr(self.task, "dataset", None):
            self.tracker.log_dataset(run_id, dataset)
        return run_id

    def epoch(
        self, handle: str | None, epoch: int, metrics: dict[str, float], per_seed: list[dict]
    ) -> None:
        """The epoch's metrics, sent with the ones before them once EPOCH_FLUSH_SECONDS have
        passed since the last send (else at the trial's end, with its final tags)."""
        run = self._runs.get(handle) if handle else None
        if run is None:
            return
        both = dict(metrics)
        if len(per_seed) > 1:  # per-seed curves next to the mean
            for k, m in enumerate(per_seed):
                both[f"{self.task.metric}_seed{k}"] = m[self.task.metric]
                both[f"train_loss_seed{k}"] = m["train_loss"]
        run.metrics.extend(metric_batch(both, epoch))
        if time.monotonic() - run.sent >= EPOCH_FLUSH_SECONDS:
            self._sync(handle)
            self._drain()

    def gain_over_baseline(self, metrics: dict[str, float]) -> float | None:
        """How much better than the first baseline the run is (> 0 = better), in the metric."""
        value = metrics.get(self.task.metric)
        if value is None or not self.baseline:
            return None
        reference = next(iter(self.baseline.values())).get(self.task.metric)
        if reference is None:
            return None
        return value - reference if self.task.direction == "maximize" else reference - value

    def end_trial(
        self, handle: str | None, outcome: str, reason: str, metrics: dict, label: str
    ) -> None:
        """The trial's last epochs, its final tags and its end, in as few calls as MLflow
        allows (one batch, then the end)."""
        run = self._runs.get(handle) if handle else None
        if run is None:
            return
        run.state = OPTUNA_STATE.get(outcome, "FAIL")
        run.final_tags = {"optuna_state": run.state, "diagnosis": label}
        if reason:
            run.final_tags["reason"] = reason
        gain = self.gain_over_baseline(metrics)
        if gain is not None:
            run.metrics.extend(metric_batch({"gain_over_baseline": gain}))
        self._sync(handle)
        self._drain()

    def close_lost(self, number: int, retry: int) -> None:
        """The run of trial `number`, whose worker died (the heartbeat failed it, and trial
        `retry` runs it again), ended KILLED where it was left RUNNING; once MLflow answers,
        if it is away now."""
        if self.tracker is not None:
            self._lost[number] = retry
            self._close_lost()
            self._drain()

    def _close_lost(self) -> None:
        for number, retry in list(self._lost.items()):

            def go(number: int = number, retry: int = retry) -> None:
                for run in self.tracker.trial_runs(self.parent_id, number):
                    if run.info.status == "RUNNING":
                        self.tracker.kill(run.info.run_id, lost_tags(retry))

            if not self._call("close a lost run", go)[0]:
                return  # away: the rest waits too
            del self._lost[number]

    def flush(self) -> int:
        """Send what waits, asking MLflow now; how many trial runs still wait (MLflow away):
        runs not sent or not ended, dead workers' runs not ended KILLED."""
        if self._away is not None:
            self._back(now=True)
        self._drain()
        for handle, run in list(self._runs.items()):
            if run.state is not None:
                self._sync(handle)
        self._close_lost()
        return sum(run.state is not None for run in self._runs.values()) + len(self._lost)

    # references, plots, the parent's end
    def reference(
        self,
        kind: str,
        name: str,
        metrics: dict[str, float],
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        history: list[dict[str, float]] | None = None,
    ) -> str | None:
        """A baseline or the original, as a finished run beside the trials (with its metrics
        per epoch, where it has a `history`); its run id, or None."""

        def go() -> str:
            run_id = self.tracker.log_reference(self.parent_id, kind, name, metrics, params, tags)
            steps = [m for epoch, h in enumerate(history or [], 1) for m in metric_batch(h, epoch)]
            if steps:
                self.tracker.log_batch(run_id, steps)
            return run_id

        return self._safe(f"log {kind}", go)

    def files(self, paths: list[str]) -> None:
        if self.parent_id:
            self._safe("plots", lambda: self.tracker.log_files(self.parent_id, paths))

    def best(self, value: float) -> None:
        if self.parent_id:
            metrics = {f"best_{self.task.metric}": value}
            self._safe("parent run", lambda: self.tracker.log_metrics(self.parent_id, metrics))

    def finish(self) -> None:
        """The study's parent run ends FINISHED once the study is summed up (a resumed study
        logs into it again and finishes it again)."""
        if self.parent_id:
            self._safe("end parent run", lambda: self.tracker.end_run(self.parent_id, "COMPLETE"))
