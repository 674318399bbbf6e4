"""A clean terminal: hpo prints its own lines, and the libraries' logs and warnings that tell
a user nothing they can act on stay off it. HPO_LOG_LEVEL (DEBUG, INFO, WARNING, ...) brings
the libraries' logs and every warning back.

Imports nothing heavy: `hpo --help` calls `libraries()` too.
"""

from __future__ import annotations

import logging
import os
import warnings

LEVEL_ENV = "HPO_LOG_LEVEL"

# Warnings (message regex) that say nothing a user of hpo can act on:
NOISE = (
    # matplotlib, on a plot whose values are all equal (e.g. one trial, or equal importances)
    r"Attempting to set identical low and high [xy]lims",
    # optuna's plots before two trials can be told apart
    r"No artists with labels found to put in legend",
    # optuna: "X is experimental (supported from vN). The interface can change in the future."
    r".* is experimental \(supported from",
    # optuna's importance evaluator on a custom target: hpo passes one that is lower-is-better
    r"PedAnovaImportanceEvaluator computes the importances of params to achieve low",
    # optuna's importances early in a study: "fewer than 2 trials in a regime"
    r"Some regimes for parameter",
)
# Log records (logger, message start) likewise: MLflow on torch's "+cpu" / "+cu126" version
# label, which it strips from the logged requirement on its own
LOG_NOISE = (("mlflow.utils.requirements_utils", "Found torch version"),)


LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def level() -> str | None:
    """HPO_LOG_LEVEL as a logging level name, or None (quiet); any other value means INFO."""
    value = os.environ.get(LEVEL_ENV, "").strip().upper()
    if not value:
        return None
    value = "WARNING" if value == "WARN" else value
    return value if value in LEVELS else "INFO"


def libraries() -> None:
    """Call before the libraries are imported (and again after, it is idempotent): warning
    filters, and MLflow's own log level (its import sets it from MLFLOW_LOGGING_LEVEL)."""
    chosen = level()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", chosen or "WARNING")
    if chosen:
        return
    for message in NOISE:
        warnings.filterwarnings("ignore", message=message)


class _DropNoise(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


def mlflow_loggers() -> None:
    """After `import mlflow`: its loggers (and alembic's) at HPO_LOG_LEVEL, else WARNING, with
    the LOG_NOISE records dropped."""
    chosen = level()
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(chosen or logging.WARNING)
    if chosen:
        return
    for name, start in LOG_NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) and f.start == start for f in logger.filters):
            logger.addFilter(_DropNoise(start))


def optuna_level() -> int:
    """Optuna's verbosity: HPO_LOG_LEVEL, else errors only (hpo prints each trial's own line,
    where Optuna would log every failed trial with a traceback)."""
    chosen = level()
    value = logging.getLevelName(chosen) if chosen else logging.ERROR
    return value if isinstance(value, int) else logging.ERROR
