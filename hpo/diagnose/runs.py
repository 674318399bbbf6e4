"""One run of the ablation behind `hpo diagnose`: a config under one seed at the original's
budget, stopped once it is solved (unless full_budget) or once its curve cannot succeed
(`hopeless`), cached in memory and on disk (Runner), and what it gives back (Run, carrying its
Outcome). Knows neither Optuna nor MLflow."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from hpo.study import references
from hpo.train.config import Config
from hpo.train.labels import dead, diagnose
from hpo.train.loop import train
from hpo.util.errors import first_line
from hpo.util.outcomes import Outcome, TrainingError

Echo = Callable[[str], None]
CACHE_VERSION = 1  # bump when what a cached ablation run means changes
OPTIMISM = 2.0  # a curve is hopeless when even twice its best gain per epoch cannot reach it
NAMES = {"val_r2": "R²", "val_accuracy": "val accuracy", "val_mse": "val MSE"}


def display(metric: str) -> str:
    return NAMES.get(metric, metric)


class Stopped(StrEnum):
    """Why a run stopped where it did."""

    BUDGET = "budget"  # it ran the original's whole budget
    SOLVED = "solved"  # it reached the task's success threshold (no more is needed)
    HOPELESS = "hopeless"  # its curve cannot reach the threshold within the budget
    ERROR = "error"  # it could not go on (diverged, failed)


@dataclass
class Run:
    """One config under one seed: how far it got, and how it ended."""

    seed: int
    epochs: int  # epochs it trained
    metrics: dict[str, float]  # of its last epoch
    solved: bool
    label: str  # hpo.train.labels
    stopped: Stopped
    reason: str = ""
    seconds: float = 0.0
    outcome: Outcome = Outcome.COMPLETE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, stored: dict[str, Any]) -> Run:
        """A run as the cache (or an older cache, without its outcome) kept it."""
        fields = {k: v for k, v in stored.items() if k in cls.__dataclass_fields__}
        fields["stopped"] = Stopped(fields["stopped"])
        fields["outcome"] = Outcome(fields.get("outcome", Outcome.COMPLETE))
        return cls(**fields)


# running configs: one seed, then K


class Solved(Exception):
    """A run reached the task's success threshold before its budget: it stops there."""


class Hopeless(Exception):
    """A run's curve cannot reach the threshold within its budget; the message says why."""


@dataclass
class Runner:
    """Trains configs at the original's budget, one cached run per (config, seed)."""

    task: Any
    data: Any
    settings: dict[str, Any]
    device: Any
    budget: int  # epochs: the original's replay budget
    echo: Echo
    full_budget: bool = False  # train to the budget even once solved
    disk_cache: bool = True
    runs: int = 0  # trained here (not cached)
    seconds: float = 0.0
    _memo: dict[str, Run] = field(default_factory=dict)

    def run(self, config: Config, seed: int, what: str = "") -> Run:
        """One seed of `config` (budget epochs); stops once solved or hopeless."""
        config = config.replace(epochs=self.budget)
        key = references.key_of(
            version=CACHE_VERSION,
            task=self.task.name,
            data=self.settings,
            config=config.to_dict(),
            device=self.device.type,
            seed=seed,
            full=self.full_budget,
        )
        if key in self._memo:
            return self._memo[key]
        if self.disk_cache:
            stored, was_cached = references.cached(
                "ablation", key, lambda: self._train(config, seed, what).to_dict()
            )
            result = Run.of(stored)
        else:
            result, was_cached = self._train(config, seed, what), False
        if was_cached:
            self.echo(f"  {what} seed {seed}: {describe(result, self.task)} (cached)")
        self._memo[key] = result
        return result

    def _train(self, config: Config, seed: int, what: str) -> Run:
        history: list[dict[str, float]] = []
        t0 = time.monotonic()
        name, threshold = self.task.success

        def report(epoch: int, metrics: dict[str, float]) -> None:
            history.append(metrics)
            if metrics.get("epoch_seconds", 0) > 5:  # slow epochs: show progress
                self.echo(
                    f"    {what} seed {seed} epoch {epoch}/{self.budget}: "
                    f"{display(name)} {metrics.get(name, float('nan')):.4f} "
                    f"({metrics['epoch_seconds']:.0f} s)"
                )
            if epoch < self.budget:
                if not self.full_budget and self.task.solved(metrics):
                    raise Solved
                why = hopeless(history, self.budget, self.task.success)
                if why:
                    raise Hopeless(why)

        stopped, reason, outcome = Stopped.BUDGET, "", Outcome.COMPLETE
        try:
            train(
                config,
                self.data,
                device=self.device,
                seed=seed,
                report=report,
                augment=self.task.augment,
            )
        except Solved:
            stopped = Stopped.SOLVED
        except Hopeless as e:
            stopped, reason = Stopped.HOPELESS, str(e)
        except TrainingError as e:
            stopped, reason, outcome = Stopped.ERROR, str(e), e.outcome
            history = list(getattr(e, "history", history))
        except (ValueError, RuntimeError) as e:  # e.g. the net does not fit the image size
            stopped, reason, outcome = Stopped.ERROR, first_line(e), Outcome.FAILED
        seconds = time.monotonic() - t0
        self.runs += 1
        self.seconds += seconds
        result = Run(
            seed=seed,
            epochs=len(history),
            metrics=dict(history[-1]) if history else {},
            solved=bool(history) and self.task.solved(history[-1]) and stopped != Stopped.ERROR,
            label=diagnose(history, outcome),
            stopped=stopped,
            reason=reason,
            seconds=seconds,
            outcome=outcome,
        )
        self.echo(f"  {what} seed {seed}: {describe(result, self.task)} ({seconds:.0f} s)")
        return result


def hopeless(history: list[dict[str, float]], budget: int, success: tuple[str, float]) -> str:
    """Why the curve so far cannot reach `success` by epoch `budget` (empty if it might).

    A regression net whose outputs are the same for every input is dead (ReLU units that are
    all off pass no gradient back). Otherwise, from half the budget on: the success metric
    plus twice its best gain per epoch so far, for every epoch left, stays below the target.
    """
    name, threshold = success
    last, epoch = history[-1], len(history)
    if dead(last):
        return f"its outputs are the same for every input at epoch {epoch} (a dead net)"
    if epoch < max(2, math.ceil(budget / 2)) or name not in last:
        return ""
    values = [h[name] for h in history]
    gain = max(b - a for a, b in zip(values, values[1:], strict=False))
    reach = values[-1] + OPTIMISM * max(gain, 0.0) * (budget - epoch)
    if reach < threshold:
        return (
            f"{display(name)} {values[-1]:.3g} at epoch {epoch}: at twice its best gain per "
            f"epoch it would reach {reach:.3g} < {threshold} by epoch {budget}"
        )
    return ""


def describe(run: Run, task: Any) -> str:
    name = task.success[0]
    m = run.metrics
    shown = f"{display(name)} {m[name]:.4f}" if name in m else "no epoch finished"
    if run.stopped == Stopped.SOLVED:
        return f"{shown}, solved at epoch {run.epochs}"
    if run.stopped == Stopped.HOPELESS:
        return f"{shown}, stopped at epoch {run.epochs}: {run.reason}"
    if run.stopped == Stopped.ERROR:
        return f"{shown}, {run.label}: {run.reason}"
    return f"{shown} after {run.epochs} epochs ({'solved' if run.solved else run.label})"
