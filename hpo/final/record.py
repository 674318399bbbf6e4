"""What `hpo train --best`'s finalists (hpo.final.finalists) keep in the study, and reading it back
for `hpo report`. Free of torch, as the report is."""

from __future__ import annotations

import statistics
from typing import Any

import optuna

ATTR = "rescored"  # study user attr: {trial number: {seed: value or failure reason}}
PICK_ATTR = "finalists_pick"  # study user attr: the trial hpo train --best last picked


def fresh_score(scores: list[float | str], worst: bool, maximize: bool) -> float | None:
    """A finalist's reruns under fresh seeds judged as the study judges seeds: their mean, or
    (`worst`) the worst; None if any of them failed (a reason, not a value) or there are none."""
    if not scores or any(isinstance(v, str) for v in scores):
        return None
    values = [float(v) for v in scores]
    if worst:
        return min(values) if maximize else max(values)
    return statistics.fmean(values)


def kept(study: optuna.Study) -> dict[str, Any] | None:
    """The finalists `hpo train --best` scored, best study value first, each with every fresh
    seed's score kept and their fresh_score, and the trial it picked; None before it ran (or
    for a multi-objective study, which has none)."""
    if len(study.directions) != 1:
        return None
    stored = study.user_attrs.get(ATTR) or {}
    trials = {str(t.number): t for t in study.get_trials(deepcopy=False)}
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    worst = study.user_attrs.get("seed_objective", "mean") == "worst"
    rows = []
    for number, scores in stored.items():
        t = trials.get(number)
        if t is None or t.value is None:
            continue
        rows.append(
            {
                "number": t.number,
                "study_value": t.value,
                "fresh": dict(scores),  # seed (as text) -> value or "failed: ..."
                "score": fresh_score(list(scores.values()), worst, maximize),
            }
        )
    if not rows:
        return None
    rows.sort(key=lambda r: ((-1 if maximize else 1) * r["study_value"], r["number"]))
    return {
        "trials": rows,
        "objective": "worst" if worst else "mean",
        "picked": study.user_attrs.get(PICK_ATTR),
    }
