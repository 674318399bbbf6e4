"""What fixed the user's net, measured: change one knob of the original config at a time over the
values the search space allows, find a smallest set of changes that succeeds in K of K seeds,
and the reverse (from the best config, put back one original value at a time).

Affordable on a CPU: every change is screened on one seed and only a change that solves it
there is confirmed on the other seeds; a run stops once it is solved (unless full_budget) or
once its curve cannot succeed (`hopeless`); every run is cached in memory and on disk. Knows
neither Optuna nor MLflow.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hpo.diagnose.changes import Change, reverse_changes
from hpo.study import references
from hpo.train.config import Config
from hpo.train.labels import diagnose
from hpo.train.loop import train
from hpo.util.errors import first_line
from hpo.util.outcomes import Outcome, TrainingError

Echo = Callable[[str], None]
CACHE_VERSION = 1  # bump when what a cached ablation run means changes
DEAD_SPREAD = 1e-6  # regression outputs this constant over the validation set: a dead net
OPTIMISM = 2.0  # a curve is hopeless when even twice its best gain per epoch cannot reach it
NAMES = {"val_r2": "R²", "val_accuracy": "val accuracy", "val_mse": "val MSE"}

# The failure each user reported (docs/scenarios.md), and how to tell that a replay shows it.
REPORTED: dict[str, dict[str, Any]] = {
    "box": {"text": "the network just predicts the mean", "label": "collapsed_to_mean"},
    "pixel": {
        "text": "sometimes it trains, sometimes it sits at 50 %",
        "label": "stuck_at_chance",
    },
    "cifar10": {
        "text": "validation accuracy stuck at ~60 %, validation loss rising after ~15 epochs",
        "at_most": ("val_accuracy", 0.65),
    },
}


def display(metric: str) -> str:
    return NAMES.get(metric, metric)


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
    _memo: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(self, config: Config, seed: int, what: str = "") -> dict[str, Any]:
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
            result, was_cached = references.cached(
                "ablation", key, lambda: self._train(config, seed, what)
            )
        else:
            result, was_cached = self._train(config, seed, what), False
        if was_cached:
            self.echo(f"  {what} seed {seed}: {describe(result, self.task)} (cached)")
        self._memo[key] = result
        return result

    def _train(self, config: Config, seed: int, what: str) -> dict[str, Any]:
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

        stopped, reason, outcome = "budget", "", Outcome.COMPLETE
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
            stopped = "solved"
        except Hopeless as e:
            stopped, reason = "hopeless", str(e)
        except TrainingError as e:
            stopped, reason, outcome = "error", str(e), e.outcome
            history = list(getattr(e, "history", history))
        except (ValueError, RuntimeError) as e:  # e.g. the net does not fit the image size
            stopped, reason, outcome = "error", first_line(e), Outcome.FAILED
        seconds = time.monotonic() - t0
        self.runs += 1
        self.seconds += seconds
        result = {
            "seed": seed,
            "epochs": len(history),
            "metrics": dict(history[-1]) if history else {},
            "solved": bool(history) and self.task.solved(history[-1]) and stopped != "error",
            "label": diagnose(history, outcome),
            "stopped": stopped,
            "reason": reason,
            "seconds": seconds,
        }
        self.echo(f"  {what} seed {seed}: {describe(result, self.task)} ({seconds:.0f} s)")
        return result

    def over(self, config: Config, seeds: list[int], what: str, screen_only: bool = False):
        """`config` on seeds[0], then (unless screen_only, or it failed there) on the rest."""
        runs = [self.run(config, seeds[0], what)]
        if not screen_only and runs[0]["solved"]:
            runs += [self.run(config, s, what) for s in seeds[1:]]
        return summarise(runs, self.task, len(seeds))


def hopeless(history: list[dict[str, float]], budget: int, success: tuple[str, float]) -> str:
    """Why the curve so far cannot reach `success` by epoch `budget` (empty if it might).

    A regression net whose outputs are the same for every input is dead (ReLU units that are
    all off pass no gradient back). Otherwise, from half the budget on: the success metric
    plus twice its best gain per epoch so far, for every epoch left, stays below the target.
    """
    name, threshold = success
    last, epoch = history[-1], len(history)
    if last.get("val_pred_spread", 1.0) < DEAD_SPREAD:
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


def describe(run: dict[str, Any], task: Any) -> str:
    name = task.success[0]
    m = run["metrics"]
    shown = f"{display(name)} {m[name]:.4f}" if name in m else "no epoch finished"
    if run["stopped"] == "solved":
        return f"{shown}, solved at epoch {run['epochs']}"
    if run["stopped"] == "hopeless":
        return f"{shown}, stopped at epoch {run['epochs']}: {run['reason']}"
    if run["stopped"] == "error":
        return f"{shown}, {run['label']}: {run['reason']}"
    return f"{shown} after {run['epochs']} epochs ({'solved' if run['solved'] else run['label']})"


def summarise(runs: list[dict[str, Any]], task: Any, k: int) -> dict[str, Any]:
    """Success count over the seeds run, and the mean success metric and task metric."""
    name = task.success[0]
    finished = [r["metrics"] for r in runs if r["metrics"]]

    def mean(key: str) -> float | None:
        values = [m[key] for m in finished if key in m]
        return statistics.fmean(values) if values else None

    return {
        "seeds_run": len(runs),
        "of_seeds": k,
        "solved": sum(r["solved"] for r in runs),
        "success_metric": name,
        "success_value": mean(name),
        "metric": task.metric,
        "metric_value": mean(task.metric),
        "epochs": [r["epochs"] for r in runs],
        "labels": dict(Counter(r["label"] for r in runs)),
        "runs": runs,
    }


def confirmed(result: dict[str, Any]) -> bool:
    return result["seeds_run"] == result["of_seeds"] == result["solved"]


def forward(
    runner: Runner,
    original: Config,
    changes: list[Change],
    seeds: list[int],
    screen_all: bool,
    original_value: float | None,
) -> dict[str, Any]:
    """One-knob changes screened on one seed (confirmed on all when solved there); then, if no
    single change succeeds in K of K seeds, a greedy set: add the best change of each knob in
    the order of their screened effect until the set succeeds in K of K."""
    rows: list[dict[str, Any]] = []
    fix: dict[str, Any] | None = None
    for i, change in enumerate(changes, 1):
        what = f"[{i}/{len(changes)}] {change.text}"
        result = runner.over(change.apply(original), seeds, what)
        rows.append(change.record() | result)
        if confirmed(result) and fix is None:
            fix = {"changes": [change.record()], "result": result}
            if not screen_all:
                break
    if fix is not None:
        return {"singles": rows, "screened": len(rows), "of": len(changes), "smallest": fix}
    # greedy: the best value of each knob, knobs in the order of their screened effect
    best_per_knob: dict[str, tuple[float, Change]] = {}
    for change, row in zip(changes, rows, strict=False):
        value = row["success_value"]
        if value is None or (original_value is not None and value <= original_value):
            continue
        if change.knob not in best_per_knob or value > best_per_knob[change.knob][0]:
            best_per_knob[change.knob] = (value, change)
    ranked = sorted(best_per_knob.values(), key=lambda vc: -vc[0])
    chosen: list[Change] = []
    config, current = original, original_value
    steps = []
    for _, change in ranked:
        try:
            trial = change.apply(config)
        except ValueError:
            continue
        what = "[set] " + " + ".join(c.text for c in [*chosen, change])
        result = runner.over(trial, seeds, what)
        kept = current is None or (result["success_value"] or -math.inf) > current
        steps.append(
            {"changes": [c.record() for c in [*chosen, change]], "added": change.text}
            | result
            | {"kept": kept}
        )
        if not kept:  # it did not help on top of the others: leave it out
            continue
        chosen.append(change)
        config, current = trial, result["success_value"]
        if confirmed(result):
            fix = {"changes": [c.record() for c in chosen], "result": result}
            break
    return {
        "singles": rows,
        "screened": len(rows),
        "of": len(changes),
        "greedy": steps,
        "smallest": fix,
    }


def backward(
    runner: Runner, best: Config, original: Config, seeds: list[int], confirm: bool = True
):
    """From `best`, put back each original value (group of fields) in turn: screened on one
    seed; when `confirm` (the best config succeeds), a put-back that breaks it there is run on
    every seed (a necessary change)."""
    changes = reverse_changes(best, original)
    rows = []
    for i, change in enumerate(changes, 1):
        what = f"[back {i}/{len(changes)}] {change.text}"
        config = change.apply(best)
        result = runner.over(config, seeds, what, screen_only=True)
        if confirm and not result["solved"]:
            result = summarise(
                result["runs"] + [runner.run(config, s, what) for s in seeds[1:]],
                runner.task,
                len(seeds),
            )
        rows.append(change.record() | result)
    return rows


def reproduced(task_name: str, runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Whether the replayed original shows the failure its user reported, seed by seed."""
    reported = REPORTED.get(task_name)
    if reported is None:
        return None
    if "label" in reported:
        hits = sum(r["label"] == reported["label"] for r in runs)
    else:
        metric, most = reported["at_most"]
        hits = sum(r["metrics"].get(metric, 0.0) <= most for r in runs if r["metrics"])
    return {"reported": reported["text"], "seeds": hits, "of": len(runs)}
