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

ENV_HELP = (
    "Environment: HPO_STORAGE (study storage URL), MLFLOW_TRACKING_URI (MLflow store), "
    "HPO_DATA_DIR (data sets), HPO_CACHE_DIR (cached baselines and original replays), "
    "HPO_LOG_LEVEL (DEBUG, INFO, ...: the libraries' logs and warnings, hidden by default)."
)
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
