"""What fixed the user's net, measured: change one knob of the original config at a time over the
values the search space allows, find a smallest set of changes that succeeds in K of K seeds,
and the reverse (from the best config, put back one original value at a time).

Affordable on a CPU: every change is screened on one seed and only a change that solves it
there is confirmed on the other seeds; each run stops early where it can and is cached
(hpo.diagnose.runs). Knows neither Optuna nor MLflow.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any

from hpo.diagnose.changes import Change, reverse_changes
from hpo.diagnose.runs import Run, Runner, describe, display, hopeless  # noqa: F401
from hpo.train.config import Config

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


def over(runner: Runner, config: Config, seeds: list[int], what: str, screen_only: bool = False):
    """`config` on seeds[0], then (unless screen_only, or it failed there) on the rest."""
    runs = [runner.run(config, seeds[0], what)]
    if not screen_only and runs[0].solved:
        runs += [runner.run(config, s, what) for s in seeds[1:]]
    return summarise(runs, runner.task, len(seeds))


def summarise(runs: list[Run], task: Any, k: int) -> dict[str, Any]:
    """Success count over the seeds run, and the mean success metric and task metric."""
    name = task.success[0]
    finished = [r.metrics for r in runs if r.metrics]

    def mean(key: str) -> float | None:
        values = [m[key] for m in finished if key in m]
        return statistics.fmean(values) if values else None

    return {
        "seeds_run": len(runs),
        "of_seeds": k,
        "solved": sum(r.solved for r in runs),
        "success_metric": name,
        "success_value": mean(name),
        "metric": task.metric,
        "metric_value": mean(task.metric),
        "epochs": [r.epochs for r in runs],
        "labels": dict(Counter(r.label for r in runs)),
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
    single change succeeds in K of K seeds, a greedy set of them (`greedy`)."""
    rows: list[dict[str, Any]] = []
    fix: dict[str, Any] | None = None
    for i, change in enumerate(changes, 1):
        what = f"[{i}/{len(changes)}] {change.text}"
        result = over(runner, change.apply(original), seeds, what)
        rows.append(change.record() | result)
        if confirmed(result) and fix is None:
            fix = {"changes": [change.record()], "result": result}
            if not screen_all:
                break
    if fix is not None:
        return {"singles": rows, "screened": len(rows), "of": len(changes), "smallest": fix}
    steps, fix = greedy(runner, original, changes, rows, seeds, original_value)
    return {
        "singles": rows,
        "screened": len(rows),
        "of": len(changes),
        "greedy": steps,
        "smallest": fix,
    }


def greedy(
    runner: Runner,
    original: Config,
    changes: list[Change],
    rows: list[dict[str, Any]],
    seeds: list[int],
    original_value: float | None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(the steps, the fix or None): the best value of each knob, knobs in the order of their
    screened effect (`rows`), each added to the set if it helps, until it succeeds in K of K."""
    best_per_knob: dict[str, tuple[float, Change]] = {}
    for change, row in zip(changes, rows, strict=False):
        value = row["success_value"]
        if value is None or (original_value is not None and value <= original_value):
            continue
        if change.knob not in best_per_knob or value > best_per_knob[change.knob][0]:
            best_per_knob[change.knob] = (value, change)
    chosen: list[Change] = []
    config, current = original, original_value
    steps = []
    for _, change in sorted(best_per_knob.values(), key=lambda vc: -vc[0]):
        try:
            trial = change.apply(config)
        except ValueError:
            continue
        what = "[set] " + " + ".join(c.text for c in [*chosen, change])
        result = over(runner, trial, seeds, what)
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
            return steps, {"changes": [c.record() for c in chosen], "result": result}
    return steps, None


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
        result = over(runner, config, seeds, what, screen_only=True)
        if confirm and not result["solved"]:
            result = summarise(
                result["runs"] + [runner.run(config, s, what) for s in seeds[1:]],
                runner.task,
                len(seeds),
            )
        rows.append(change.record() | result)
    return rows


def reproduced(task_name: str, runs: list[Run]) -> dict[str, Any] | None:
    """Whether the replayed original shows the failure its user reported, seed by seed."""
    reported = REPORTED.get(task_name)
    if reported is None:
        return None
    if "label" in reported:
        hits = sum(r.label == reported["label"] for r in runs)
    else:
        metric, most = reported["at_most"]
        hits = sum(r.metrics.get(metric, 0.0) <= most for r in runs if r.metrics)
    return {"reported": reported["text"], "seeds": hits, "of": len(runs)}
