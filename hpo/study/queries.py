"""What the study holds, read back: counts, the best trial, the Pareto front, one trial as the
report shows it, the trial a time budget cut short. Read by the runner, `hpo report`, `hpo train`
and `hpo diagnose`."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import TrialState

from hpo.study.storage import mask, open_storage, storage_url
from hpo.util.errors import UserError
from hpo.util.outcomes import Outcome
from hpo.util.values import finite

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what --trials counts


def load(study_name: str, storage: str | None) -> optuna.Study:
    """The stored study, or a UserError naming the studies that do exist."""
    backend = open_storage(storage)
    try:
        return optuna.load_study(study_name=study_name, storage=backend)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(backend)]
        known = ", ".join(names) if names else "none"
        where = mask(storage_url(storage))
        raise UserError(f"no study {study_name!r} in {where} (studies there: {known})") from None


def trial_numbered(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """The trial with this number (ValueError if the study has none)."""
    for trial in study.get_trials(deepcopy=False):
        if trial.number == number:
            return trial
    raise ValueError(f"study {study.study_name!r} has no trial {number}")


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best trial; in a multi-objective study the Pareto-front trial with the best metric
    (the first objective). ValueError if no trial is complete yet."""
    if len(study.directions) == 1:
        return study.best_trial
    front = study.best_trials
    if not front:
        raise ValueError("no complete trial yet")
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(front, key=lambda t: (sign * t.values[0], -t.number))


def pareto_front(study: optuna.Study) -> list[int]:
    """Trial numbers on the Pareto front (multi-objective studies; [] otherwise)."""
    if len(study.directions) == 1:
        return []
    return sorted(t.number for t in study.best_trials)


def counts(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials of the study, all workers together."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return len(trials) - running, running


def trial_record(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as the JSON report shows it (and the summary)."""
    attrs = t.user_attrs
    return {
        "number": t.number,
        "state": t.state.name,
        "value": finite(t.values[0]) if t.values else None,  # the metric (first objective)
        "values": [finite(v) for v in t.values] if t.values else None,
        "params": attrs.get("params", t.params),  # the whole config, flattened
        "searched": t.params,  # what the sampler chose
        "metrics": attrs.get("metrics", {}),
        "reason": attrs.get("fail_reason") or attrs.get("prune_reason") or "",
        "diagnosis": attrs.get("diagnosis"),
        "seconds": t.duration.total_seconds() if t.duration else None,
        "retry_of": optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t),
        "local_move": attrs.get("local_move"),  # "trial 0 with width 1 -> 1.25", or None
    }


def cut_short(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best trial stopped by its time budget (pruned, with the value of its last epoch)
    if it beats every complete trial: a candidate `best_trial` does not see, which a larger
    `--trial-timeout` (or a GPU) would let finish. None otherwise, and in multi-objective
    studies."""
    if len(study.directions) != 1:
        return None
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    cut = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if t.user_attrs.get("outcome") == Outcome.OUT_OF_TIME
        and t.value is not None
        and math.isfinite(t.value)
    ]
    if not cut:
        return None
    top = max(cut, key=lambda t: (sign * t.value, -t.number))
    try:
        if sign * top.value <= sign * study.best_value:
            return None
    except ValueError:  # no complete trial: the cut one is all there is
        pass
    return top
