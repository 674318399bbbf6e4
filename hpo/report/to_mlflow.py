"""`hpo report --to-mlflow`: make MLflow hold one run per finished trial of the study, as the
study has it. A study goes on while MLflow is away (hpo.track.study_log); the runs it could not
send, and the runs a killed worker left RUNNING, are written or ended here from what the study
keeps: params, tags, final metrics and the objective at each epoch. Runs MLflow already has
are left as they are, so running it twice writes nothing the second time."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.search import record
from hpo.study.queries import retries
from hpo.track.client import Tracker, metric_batch
from hpo.track.trial_run import OPTUNA_STATE, lost_tags

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class Sent:
    written: int = 0  # trial runs MLflow lacked
    ended: int = 0  # trial runs left RUNNING by a worker that stopped, now ended
    kept: int = 0  # trial runs MLflow had whole
    twins: int = 0  # second runs of one trial, deleted (a create call retried by MLflow's
    # client after the server made the run but its answer was lost)

    def line(self, uri: str) -> str:
        return (
            f"MLflow {uri}: {self.written} trial run(s) written, {self.ended} left running "
            f"ended, {self.kept} already there"
            + (f", {self.twins} duplicate(s) deleted" if self.twins else "")
        )


def to_mlflow(study: optuna.Study, tracking_uri: str | None) -> tuple[Sent, str]:
    """Write what MLflow lacks of the study's finished trials; (what was done, the store)."""
    tracker = Tracker(tracking_uri, study.study_name)
    info = record.info(study)
    parent = record.parent_run(study)
    if parent is None:  # the study ran without MLflow: its parent run is made now
        tags = {"metric": info.metric or "", "direction": study.direction.name.lower()}
        parent = tracker.create_parent(study.study_name, info.task or "", tags)
        record.set_parent_run(study, parent)
    have: dict[int, list] = {}
    for run in tracker.trial_runs(parent):
        number = run.data.tags.get("trial_number", "")
        if number.isdigit():
            have.setdefault(int(number), []).append(run)
    sent, retried = Sent(), retries(study)
    for trial in study.get_trials(deepcopy=False, states=FINISHED):
        runs = _one(tracker, have.get(trial.number, []), sent)
        running = [r for r in runs if r.info.status == "RUNNING"]
        if not runs:
            _write(tracker, parent, trial, info)
            sent.written += 1
        elif running:
            for run in running:  # its epochs were sent live, unless MLflow was away
                if trial.number in retried:  # its worker died: as its retry would have ended it
                    tracker.kill(run.info.run_id, lost_tags(retried[trial.number]))
                else:
                    _end(tracker, run.info.run_id, trial, info, not run.data.metrics)
            sent.ended += 1
        else:
            sent.kept += 1
    _end_parent(tracker, study, parent, info.metric)
    return sent, tracker.uri


def _one(tracker: Tracker, runs: list, sent: Sent) -> list:
    """Of a trial's runs, the one hpo logged into (the most params and metrics); the others
    are deleted."""
    runs = sorted(runs, key=lambda r: len(r.data.params) + len(r.data.metrics), reverse=True)
    for twin in runs[1:]:
        tracker.delete(twin.info.run_id)
        sent.twins += 1
    return runs[:1]


def _end_parent(tracker: Tracker, study: optuna.Study, parent: str, metric: str | None) -> None:
    """The parent run ends FINISHED, with the best `metric`, once no trial runs (a summary
    that MLflow missed)."""
    if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        return
    if tracker.status(parent) != "RUNNING":
        return
    best = study.best_trial.value if _has_complete(study) and len(study.directions) == 1 else None
    if best is not None and metric:
        tracker.log_metrics(parent, {f"best_{metric}": best})
    tracker.end_run(parent, "COMPLETE")


def _has_complete(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _state(trial: FrozenTrial) -> str:
    rec = record.TrialRecord.of(trial)
    if rec.outcome is not None:
        return OPTUNA_STATE.get(rec.outcome.value, "FAIL")
    return {TrialState.COMPLETE: "COMPLETE", TrialState.PRUNED: "PRUNED"}.get(trial.state, "FAIL")


def _write(tracker: Tracker, parent: str, trial: FrozenTrial, info: record.StudyInfo) -> None:
    rec = record.TrialRecord.of(trial)
    tags = {
        "kind": "trial",
        "task": info.task or "",
        "trial_number": trial.number,
        "optuna_state": "RUNNING",
        "seeds": ",".join(map(str, rec.seeds)),
        "written_by": "hpo report --to-mlflow",
    } | ({"local_move": rec.local_move} if rec.local_move else {})
    run_id = tracker.start_run(parent, f"trial-{trial.number}", tags)
    tracker.log_params(run_id, rec.params)
    _end(tracker, run_id, trial, info)


def _end(
    tracker: Tracker,
    run_id: str,
    trial: FrozenTrial,
    info: record.StudyInfo,
    epochs: bool = True,
) -> None:
    """The trial's final metrics and tags (and its `epochs`), then the run's end as Optuna's
    state."""
    rec, state = record.TrialRecord.of(trial), _state(trial)
    # the value reported at each epoch is the metric's mean over seeds unless the study
    # judges a config by its worst seed
    name = info.metric if info.seed_objective == "mean" and info.metric else "objective"
    values = sorted(trial.intermediate_values.items()) if epochs else []
    steps = [m for epoch, v in values for m in metric_batch({name: v}, epoch)]
    last = max(trial.intermediate_values, default=0)
    steps += [m for m in metric_batch(rec.metrics, last) if not (values and m.key == name)]
    tags = {"optuna_state": state, "diagnosis": rec.diagnosis or ""}
    if reason := rec.reason or ("" if rec.outcome else "its worker stopped before it ended"):
        tags["reason"] = reason
    tracker.log_batch(run_id, steps, tags)
    tracker.end_run(run_id, state)
