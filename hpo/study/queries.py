"""What the study holds, read back: counts and the budget, the best trial, the Pareto front, one
trial as the report shows it, the trial a time budget cut short. Read by the runner, `hpo
report`, `hpo train` and `hpo diagnose`."""

from __future__ import annotations

import math
import os
from typing import Any

import optuna
from optuna.trial import TrialState

from hpo.search import record
from hpo.search.record import TrialRecord
from hpo.study.storage import open_storage, storage_url
from hpo.util.errors import UserError, masked
from hpo.util.outcomes import Outcome, SurplusTrial
from hpo.util.values import finite, sign

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what --trials counts


def load(study_name: str, storage: str | None) -> optuna.Study:
    """The stored study, or a UserError naming the studies that do exist."""
    backend = open_storage(storage)
    try:
        return optuna.load_study(study_name=study_name, storage=backend)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(backend)]
        known = ", ".join(names) if names else "none"
        where = masked(storage_url(storage))
        raise UserError(f"no study {study_name!r} in {where} (studies there: {known})") from None


def use_data_dir(study: optuna.Study, given: str | None) -> None:
    """Read the task's data from `given` (--data-dir / HPO_DATA_DIR), else from where the
    study read it (its record), else the default."""
    chosen = given or record.info(study).data_dir
    if chosen:
        os.environ["HPO_DATA_DIR"] = chosen


def trial_numbered(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """The trial with this number (ValueError if the study has none)."""
    for trial in study.get_trials(deepcopy=False):
        if trial.number == number:
            return trial
    raise ValueError(f"study {study.study_name!r} has no trial {number}")


def best_trial(
    study: optuna.Study, trials: list[optuna.trial.FrozenTrial] | None = None
) -> optuna.trial.FrozenTrial:
    """The best trial; in a multi-objective study the Pareto-front trial with the best metric
    (the first objective). ValueError if no trial is complete yet. A single-objective study's
    is found in `trials` (all of the study's, as just read) where given, without a query."""
    if len(study.directions) == 1 and trials is not None:
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        if not done:
            raise ValueError("no complete trial yet")
        better = sign(study.directions[0])
        return max(done, key=lambda t: (better * t.value, -t.number))
    if len(study.directions) == 1:
        return study.best_trial
    front = study.best_trials
    if not front:
        raise ValueError("no complete trial yet")
    better = sign(study.directions[0])
    return max(front, key=lambda t: (better * t.values[0], -t.number))


def pareto_front(study: optuna.Study) -> list[int]:
    """Trial numbers on the Pareto front (multi-objective studies; [] otherwise)."""
    if len(study.directions) == 1:
        return []
    return sorted(t.number for t in study.best_trials)


class Budget:
    """A study's budget of finished trials, `trials` in all, shared by every worker."""

    def __init__(self, study: optuna.Study, trials: int) -> None:
        self.study, self.trials = study, trials

    def finished(self) -> int:
        return counts(self.study)[0]

    def left(self) -> int:
        return self.trials - self.finished()

    def check_surplus(self, number: int) -> int:
        """Raise SurplusTrial where workers raced past the budget check and trial `number` is
        beyond it: it is not trained. Else the trials finished so far (one read for both)."""
        trials = self.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        if sum(t.number < number for t in trials) >= self.trials:
            raise SurplusTrial(f"budget of {self.trials} already taken by other workers")
        return sum(t.state != TrialState.RUNNING for t in trials)


def counts(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials of the study, all workers together."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return len(trials) - running, running


def trial_record(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as the JSON report shows it (and the summary)."""
    kept = TrialRecord.of(t)
    return {
        "number": t.number,
        "state": t.state.name,
        "value": finite(t.values[0]) if t.values else None,  # the metric (first objective)
        "values": [finite(v) for v in t.values] if t.values else None,
        "params": kept.params,  # the whole config, flattened
        "searched": t.params,  # what the sampler chose
        "metrics": kept.metrics,
        "reason": kept.reason,
        "diagnosis": kept.diagnosis,
        "seconds": t.duration.total_seconds() if t.duration else None,
        "retry_of": optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t),
        "local_move": kept.local_move,  # "trial 0 with width 1 -> 1.25", or None
    }


def retries(study: optuna.Study) -> dict[int, int]:
    """{the trial of a worker that died: the trial that runs it again} (the heartbeat's
    stale-trial retry)."""
    retried = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number
    found = ((retried(t), t.number) for t in study.get_trials(deepcopy=False))
    return {lost: again for lost, again in found if lost is not None}


def cut_short(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best trial stopped by its time budget (pruned, with the value of its last epoch)
    if it beats every complete trial: a candidate `best_trial` does not see, which a larger
    `--trial-timeout` (or a GPU) would let finish. None otherwise, and in multi-objective
    studies."""
    if len(study.directions) != 1:
        return None
    better = sign(study.direction)
    cut = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if TrialRecord.of(t).outcome == Outcome.OUT_OF_TIME
        and t.value is not None
        and math.isfinite(t.value)
    ]
    if not cut:
        return None
    top = max(cut, key=lambda t: (better * t.value, -t.number))
    try:
        if better * top.value <= better * study.best_value:
            return None
    except ValueError:  # no complete trial: the cut one is all there is
        pass
    return top
