"""MLflow logging: the only module that imports mlflow. One experiment per study, one parent
run per study, one child run per trial, reference runs for baselines and the original."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hpo import __version__
from hpo.errors import UserError, first_line

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow's own default store, in the working dir
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}  # MLflow run status
# An http(s) tracking server must answer within this many seconds when a command starts.
SERVER_WAIT_SECONDS = 5.0
# MLflow's HTTP client retries 7 times with backoff and waits 120 s per request by default
# (minutes per call when a server goes away mid-study); ours, unless the user sets them
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def tracking_uri(uri: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the local SQLite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def shown(uri: str) -> str:
    """The URI without a password, safe to print."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def check_server(uri: str, wait: float = SERVER_WAIT_SECONDS) -> None:
    """An http(s) tracking URI: one request to the server's /health, waiting at most `wait`
    seconds; a UserError (exit 2) naming the server if nothing answers. Other URIs: nothing."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=wait):
            return
    except urllib.error.HTTPError:  # something answers (a proxy, a prefix): MLflow will tell
        return
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise UserError(
            f"MLflow tracking server {shown(uri)} is unreachable ({reason}; waited up to "
            f"{wait:g} s): start it, or choose another --tracking-uri / MLFLOW_TRACKING_URI"
        ) from None


def _now() -> int:
    return int(time.time() * 1000)


class Tracker:
    """Logs one study to MLflow through MlflowClient (no global active-run state)."""

    def __init__(self, uri: str | None, experiment: str) -> None:
        from hpo import quiet

        quiet.libraries()
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        quiet.mlflow_loggers()  # schema set-up chatter; our own lines say enough

        self.uri = tracking_uri(uri)
        check_server(self.uri)
        try:
            with _store_lock(self.uri):
                self.client = MlflowClient(tracking_uri=self.uri)
                self.experiment_id = self._experiment(experiment, MlflowException)
        except MlflowException as e:
            raise UserError(
                f"MLflow tracking store {self.uri} is unusable: {first_line(e)}"
            ) from None
        except OSError as e:
            raise UserError(f"MLflow tracking store {self.uri} is unreachable: {e}") from None

    def _experiment(self, experiment: str, MlflowException: type) -> str:
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
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's batch limit is 100 params
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        """One batched call for a whole dict of metrics at one step."""
        from mlflow.entities import Metric

        ts = _now()
        batch = [Metric(k, float(v), ts, step) for k, v in metrics.items() if _finite(v)]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_files(self, run_id: str, paths: list[str], folder: str = "plots") -> None:
        for path in paths:
            self.client.log_artifact(run_id, path, artifact_path=folder)

    def log_model(
        self,
        run_id: str,
        model: Any,
        example: Any,
        registered_name: str,
        tags: dict[str, Any],
    ) -> tuple[str, str]:
        """Log a PyTorch model (signature + input example) on `run_id`, register it under
        `registered_name`, tag the version; returns (model URI, version)."""
        import mlflow
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        mlflow.set_tracking_uri(self.uri)
        model = model.cpu().eval()
        with torch.no_grad():
            output = model(torch.from_numpy(example)).numpy()
        signature = infer_signature(example, output)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pytorch.log_model(
                model,
                name="model",
                signature=signature,
                input_example=example,
                registered_model_name=registered_name,
                await_registration_for=60,
            )
        version = str(info.registered_model_version)
        for key, value in tags.items():
            self.client.set_model_version_tag(registered_name, version, key, str(value))
        return f"models:/{registered_name}/{version}", version

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
def _store_lock(uri: str):
    """Workers starting together on one fresh SQLite store would race to create its schema:
    serialise the first use through a lock file beside it. Servers handle this themselves."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    path = Path(uri.removeprefix("sqlite:///")).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _finite(v: Any) -> bool:
    try:
        return float(v) == float(v) and abs(float(v)) != float("inf")
    except (TypeError, ValueError):
        return False
