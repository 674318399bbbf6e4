"""`hpo ui`: MLflow's UI over the study's tracking store, opened on the study's runs, ready to
compare, and stopped with every process it started.

MLflow 3.17's page picks its GenAI or its model-training view from the URL's `workflowType`
(else the browser's saved choice, GenAI by default); the runs table nests child runs under a
collapsed parent unless it is sorted by something other than the start time or filtered, and it
shows metric and param columns only once they are selected. The URL printed here asks for the
model-training view (`workflowType=machine_learning`) on the runs tab
(`#/experiments/<id>/runs`), as a table (`compareRunsMode=TABLE`), with a shared view
(`viewStateShareKey=hpo`): the experiment tag `mlflow.sharedViewState.hpo`, written here, holds
the sort (the study's metric, best first: one flat list of trials, baselines and the original)
and the columns, in this order: the metric, `gain_over_baseline`, the kind, Optuna state,
diagnosis, and the params that differ between the trials and the original.

The server is `mlflow ui`, started in its own session; on exit (normal, Ctrl-C, SIGTERM,
SIGHUP) its whole process group gets SIGTERM, then SIGKILL after a grace period. Everything
talks to the server over its REST API: this module does not import mlflow.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpo.track.server import check_server, tracking_uri
from hpo.ui.server import HOST, Server, signals_interrupt
from hpo.util.errors import UserError, masked, without_credentials

REQUEST_SECONDS = 30.0
VIEW_KEY = "hpo"  # ?viewStateShareKey=hpo reads the experiment tag mlflow.sharedViewState.hpo
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
KIND_TAG = "mlflow.experimentKind"  # the experiment's type in MLflow's experiment list
# the sort and filters of the runs page that a shared view may carry (MLflow's own names)
FACETS = {
    "searchFilter": "",
    "startTime": "ALL",
    "lifecycleFilter": "Active",
    "modelVersionFilter": "All Runs",
    "datasetsFilter": [],
}
TAG_COLUMNS = ("kind", "optuna_state", "diagnosis", "reason")
COMPARED_KINDS = ("trial", "original")  # runs whose differing params become columns


def run(
    study: str | None,
    uri: str | None,
    port: int,
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> int:
    """Start the UI (or, for an http(s) tracking server, point at it), print one line with the
    study's URL, serve until interrupted; returns the exit code."""
    uri = tracking_uri(uri)
    if uri.startswith(("http://", "https://")):
        check_server(uri)
        api = Api(uri)
        url, name = study_url(api, without_credentials(uri), study)
        say(_line(url, name, ""))
        return 0
    _check_store(uri)
    port = _free_port(port)
    warn(f"starting MLflow's server over {masked(uri)} on {HOST}:{port} ...")
    server: Server | None = None
    with signals_interrupt():
        try:
            server = Server(uri, port)
            server.wait_ready()
            url, name = study_url(Api(server.base), server.base, study)
            say(_line(url, name, " (Ctrl-C stops the server)"))
            code = server.wait()
            warn(f"hpo ui: the MLflow server stopped by itself (exit code {code}){server.tail()}")
            return code or 1
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM / SIGHUP (see signals_interrupt)
            return 0
        finally:
            left = server.stop() if server is not None else []
            if left:
                warn(f"hpo ui: MLflow server processes still running after SIGKILL: {left}")


def _line(url: str, name: str | None, suffix: str) -> str:
    what = f"study {name!r}" if name else "MLflow"
    return f"hpo ui: {what} at {url}{suffix}"


# the view
def study_url(api: Api, base: str, study: str | None) -> tuple[str, str | None]:
    """The URL of `study`'s runs (default: the study with the latest run) as a comparison
    table, and the experiment's name; with no study in the store, the experiment list."""
    experiment = _experiment(api, study)
    if experiment is None:
        return f"{base}/#/experiments?workflowType=machine_learning", None
    eid, name = experiment["experiment_id"], experiment["name"]
    tags = {t["key"]: t["value"] for t in experiment.get("tags", [])}
    if KIND_TAG not in tags:  # the type column of the experiment list: not GenAI
        api.post(
            "experiments/set-experiment-tag",
            experiment_id=eid,
            key=KIND_TAG,
            value="custom_model_development",
        )
    query = {"workflowType": "machine_learning", "compareRunsMode": "TABLE"}
    runs = _runs(api, eid)
    parents = [r for r in runs if r["tags"].get("kind") == "study" and r["tags"].get("metric")]
    if parents:  # an hpo study: its metric decides the sort and the columns
        parent = parents[0]  # the latest (runs come newest first)
        metric = parent["tags"]["metric"]
        ascending = _ascending(parent, metric, runs)
        state = view_state(metric, ascending, runs)
        value = json.dumps(state, separators=(",", ":"))
        api.post("experiments/set-experiment-tag", experiment_id=eid, key=VIEW_TAG, value=value)
        query["viewStateShareKey"] = VIEW_KEY
    return f"{base}/#/experiments/{eid}/runs?{urllib.parse.urlencode(query)}", name


def view_state(metric: str, ascending: bool, runs: list[dict]) -> dict[str, Any]:
    """MLflow's shared view state for the runs page: sorted by `metric` (which also lists child
    runs flat, beside their parent), with the columns that compare the trials."""
    metrics = [metric] + [
        m for m in ("gain_over_baseline",) if any(m in r["metrics"] for r in runs)
    ]
    tags = [t for t in TAG_COLUMNS if any(t in r["tags"] for r in runs)]
    columns = (
        [_column("metrics", m) for m in metrics]
        + [_column("tags", t) for t in tags]
        + [_column("params", p) for p in differing_params(runs)]
    )
    return {
        **FACETS,
        "orderByKey": _column("metrics", metric),
        "orderByAsc": ascending,
        "selectedColumns": columns,
        "columnOrder": columns,  # else MLflow's: params, metrics, tags (the state far right)
    }


def differing_params(runs: list[dict]) -> list[str]:
    """The params whose values differ between the trials and the original (a param that some
    of them lack differs too): the searched ones, not those every trial shares."""
    compared = [r["params"] for r in runs if r["tags"].get("kind") in COMPARED_KINDS]
    keys = sorted({k for params in compared for k in params})
    return [k for k in keys if len({params.get(k) for params in compared}) > 1]


def _column(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"  # MLflow's column and sort keys: metrics.`val_mse`


def _ascending(parent: dict, metric: str, runs: list[dict]) -> bool:
    """Lower is better? The parent run's `direction` tag, where it is for this metric; else
    (a parent logged before hpo wrote that tag) judged from the parent's best."""
    tags = parent["tags"]
    if tags.get("metric") == metric and tags.get("direction") in ("minimize", "maximize"):
        return tags["direction"] == "minimize"
    best = parent["metrics"].get(f"best_{metric}")
    values = [r["metrics"][metric] for r in runs if metric in r["metrics"]]
    return best is None or not values or best <= min(values)


def _experiment(api: Api, study: str | None) -> dict | None:
    if study is not None:
        try:
            found = api.get("experiments/get-by-name", experiment_name=study)
            return found["experiment"]
        except ApiError as e:
            if e.code != "RESOURCE_DOES_NOT_EXIST":
                raise UserError(f"MLflow: {e}") from None
        names = [e["name"] for e in _experiments(api) if e["name"] != "Default"]
        known = f"studies there: {', '.join(names)}" if names else "it holds no study yet"
        raise UserError(f"no study {study!r} in the MLflow store ({known})")
    experiments = _experiments(api)
    if not experiments:
        return None
    latest = api.post(
        "runs/search",
        experiment_ids=[e["experiment_id"] for e in experiments],
        order_by=["attributes.start_time DESC"],
        max_results=1,
    ).get("runs", [])
    if not latest:
        return None
    eid = latest[0]["info"]["experiment_id"]
    return next(e for e in experiments if e["experiment_id"] == eid)


def _experiments(api: Api) -> list[dict]:
    return api.post("experiments/search", max_results=1000).get("experiments", [])


def _runs(api: Api, eid: str, limit: int = 10000) -> list[dict]:
    """The experiment's active runs, newest first, as {tags, params, metrics} dicts."""
    out: list[dict] = []
    token = None
    while len(out) < limit:
        body: dict[str, Any] = {"experiment_ids": [eid], "max_results": 1000}
        body["order_by"] = ["attributes.start_time DESC"]
        if token:
            body["page_token"] = token
        page = api.post("runs/search", **body)
        for r in page.get("runs", []):
            data = r.get("data", {})
            out.append(
                {
                    "tags": {t["key"]: t["value"] for t in data.get("tags", [])},
                    "params": {p["key"]: p["value"] for p in data.get("params", [])},
                    "metrics": {m["key"]: m["value"] for m in data.get("metrics", [])},
                }
            )
        token = page.get("next_page_token")
        if not token:
            break
    return out


# MLflow's REST API
class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class Api:
    """JSON calls to an MLflow server's REST API (basic auth from the URL's user:password or
    MLFLOW_TRACKING_USERNAME / _PASSWORD, else a bearer MLFLOW_TRACKING_TOKEN)."""

    def __init__(self, uri: str) -> None:
        parts = urllib.parse.urlsplit(uri)
        self.base = without_credentials(uri)
        self.headers = {"Content-Type": "application/json"}
        user = parts.username or os.environ.get("MLFLOW_TRACKING_USERNAME")
        password = parts.password or os.environ.get("MLFLOW_TRACKING_PASSWORD")
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        if user and password:
            pair = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {pair}"
        elif token:
            self.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **query: Any) -> dict:
        return self._call(f"{path}?{urllib.parse.urlencode(query)}", None)

    def post(self, path: str, **body: Any) -> dict:
        return self._call(path, json.dumps(body).encode())

    def _call(self, path: str, data: bytes | None) -> dict:
        url = f"{self.base}/api/2.0/mlflow/{path}"
        request = urllib.request.Request(url, data=data, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            try:
                body = json.load(e)
            except ValueError:
                body = {}
            code = body.get("error_code", f"HTTP {e.code}")
            raise ApiError(code, body.get("message", str(e.reason))) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise UserError(f"MLflow server {self.base} did not answer ({reason})") from None


def _check_store(uri: str) -> None:
    """A SQLite store that does not exist would be created empty: say so instead."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.exists():
            raise UserError(
                f"no MLflow store at {path}: run `hpo study` first, or choose --tracking-uri "
                "/ MLFLOW_TRACKING_URI"
            )


def _free_port(port: int) -> int:
    """`port` if nothing listens on HOST:port (0: any free port); else a UserError."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            raise UserError(
                f"port {port} on {HOST} is in use: choose another --port (0 picks a free one)"
            ) from None
        return s.getsockname()[1]
