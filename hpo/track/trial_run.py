"""What MLflow should hold of one trial run (TrialRun), kept while its server is away, and the
words a trial run ends with: Optuna's state as its `optuna_state` tag, the tags of a run
whose worker died."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Metric


def lost_tags(retry: int) -> dict[str, str]:
    """The tags of a run whose worker died, ended KILLED: its trial failed, and the trial that
    runs it again."""
    return {"optuna_state": "FAIL", "reason": f"its worker stopped; trial {retry} runs it again"}


# Optuna's name for how a trial ended, as the trial run's `optuna_state` tag
OPTUNA_STATE = {"complete": "COMPLETE", "pruned": "PRUNED", "out_of_time": "PRUNED"}


@dataclass
class TrialRun:
    """What MLflow should hold of one trial, and what it does not hold yet."""

    number: int
    tags: dict[str, Any]  # its tags at creation
    params: dict[str, Any]
    run_id: str | None = None  # once created
    metrics: list[Metric] = field(default_factory=list)  # not sent yet
    final_tags: dict[str, Any] = field(default_factory=dict)  # not sent yet
    state: str | None = None  # how it ended (Optuna's name), once it did
    tried: bool = False  # a call to create it failed: MLflow may have made it all the same
    sent: float = field(default_factory=time.monotonic)  # when its metrics last went
