"""MLflow logging. One experiment per study, one parent run per study, one child run per
trial, reference runs for baselines and the original. The study talks to MLflow through one
StudyLog. With hpo.track.model (the registered model of `hpo train`), the only modules that import
mlflow; where the store is and whether its server answers is hpo.track.server, which the
CLI can ask before paying for mlflow's import (seconds)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from hpo import __version__
from hpo.track.server import check_server, tracking_uri
from hpo.util import logs as quiet
from hpo.util.errors import UserError, first_line
from hpo.util.interrupts import shielded
from hpo.util.values import finite

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}  # MLflow run status
# MLflow's HTTP client retries 7 times with backoff and waits 120 s per request by default
# (minutes per call when a server goes away mid-study); ours, unless the user sets them
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


MAX_BATCH_METRICS = 1000  # MLflow's limit per log_batch call
# A trial's epoch metrics go to MLflow at most this often, and at its end: an H100 trains a
# cifar10 epoch in 0.2 s, and one MLflow call an epoch cost more than a tenth of that in
# bookkeeping (benchmarks/trial_overhead.py); a CPU epoch takes longer, so it is logged live.
EPOCH_FLUSH_SECONDS = 5.0


def _now() -> int:
    return int(time.time() * 1000)


def metric_batch(metrics: dict[str, float], step: int = 0) -> list[Metric]:
    """The finite metrics of one step, timestamped now."""
    ts = _now()
    return [Metric(k, float(v), ts, step) for k, v in metrics.items() if finite(v) is not None]


class Tracker:
    """Logs one study to MLflow through MlflowClient (no global active-run state)."""

    def __init__(self, uri: str | None, experiment: str) -> None:
        quiet.libraries()
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        quiet.mlflow_loggers()  # schema set-up chatter; our own lines say enough

        self.uri = tracking_uri(uri)
        check_server(self.uri)
        try:
            with _store_lock(self.uri):
                self.client = MlflowClient(tracking_uri=self.uri)
                self.experiment_id = self._experiment(experiment)
        except MlflowException as e:
            raise UserError(
                f"MLflow tracking store {self.uri} is unusable: {first_line(e)}"
            ) from None
        except OSError as e:
            raise UserError(f"MLflow tracking store {self.uri} is unreachable: {e}") from None

    def _experiment(self, experiment: str) -> str:
        """The experiment's id, created if missing (another worker may win the race)."""
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(experiment)
        except MlflowException:  # another worker created it in between
            return self.client.get_experiment_by_name(experiment).experiment_id

    # runs
    def create_parent(self, study_name: str, task: str, tags: dict[str, str]) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=study_name,
            tags={"kind": "study", "task": task, "hpo_version": __version__} | tags,
        )
        return run.info.run_id

    def start_run(self, parent_id: str | None, name: str, tags: dict[str, Any]) -> str:
        """A run nested under `parent_id` (trials, baselines, the original)."""
        all_tags = {"hpo_version": __version__} | {k: str(v) for k, v in tags.items()}
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        return self.client.create_run(self.experiment_id, run_name=name, tags=all_tags).info.run_id

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's batch limit is 100 params
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        """One batched call for a whole dict of metrics at one step."""
        self.log_batch(run_id, metric_batch(metrics, step))

    def log_batch(
        self, run_id: str, metrics: list[Metric] = (), tags: dict[str, Any] | None = None
    ) -> None:
        """Metrics (any steps) and tags in as few calls as MLflow's batch limits allow."""
        metrics = list(metrics)
        run_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for i in range(0, max(len(metrics), 1), MAX_BATCH_METRICS):
            chunk = metrics[i : i + MAX_BATCH_METRICS]
            if chunk or run_tags:
                self.client.log_batch(run_id, metrics=chunk, tags=run_tags)
            run_tags = []

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        self.log_batch(run_id, tags=tags)

    def log_files(self, run_id: str, paths: list[str], folder: str = "plots") -> None:
        for path in paths:
            self.client.log_artifact(run_id, path, artifact_path=folder)

    def end_run(self, run_id: str, state: str) -> None:
        """Terminate with the run status matching the Optuna state (pruned is not success)."""
        self.client.set_terminated(run_id, status=STATUS.get(state, "FAILED"))

    def log_reference(
        self,
        parent_id: str | None,
        kind: str,
        name: str,
        metrics: dict[str, float],
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> str:
        """A finished run for a baseline or the original config, ranked with the trials."""
        all_tags = {"kind": kind, "reference": name} | (tags or {})
        run_id = self.start_run(parent_id, f"{kind}:{name}", all_tags)
        if params:
            self.log_params(run_id, params)
        self.log_metrics(run_id, metrics)
        self.end_run(run_id, "COMPLETE")
        return run_id


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Workers starting together on one fresh SQLite store would race to create its schema:
    serialise the first use through a lock file beside it. Servers handle this themselves."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///")).resolve()
    with FileLock(f"{path}.lock"):
        yield


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
        try:
            with shielded():  # Ctrl-C waits for the call (hpo.util.interrupts)
                return fn()
        except Exception as e:  # noqa: BLE001 - tracking must not kill the study
            self.echo(f"warning: MLflow {what} failed: {first_line(e, 200)}")
            return None

    def parent(self, study: Any, created: bool, wait_for_attr: Any) -> None:
        """The study's parent run: created by the worker that created the study, found by the
        others through the study's `mlflow_parent_run_id` attr."""
        if self.tracker is None:
            return
        key = "mlflow_parent_run_id"
        if not created:
            found = wait_for_attr(study, key).get(key)
            if found:
                self.parent_id = found
                return
        self.parent_id = self.tracker.create_parent(
            study.study_name,
            self.task.name,
            {"metric": self.task.metric, "direction": self.task.direction},
        )
        study.set_user_attr(key, self.parent_id)

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
    ) -> None:
        """A baseline or the original, as a finished run beside the trials."""
        self._safe(
            f"log {kind}",
            lambda: self.tracker.log_reference(self.parent_id, kind, name, metrics, params, tags),
        )

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
