"""How `hpo train --best` scores its finalists (the reruns under fresh seeds judged as the study
judges seeds), and what it kept in the study, read back for `hpo report`. Free of torch, as the
report is."""

from __future__ import annotations

import statistics
from typing import Any

import optuna

from hpo.search import record
from hpo.search.record import Score
from hpo.util.values import sign


def fresh_score(scores: list[Score], worst: bool, maximize: bool) -> float | None:
    """A finalist's reruns under fresh seeds judged as the study judges seeds: their mean, or
    (`worst`) the worst; None if any of them failed or there are none."""
    if not scores or not all(s.ok for s in scores):
        return None
    values = [s.value for s in scores]
    if worst:
        return min(values) if maximize else max(values)
    return statistics.fmean(values)


def kept(study: optuna.Study) -> dict[str, Any] | None:
    """The finalists `hpo train --best` scored, best study value first, each with every fresh
    seed's score kept and their fresh_score, and the trial it picked; None before it ran (or
    for a multi-objective study, which has none)."""
    if len(study.directions) != 1:
        return None
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    maximize = sign(study.direction) > 0
    worst = record.info(study).seed_objective == "worst"
    rows = []
    for number, scores in record.rescored(study).items():
        t = trials.get(number)
        if t is None or t.value is None:
            continue
        rows.append(
            {
                "number": t.number,
                "study_value": t.value,
                "fresh": {str(s): v.stored() for s, v in scores.items()},  # value or "failed: .."
                "score": fresh_score(list(scores.values()), worst, maximize),
            }
        )
    if not rows:
        return None
    rows.sort(key=lambda r: (-sign(study.direction) * r["study_value"], r["number"]))
    return {
        "trials": rows,
        "objective": "worst" if worst else "mean",
        "picked": record.picked(study),
    }
