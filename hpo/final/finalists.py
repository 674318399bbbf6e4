"""`hpo train --best`'s finalists: the study's best few configs, trained again under fresh seeds
on the same training and validation images as their trials, and picked by that mean.

The best of many trials is partly the luckiest draw of its seed: on cifar10's 5,000 validation
images two configs of equal worth differ by ~0.35 points from one seed to the next, the size of
the gains the search is after (benchmarks/RESULTS.md). Scores under seeds the study never used
carry no selection bias, so the pick is the config, not the draw. Each finalist's scores are
kept in the study (hpo.search.record.rescored), so a rerun of `hpo train` reuses them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
import torch
from optuna.trial import TrialState

from hpo.final.scores import fresh_score
from hpo.search import record
from hpo.search.record import Score, TrialRecord
from hpo.tasks.base import Task
from hpo.train.config import Config
from hpo.train.data import TaskData
from hpo.train.loop import train_seeds
from hpo.util.errors import first_line
from hpo.util.outcomes import Outcome, TrainingError
from hpo.util.values import duration, finite, sign

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
    scores: dict[int, Score] = field(default_factory=dict)  # fresh seed -> its rerun's score
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
    maximize = sign(study.direction) > 0
    done = [
        (t, kept)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and (kept := TrialRecord.of(t)).config is not None
    ]
    done.sort(key=lambda pair: (-sign(study.direction) * pair[0].value, pair[0].number))
    out: list[Finalist] = []
    seen: set[str] = set()
    for t, kept in done:
        key = json.dumps(kept.config, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        n_seeds = max(1, len(kept.seeds or [0]))
        seconds = t.duration.total_seconds() / n_seeds if t.duration else 0.0
        config = Config.from_dict(kept.config)
        out.append(Finalist(t.number, t.value, config, seconds, maximize=maximize))
        if len(out) == k:
            break
    return out


def fresh_seeds(study: optuna.Study, n: int) -> list[int]:
    """`n` seeds that no trial of the study trained under: the ones after its highest."""
    used = [s for t in study.get_trials(deepcopy=False) for s in TrialRecord.of(t).seeds]
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
    kept = record.rescored(study)
    return sum(
        f.per_seed_seconds for f in finalists for s in seeds if s not in kept.get(f.number, {})
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
    cached = record.rescored(study)
    todo = sum(s not in cached.get(f.number, {}) for f in finalists for s in seeds)
    cost = cost_seconds(study, finalists, seeds)
    echo(
        f"finalists: the best {len(finalists)} trials "
        f"({', '.join(str(f.number) for f in finalists)}), each trained again under seeds "
        f"{', '.join(map(str, seeds))} and scored on the same validation images "
        + (f"({todo} runs, ~{duration(cost)} at their trials' pace)" if todo else "(done before)")
    )
    for f in finalists:
        mine = cached.setdefault(f.number, {})
        for s in seeds:
            if s not in mine:
                mine[s] = _one_run(f.config, data, s, metric, device, augment)
                record.set_rescored(study, cached)  # kept as it goes: a rerun resumes
            f.scores[s] = mine[s]
        f.worst = objective == "worst"  # the study's own objective
        echo(f"  trial {f.number}: {describe(f)}")


def _one_run(
    config: Config, data: TaskData, seed: int, metric: str, device: torch.device, augment: bool
) -> Score:
    try:
        (trainer,) = train_seeds(config, data, [seed], device=device, augment=augment)
    except (TrainingError, torch.OutOfMemoryError) as e:
        outcome = getattr(e, "outcome", Outcome.FAILED)
        return Score(None, outcome, first_line(e, 120))
    value = finite(trainer.history[-1][metric])
    if value is None:
        return Score(None, Outcome.DIVERGED, f"{metric} {trainer.history[-1][metric]}")
    return Score(value)


def describe(f: Finalist) -> str:
    runs = " ".join(score.shown() for score in f.scores.values())
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
        objective=record.info(study).seed_objective,
        device=device,
        augment=task.augment,
        echo=echo,
    )
    won = pick(chosen)
    record.set_picked(study, won.number)
    if won is chosen[0]:
        echo(f"picked trial {won.number}, the study's best, confirmed")
    else:
        echo(f"picked trial {won.number} over the study's best, trial {chosen[0].number}")
    return won, chosen
