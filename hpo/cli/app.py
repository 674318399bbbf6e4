"""The `hpo` app and what its commands share: option types, choices, one-line output, --data.
The commands live in hpo.cli (and `hpo study` in hpo.cli.study)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from hpo.search.spec import PRUNERS, SAMPLERS
from hpo.util.errors import UserError

# typer may vendor its own click: take the exception classes from wherever BadParameter lives
_click = sys.modules[typer.BadParameter.__module__]

# Every environment variable hpo reads, and what for (`hpo --help`, docs/cli.md).
ENVIRONMENT = {
    "HPO_STORAGE": "the study storage URL (--storage); several workers share one",
    "MLFLOW_TRACKING_URI": "the MLflow store or server (--tracking-uri)",
    "HPO_DATA_DIR": "where data sets are read or downloaded to (--data-dir)",
    "HPO_CACHE_DIR": "cached baselines, original replays and ablation runs (default: "
    "$XDG_CACHE_HOME/hpo, else ~/.cache/hpo)",
    "XDG_CACHE_HOME": "the cache's parent where HPO_CACHE_DIR is not set, and the data's "
    "where HPO_DATA_DIR is not",
    "HPO_LOG_LEVEL": "DEBUG, INFO, ...: the libraries' logs and warnings, off by default",
    "HPO_HEARTBEAT_SECONDS": "how often a worker's running trial says it is alive (default 10)",
    "HPO_GRACE_SECONDS": "after how long without one its trial is failed and rerun (default 30; "
    "longer than the heartbeat)",
    "HPO_MALLOC_TUNING": "0 turns off glibc's malloc thresholds that hpo raises for speed",
    "MLFLOW_TRACKING_USERNAME": "with MLFLOW_TRACKING_PASSWORD: basic auth of hpo ui's server",
    "MLFLOW_TRACKING_PASSWORD": "(see MLFLOW_TRACKING_USERNAME)",
    "MLFLOW_TRACKING_TOKEN": "bearer auth of hpo ui's server, without a user and password",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true: hpo ui's server runs MLflow's GenAI jobs too",
    "MLFLOW_DEFAULT_PREDICTION_DEVICE": "where MLflow loads a registered model (cpu on a GPU "
    "machine: the model is saved from the CPU)",
}
ENV_HELP = "Environment: " + "; ".join(f"{k} ({v})" for k, v in ENVIRONMENT.items()) + "."
app = typer.Typer(
    help="Hyperparameter optimisation for deep learning: Optuna studies of PyTorch models, "
    "compared in MLflow. " + ENV_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


# the choices, from hpo.search.spec's registry (the spec's validation and the factories use
# it too)
Sampler = StrEnum("Sampler", {name: name for name in SAMPLERS})
Pruner = StrEnum("Pruner", {name: name for name in PRUNERS})


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class AnswerFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


Storage = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="HPO_STORAGE",
        help="Optuna storage URL; several workers share one (e.g. postgresql+psycopg2://...). "
        "'memory' keeps it in this process only. [default: sqlite:///hpo.db]",
        show_default=False,
    ),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI. An http(s) server must answer within 5 s when the command "
        "starts, else it stops with one line and exit code 2. [default: sqlite:///mlflow.db]",
        show_default=False,
    ),
]
StudyName = Annotated[
    str | None, typer.Option("--study-name", help="Study name. [default: the task name]")
]


def echo_err(text: str) -> None:
    typer.echo(text, err=True)


def parse_data(items: list[str]) -> dict[str, Any]:
    """`--data KEY=VALUE` items -> settings; values parse as JSON (224 -> int), else text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--data takes KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


DataDir = Annotated[
    str | None,
    typer.Option(
        "--data-dir",
        envvar="HPO_DATA_DIR",
        help="Where data sets are read, or downloaded to (cifar10). [default: where the "
        "study read them, else ~/.cache/hpo/data]",
        show_default=False,
    ),
]
ARGV: list[str] = []  # the command line, for --workers to start its workers with
STARTED: list[float] = []  # time.time() when main() began: --timeout counts from it
DataItems = Annotated[
    list[str] | None,
    typer.Option(
        "--data",
        metavar="KEY=VALUE",
        help="Override a data setting, e.g. --data image_size=32 (smaller is cheaper).",
    ),
]


class KindChoice(StrEnum):
    regression = "regression"
    classification = "classification"


Target = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        metavar="COL",
        help="A table's (or labels.csv's) target column; give it again for several (multi-output "
        "regression). [default: labels.csv's columns other than file and split]",
        show_default=False,
    ),
]
Kind = Annotated[
    KindChoice | None,
    typer.Option(
        help="A data set's kind where its targets do not say it (numbers mean regression, text "
        "or a few integers classification). [default: from the data]",
        show_default=False,
    ),
]
SkipBad = Annotated[
    bool,
    typer.Option(
        "--skip-bad",
        help="Leave out images that cannot be decoded (counted), instead of stopping.",
    ),
]


def task_from_spec(task: str | None, spec: str | None) -> str:
    """The command's task argument, else the --spec file's task or data set."""
    if task:
        return task
    if not spec:
        raise UserError("give a task or a data set's path (see `hpo tasks`), or --spec FILE")
    from hpo.search.spec import load_spec

    loaded = load_spec(spec)
    return loaded.dataset or loaded.task
