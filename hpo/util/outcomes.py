"""How a training run or a trial ends, as types: an Outcome value is stored with every trial
and replay, and every message is made from it (never parsed back out of a message)."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How a trial (or a replay) ended. Stored in the study as the trial's `outcome` attr."""

    COMPLETE = "complete"
    PRUNED = "pruned"  # stopped by the pruner
    OUT_OF_TIME = "out_of_time"  # stopped by its trial_timeout (pruned, with its last value)
    DIVERGED = "diverged"  # the loss became NaN or infinite
    FAILED = "failed"  # any other error (recorded with its reason)
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM
    SURPLUS = "surplus"  # other workers already filled the budget: not trained


class Stop(StrEnum):
    """Why a study run ended before its budget was filled (NONE: it was not cut short)."""

    NONE = ""
    TIMEOUT = "timeout"  # --timeout reached
    FAILURES = "failures"  # too many trials in a row failed: a broken setup


class TrainingError(RuntimeError):
    """A run that cannot go on; its message is the reason recorded for the trial."""

    outcome = Outcome.FAILED


class Diverged(TrainingError):
    """The training loss became NaN or infinite."""

    outcome = Outcome.DIVERGED


class OutOfTime(TrainingError):
    """The trial's time budget ran out; `history` holds the epochs that did finish."""

    outcome = Outcome.OUT_OF_TIME

    def __init__(self, message: str, history: list[dict[str, float]]) -> None:
        super().__init__(message)
        self.history = history


class SurplusTrial(Exception):
    """Other workers already started enough trials to fill the budget."""

    outcome = Outcome.SURPLUS
