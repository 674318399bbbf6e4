"""`hpo train --best`'s finalists: the study's best few configs, trained again under fresh seeds
on the same training and validation images as their trials, and picked by that mean.

The best of many trials is partly the luckiest draw of its seed: on cifar10's 5,000 validation
images two configs of equal worth differ by ~0.35 points from one seed to the next, the size of
the gains the search is after (benchmarks/RESULTS.md). Scores under seeds the study never used
carry no selection bias, so the pick is the config, not the draw. Each finalist's scores are
kept in the study (user attr "rescored"), so a rerun of `hpo train` reuses them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from hpo.final.record import ATTR, PICK_ATTR, fresh_score
from hpo.tasks.base import Task
from hpo.train.config import Config
from hpo.train.data import TaskData
from hpo.train.loop import train_seeds
from hpo.util.errors import first_line
from hpo.util.outcomes import TrainingError

FINALISTS = 3  # --finalists' default, when affordable
SEEDS = 2  # fresh seeds per finalist
BUDGET_SHARE = 0.25  # by default finalists cost at most this share of the study's trial time

Echo = Callable[[str], None]


@dataclass
class Finalist:
    number: int
    value: float  # the study's (under the trial's own seeds)
    config: Config
    per_seed_seconds: float  # the trial's duration / its seeds: the cost of one rerun
    scores: dict[int, float | str] = field(default_factory=dict)  # fresh seed -> value | reason
    worst: bool = False  # judged by its worst fresh seed (the study's objective "worst")
    maximize: bool = True

    @property
    def rescored(self) -> float | None:
        """The fresh seeds' mean (or worst); None if any of them failed (a fragile config)."""
        return fresh_score(list(self.scores.values()), self.worst, self.maximize)


def candidates(study: optuna.Study, k: int) -> list[Finalist]:
    """The best `k` complete trials of a single-objective study, one per distinct config, best
    first (a local move can land on a config already trained)."""
    if len(study.directions) != 1 or k <= 0:
        return []
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    sign = -1 if maximize else 1
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and "config" in t.user_attrs
    ]
    done.sort(key=lambda t: (sign * t.value, t.number))
    out: list[Finalist] = []
    seen: set[str] = set()
    for t in done:
        key = json.dumps(t.user_attrs["config"], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        n_seeds = max(1, len(t.user_attrs.get("seeds") or [0]))
        seconds = t.duration.total_seconds() / n_seeds if t.duration else 0.0
        config = Config.from_dict(t.user_attrs["config"])
        out.append(Finalist(t.number, t.value, config, seconds, maximize=maximize))
        if len(out) == k:
            break
    return out


def fresh_seeds(study: optuna.Study, n: int) -> list[int]:
    """`n` seeds that no trial of the study trained under: the ones after its highest."""
    used = [s for t in study.get_trials(deepcopy=False) for s in t.user_attrs.get("seeds") or []]
    start = max(used, default=-1) + 1
    return list(range(start, start + n))


def spent_seconds(study: optuna.Study) -> float:
    """What the study's trials took, all workers together (finished or failed)."""
    return sum(t.duration.total_seconds() for t in study.get_trials(deepcopy=False) if t.duration)


def plan(
    study: optuna.Study, k: int | None, seeds: int, echo: Echo
) -> tuple[list[Finalist], list[int]]:
    """The finalists and their fresh seeds. `k` None is the default: FINALISTS, when their
    reruns (those not already kept in the study) cost at most BUDGET_SHARE of the study's
    trial time, else none (said in one line)."""
    if len(study.directions) != 1:
        if k:
            echo("finalists: not for a multi-objective study; retraining its pick as it is")
        return [], []
    chosen = candidates(study, FINALISTS if k is None else k)
    if len(chosen) < 2:
        return [], []
    fresh = fresh_seeds(study, seeds)
    cost = cost_seconds(study, chosen, fresh)
    if k is None and cost > BUDGET_SHARE * (spent := spent_seconds(study)):
        echo(
            f"finalists: none (the best {len(chosen)} trials under {seeds} fresh seeds each "
            f"would take ~{duration(cost)}, over a quarter of the study's {duration(spent)} "
            f"of trials; --finalists {len(chosen)} runs them)"
        )
        return [], []
    return chosen, fresh


def cost_seconds(study: optuna.Study, finalists: list[Finalist], seeds: list[int]) -> float:
    """The reruns still to do, at their trials' pace."""
    kept = study.user_attrs.get(ATTR) or {}
    return sum(
        f.per_seed_seconds
        for f in finalists
        for s in seeds
        if str(s) not in kept.get(str(f.number), {})
    )


def rescore(
    study: optuna.Study,
    finalists: list[Finalist],
    seeds: list[int],
    data: TaskData,
    *,
    metric: str,
    objective: str,
    device: torch.device,
    augment: bool,
    echo: Echo,
) -> None:
    """Train each finalist under each fresh seed (the trial's training and validation images,
    all epochs, no pruning) and record its value in `f.scores` and the study, seed by seed."""
    cached: dict[str, dict[str, Any]] = dict(study.user_attrs.get(ATTR) or {})
    todo = sum(str(s) not in cached.get(str(f.number), {}) for f in finalists for s in seeds)
    cost = cost_seconds(study, finalists, seeds)
    echo(
        f"finalists: the best {len(finalists)} trials "
        f"({', '.join(str(f.number) for f in finalists)}), each trained again under seeds "
        f"{', '.join(map(str, seeds))} and scored on the same validation images "
        + (f"({todo} runs, ~{duration(cost)} at their trials' pace)" if todo else "(done before)")
    )
    for f in finalists:
        mine = dict(cached.get(str(f.number)) or {})
        for s in seeds:
            if str(s) not in mine:
                mine[str(s)] = _one_run(f.config, data, s, metric, device, augment)
                cached[str(f.number)] = mine
                study.set_user_attr(ATTR, cached)  # kept as it goes: a rerun resumes
            f.scores[s] = mine[str(s)]
        f.worst = objective == "worst"  # the study's own objective
        echo(f"  trial {f.number}: {describe(f)}")


def _one_run(
    config: Config, data: TaskData, seed: int, metric: str, device: torch.device, augment: bool
) -> float | str:
    try:
        (trainer,) = train_seeds(config, data, [seed], device=device, augment=augment)
    except (TrainingError, torch.OutOfMemoryError) as e:
        return f"failed: {first_line(e, 120)}"
    value = float(trainer.history[-1][metric])
    return value if math.isfinite(value) else f"failed: {metric} {value}"


def describe(f: Finalist) -> str:
    runs = " ".join(v if isinstance(v, str) else f"{v:.4g}" for v in f.scores.values())
    mean = "failed" if f.rescored is None else f"{f.rescored:.4g}"
    return f"study {f.value:.4g}; fresh seeds {runs} -> {'worst' if f.worst else 'mean'} {mean}"


def pick(finalists: list[Finalist]) -> Finalist:
    """The finalist with the best score under fresh seeds (ties: the study's order); the
    study's best if every finalist failed a fresh seed."""
    scored = [f for f in finalists if f.rescored is not None]
    if not scored:
        return finalists[0]
    sign = -1 if finalists[0].maximize else 1
    return min(scored, key=lambda f: (sign * f.rescored, finalists.index(f)))


def confirm_best(
    study: optuna.Study,
    task: Task,
    data: TaskData,
    device: torch.device,
    k: int | None,
    seeds: int,
    echo: Echo,
) -> tuple[Finalist, list[Finalist]] | None:
    """(the pick, all finalists) after rescoring the study's best `k` configs (None: the
    default, see plan); None when there are no finalists to run."""
    chosen, fresh = plan(study, k, seeds, echo)
    if not chosen:
        return None
    rescore(
        study,
        chosen,
        fresh,
        data,
        metric=task.metric,
        objective=study.user_attrs.get("seed_objective", "mean"),
        device=device,
        augment=task.augment,
        echo=echo,
    )
    won = pick(chosen)
    study.set_user_attr(PICK_ATTR, won.number)
    if won is chosen[0]:
        echo(f"picked trial {won.number}, the study's best, confirmed")
    else:
        echo(f"picked trial {won.number} over the study's best, trial {chosen[0].number}")
    return won, chosen


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
