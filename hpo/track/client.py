"""MLflow's client as hpo uses it: one experiment per study, runs nested under the study's
parent run (trials, baselines, the original, the final model's), metrics and tags in batches.
With hpo.track.study_log and hpo.track.model, the only modules that import mlflow; where the
store is and whether its server answers is hpo.track.server, which the CLI can ask before
paying for mlflow's import (seconds)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from hpo import __version__
from hpo.track.server import check_server, tracking_uri
from hpo.util import logs
from hpo.util.errors import UserError, first_line
from hpo.util.values import finite

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}  # MLflow run status
# MLflow's HTTP client retries 7 times with backoff and waits 120 s per request by default
# (minutes per call when a server goes away mid-study); ours, unless the user sets them
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


MAX_BATCH_METRICS = 1000  # MLflow's limit per log_batch call


def _now() -> int:
    return int(time.time() * 1000)


def metric_batch(metrics: dict[str, float], step: int = 0) -> list[Metric]:
    """The finite metrics of one step, timestamped now."""
    ts = _now()
    return [Metric(k, float(v), ts, step) for k, v in metrics.items() if finite(v) is not None]


def absolute(uri: str) -> str:
    """A local SQLite store's URI with its path made absolute: MLflow keeps one store per URI
    string for the life of the process, so a relative one would follow the first working
    directory it met (a notebook that changes folder, or hpo.run called twice)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and ":memory:" not in uri:
        return prefix + str(Path(uri.removeprefix(prefix)).resolve())
    return uri


class Tracker:
    """Logs one study to MLflow through MlflowClient (no global active-run state)."""

    def __init__(self, uri: str | None, experiment: str) -> None:
        logs.libraries()
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        if not logs.level():  # MLflow prints "View run ... at: http://..." for each run ended
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        logs.mlflow_loggers()  # schema set-up chatter; our own lines say enough

        self.uri = tracking_uri(uri)
        check_server(self.uri)
        try:
            with _store_lock(self.uri):
                self.client = MlflowClient(tracking_uri=absolute(self.uri))
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

    def log_dataset(self, run_id: str, dataset: dict[str, Any], context: str = "training") -> None:
        """The data set a run saw, as MLflow's dataset input: its name, digest and source
        (the path), and in its profile the shapes, splits, classes and targets."""
        profile = {k: v for k, v in dataset.items() if k not in ("name", "digest", "source")}
        entity = Dataset(
            name=dataset["name"],
            digest=dataset["digest"],
            source_type="local",
            source=json.dumps({"uri": dataset["source"]}),
            schema=None,
            profile=json.dumps(profile),
        )
        tag = InputTag(key="mlflow.data.context", value=context)
        self.client.log_inputs(run_id, datasets=[DatasetInput(entity, tags=[tag])])

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

    def history(self, run_id: str, metric: str) -> list[dict[str, float]]:
        """A run's `metric` at each step from 1 (epochs), as one dict a step."""
        found = self.client.get_metric_history(run_id, metric)
        return [{metric: m.value} for m in sorted(found, key=lambda m: m.step) if m.step > 0]

    def log_files(self, run_id: str, paths: list[str], folder: str = "plots") -> None:
        for path in paths:
            self.client.log_artifact(run_id, path, artifact_path=folder)

    def end_run(self, run_id: str, state: str) -> None:
        """Terminate with the run status matching the Optuna state (pruned is not success)."""
        self.client.set_terminated(run_id, status=STATUS.get(state, "FAILED"))

    def trial_runs(self, parent_id: str | None, number: int | None = None) -> list[Any]:
        """The trial runs under `parent_id` (all, or trial `number`'s), as MLflow has them."""
        where = "tags.kind = 'trial'"
        if parent_id:
            where += f" and tags.`mlflow.parentRunId` = '{parent_id}'"
        if number is not None:
            where += f" and tags.trial_number = '{number}'"
        return self.client.search_runs([self.experiment_id], where, max_results=50_000)

    def status(self, run_id: str) -> str:
        """MLflow's status of a run: RUNNING, FINISHED, FAILED, KILLED."""
        return self.client.get_run(run_id).info.status

    def delete(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def kill(self, run_id: str, tags: dict[str, Any]) -> None:
        """End a run its process left RUNNING (it died): KILLED, with `tags` saying why."""
        self.set_tags(run_id, tags)
        self.client.set_terminated(run_id, status="KILLED")

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
