"""Everything one study process logs to MLflow, behind one object (StudyLog): the study's
parent run, one run per trial with its epochs, the references (baselines, the original) and
the plots. A failing call never fails a trial: it is reported in one line and logging goes on."""

from __future__ import annotations

import time
from typing import Any

from mlflow.entities import Metric

from hpo.track.client import Tracker, metric_batch
from hpo.util.errors import first_line
from hpo.util.interrupts import shielded

# A trial's epoch metrics go to MLflow at most this often, and at its end: an H100 trains a
# cifar10 epoch in 0.2 s, and one MLflow call an epoch cost more than a tenth of that in
# bookkeeping (benchmarks/trial_overhead.py); a CPU epoch takes longer, so it is logged live.
EPOCH_FLUSH_SECONDS = 5.0

# Optuna's name for how a trial ended, as the trial run's `optuna_state` tag
OPTUNA_STATE = {"complete": "COMPLETE", "pruned": "PRUNED", "out_of_time": "PRUNED"}


class StudyLog:
    """Everything one study process logs to MLflow, behind one object: the parent run, one run
    per trial with its epochs, the references and the plots. With `tracker` None (tracking
    off) every call does nothing. A failing call never fails a trial: it is reported in one
    line and logging goes on."""

    def __init__(self, tracker: Tracker | None, task: Any, device: str, echo: Any) -> None:
        self.tracker, self.task, self.device, self.echo = tracker, task, device, echo
        self.parent_id: str | None = None
        self.seconds = 0.0  # spent in MLflow's calls (for the summary's time line)
        self.baseline: dict[str, dict[str, float]] = {}  # for each trial's gain over it
        # a trial run's epoch metrics not yet sent, and when it last sent them
        self._pending: dict[str, list[Metric]] = {}
        self._flushed: dict[str, float] = {}

    @property
    def uri(self) -> str | None:
        return self.tracker.uri if self.tracker is not None else None

    def _safe(self, what: str, fn: Any) -> Any:
        if self.tracker is None:
            return None
        t0 = time.monotonic()
        try:
            with shielded():  # Ctrl-C waits for the call (hpo.util.interrupts)
                return fn()
        except Exception as e:  # noqa: BLE001 - tracking must not kill the study
            self.echo(f"warning: MLflow {what} failed: {first_line(e, 200)}")
            return None
        finally:
            self.seconds += time.monotonic() - t0

    def create_parent(self, study_name: str) -> str | None:
        """A new parent run for the study (None with tracking off)."""
        if self.tracker is None:
            return None
        tags = {"metric": self.task.metric, "direction": self.task.direction}
        self.parent_id = self.tracker.create_parent(study_name, self.task.name, tags)
        return self.parent_id

    def start_trial(
        self, number: int, config: Any, seeds: list[int], local_move: str | None = None
    ) -> str | None:
        """The trial's run; `local_move` (a tag) says which trial it changed, and how."""

        def go() -> str:
            run_id = self.tracker.start_run(
                self.parent_id,
                f"trial-{number}",
                {
                    "kind": "trial",
                    "task": self.task.name,
                    "trial_number": number,
                    "optuna_state": "RUNNING",
                    "device": self.device,
                    "seeds": ",".join(map(str, seeds)),
                }
                | ({"local_move": local_move} if local_move else {}),
            )
            self.tracker.log_params(run_id, config.params())
            self._pending[run_id], self._flushed[run_id] = [], time.monotonic()
            return run_id

        return self._safe("start run", go)

    def epoch(
        self, run_id: str | None, epoch: int, metrics: dict[str, float], per_seed: list[dict]
    ) -> None:
        """The epoch's metrics, sent with the ones before them once EPOCH_FLUSH_SECONDS have
        passed since the last send (else at the trial's end, with its final tags)."""
        if not run_id:
            return
        both = dict(metrics)
        if len(per_seed) > 1:  # per-seed curves next to the mean
            for k, m in enumerate(per_seed):
                both[f"{self.task.metric}_seed{k}"] = m[self.task.metric]
                both[f"train_loss_seed{k}"] = m["train_loss"]
        pending = self._pending.setdefault(run_id, [])
        pending.extend(metric_batch(both, epoch))
        if time.monotonic() - self._flushed.get(run_id, 0.0) >= EPOCH_FLUSH_SECONDS:
            self._send(run_id)

    def _send(self, run_id: str, tags: dict[str, Any] | None = None) -> None:
        """The run's pending metrics (and `tags`) in one call; kept for the next try if it
        fails."""

        def go() -> bool:
            self.tracker.log_batch(run_id, self._pending.get(run_id, []), tags)
            self._pending[run_id] = []
            return True

        if self._safe("log metrics", go):
            self._flushed[run_id] = time.monotonic()

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
        self, run_id: str | None, outcome: str, reason: str, metrics: dict, label: str
    ) -> None:
        if not run_id:
            return

        state = OPTUNA_STATE.get(outcome, "FAIL")
        tags = {"optuna_state": state, "diagnosis": label}
        if reason:
            tags["reason"] = reason
        gain = self.gain_over_baseline(metrics)
        if gain is not None:
            self._pending.setdefault(run_id, []).extend(metric_batch({"gain_over_baseline": gain}))
        self._send(run_id, tags)  # the epochs not sent yet, the final tags: one call
        self._pending.pop(run_id, None)
        self._flushed.pop(run_id, None)
        self._safe("end run", lambda: self.tracker.end_run(run_id, state))

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
            self._safe(
                "parent run",
                lambda: self.tracker.log_metrics(
                    self.parent_id, {f"best_{self.task.metric}": value}
                ),
            )

    def finish(self) -> None:
        """The study's parent run ends FINISHED once the study is summed up (a resumed study
        logs into it again and finishes it again)."""
        if self.parent_id:
            self._safe("end parent run", lambda: self.tracker.end_run(self.parent_id, "COMPLETE"))
