"""Judging a config over several seeds: per-epoch aggregation, worst case, success rate."""

from __future__ import annotations

import statistics
from collections.abc import Callable


def aggregate(
    per_seed: list[dict[str, float]],
    metric: str,
    direction: str,
    solved: Callable[[dict[str, float]], bool],
) -> dict[str, float]:
    """Mean of every metric over seeds, plus the objective's std, worst and success rate.

    A single seed passes through with the same keys, so reports look alike for any K.
    """
    keys = set.intersection(*(set(m) for m in per_seed))
    out = {k: statistics.fmean(m[k] for m in per_seed) for k in keys}
    values = [m[metric] for m in per_seed]
    out[f"{metric}_std"] = statistics.pstdev(values)
    out[f"{metric}_worst"] = min(values) if direction == "maximize" else max(values)
    out["success_rate"] = sum(solved(m) for m in per_seed) / len(per_seed)
    return out


def objective_value(metrics: dict[str, float], metric: str, objective: str) -> float:
    """What the sampler optimises: the mean over seeds (default) or the worst seed."""
    return metrics[f"{metric}_worst"] if objective == "worst" else metrics[metric]


def seed_list(base: int | None, k: int) -> list[int]:
    """The K training seeds every trial is judged on (the same for all trials)."""
    start = (base or 0) * 1_000
    return [start + i for i in range(k)]
