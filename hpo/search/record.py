"""What a study keeps in Optuna's storage beside the trials' params and values: the one module
that spells the keys of the study's and the trials' user attrs. Everything else reads and writes
them through the types here.

Kept small, so that `optuna studies` stays readable: a study holds what it was made for
(StudyInfo), its MLflow parent run, the baselines' metrics, a summary of the original's replay
(Replay, without its epochs: those are in the replay's cache and its MLflow run) and the scores
of `hpo train --best`'s finalists (Score). A trial holds its config, seeds, metrics, outcome,
diagnosis label, reason and, for a local move, where it came from (TrialRecord).

It sits in hpo.search, below every package that reads it, because the sampler of local moves
writes where each of its trials comes from. A study made by an older hpo opens as it is: its
keys are read as they were written (an original's replay with its whole history included)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from hpo.search.optuna_private import set_attr_of_running
from hpo.util.outcomes import Outcome

_TASK, _METRIC, _OBJECTIVES, _DATA = "task", "metric", "objectives", "data"
_ORIGINAL_EPOCHS, _SEED_OBJECTIVE, _VERSION = "original_epochs", "seed_objective", "hpo_version"
_DATA_DIR, _DATA_PATH, _ORIGINAL_CONFIG = "data_dir", "data_path", "original_config"
_PARENT_RUN, _BASELINES, _ORIGINAL = "mlflow_parent_run_id", "baselines", "original"
_RESCORED, _PICK = "rescored", "finalists_pick"
_PARAMS, _CONFIG, _SEEDS, _MOVE = "params", "config", "seeds", "local_move"
_METRICS, _SEED_METRICS, _OUTCOME, _DIAGNOSIS = "metrics", "seed_metrics", "outcome", "diagnosis"
_FAIL_REASON, _PRUNE_REASON = "fail_reason", "prune_reason"

Study = optuna.Study
Trial = optuna.Trial | FrozenTrial


# --- the study ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyInfo:
    """What a study was created for, written once by the worker that created it."""

    task: str | None
    metric: str | None
    objectives: list[str]  # the metric (+ train_seconds), as shown
    data: dict[str, Any] | None  # the task's data settings
    original_epochs: int | None = None  # the replay budget of the original (spec), for diagnose
    seed_objective: str = "mean"  # how a config's seeds are judged: "mean" or "worst"
    hpo_version: str | None = None
    data_dir: str | None = None  # where the data set was read (--data-dir), for train, diagnose
    # a user's data set (hpo study PATH): where this study read it (its digest is in `data`)
    data_path: str | None = None
    original_config: dict[str, Any] | None = None  # --original-config: the user's own net


def write_info(study: Study, info: StudyInfo) -> None:
    for key, value in (
        (_TASK, info.task),
        (_METRIC, info.metric),
        (_OBJECTIVES, info.objectives),
        (_ORIGINAL_EPOCHS, info.original_epochs),
        (_SEED_OBJECTIVE, info.seed_objective),
        (_VERSION, info.hpo_version),
        (_DATA_DIR, info.data_dir),
        (_DATA_PATH, info.data_path),
        (_ORIGINAL_CONFIG, info.original_config),
        (_DATA, info.data),  # last: the other workers wait for it (wait_for_info)
    ):
        study.set_user_attr(key, value)


def info(study: Study) -> StudyInfo:
    """The study's info; for a study not (yet) written, every field empty."""
    attrs = study.user_attrs
    metric = attrs.get(_METRIC)
    return StudyInfo(
        task=attrs.get(_TASK),
        metric=metric,
        objectives=list(attrs.get(_OBJECTIVES) or ([metric] if metric else [])),
        data=attrs.get(_DATA),
        original_epochs=attrs.get(_ORIGINAL_EPOCHS),
        seed_objective=attrs.get(_SEED_OBJECTIVE, "mean"),
        hpo_version=attrs.get(_VERSION),
        data_dir=attrs.get(_DATA_DIR),
        data_path=attrs.get(_DATA_PATH),
        original_config=attrs.get(_ORIGINAL_CONFIG),
    )


def has_original_epochs(study: Study) -> bool:
    """Whether the study recorded its original's replay budget (older ones did not)."""
    return _ORIGINAL_EPOCHS in study.user_attrs


def wait_for_info(study: Study, seconds: float = 30.0) -> StudyInfo:
    """The study's info once the worker that created it has written it (bounded wait)."""
    _wait_for(study, _DATA, seconds)
    return info(study)


def _wait_for(study: Study, key: str, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while key not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.2)
    return study.user_attrs.get(key)


def parent_run(study: Study, wait: float = 0.0) -> str | None:
    """The id of the study's MLflow parent run, waiting up to `wait` seconds for the worker
    that creates it."""
    return _wait_for(study, _PARENT_RUN, wait) if wait else study.user_attrs.get(_PARENT_RUN)


def set_parent_run(study: Study, run_id: str) -> None:
    study.set_user_attr(_PARENT_RUN, run_id)


def baselines(study: Study) -> dict[str, dict[str, float]] | None:
    """{baseline name: its metrics}; None before they were fitted."""
    return study.user_attrs.get(_BASELINES)


def set_baselines(study: Study, found: dict[str, dict[str, float]]) -> None:
    study.set_user_attr(_BASELINES, found)


@dataclass
class Replay:
    """How the user's original config did when replayed, and how it ended."""

    metrics: dict[str, float]  # of its last epoch
    epochs: int  # epochs it ran
    of_epochs: int  # the user's own budget
    outcome: Outcome
    reason: str = ""
    device: str = "cpu"
    seconds: float = 0.0
    diagnosis: str | None = None  # hpo.train.labels
    run_id: str | None = None  # its MLflow run, which holds its per-epoch metrics
    history: list[dict[str, float]] = field(default_factory=list)  # not kept in the study

    @property
    def status(self) -> str:
        """'ok', 'stopped' (early: its net was dead), 'diverged' or 'error': the words of the
        report's JSON contract."""
        words = {Outcome.COMPLETE: "ok", Outcome.PRUNED: "stopped", Outcome.DIVERGED: "diverged"}
        return words.get(self.outcome, "error")

    def summary(self) -> dict[str, Any]:
        """What the study keeps: everything but the per-epoch history."""
        return {k: v for k, v in asdict(self).items() if k != "history"}

    @classmethod
    def of(cls, stored: dict[str, Any]) -> Replay:
        """A kept summary, or a whole replay as a cache or an older hpo kept it."""
        words = {"ok": "complete", "stopped": "pruned", "diverged": "diverged"}
        outcome = stored.get("outcome") or words.get(stored.get("status", "ok"), "failed")
        return cls(
            metrics=dict(stored.get("metrics") or {}),
            epochs=int(stored.get("epochs", 0)),
            of_epochs=int(stored.get("of_epochs", 0)),
            outcome=Outcome(outcome),
            reason=stored.get("reason", ""),
            device=stored.get("device", "cpu"),
            seconds=float(stored.get("seconds", 0.0)),
            diagnosis=stored.get("diagnosis"),
            run_id=stored.get("run_id"),
            history=list(stored.get("history") or []),
        )


def original(study: Study) -> Replay | None:
    """The replay of the user's original config; None before it ran (or with --no-original)."""
    stored = study.user_attrs.get(_ORIGINAL)
    return Replay.of(stored) if isinstance(stored, dict) else None


def set_original(study: Study, replay: Replay) -> None:
    study.set_user_attr(_ORIGINAL, replay.summary())


@dataclass(frozen=True)
class Score:
    """One rerun of a finalist under a fresh seed: its metric, or why it has none."""

    value: float | None
    outcome: Outcome = Outcome.COMPLETE
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.COMPLETE and self.value is not None

    def shown(self) -> str:
        return f"{self.value:.4g}" if self.ok else f"failed: {self.reason}"

    def stored(self) -> float | str:  # as the study keeps it (a number, or "failed: reason")
        return self.value if self.ok else self.shown()

    @classmethod
    def of(cls, stored: float | str) -> Score:
        if isinstance(stored, str):
            return cls(None, Outcome.FAILED, stored.removeprefix("failed: "))
        return cls(float(stored))


def rescored(study: Study) -> dict[int, dict[int, Score]]:
    """{trial number: {fresh seed: its Score}} of `hpo train --best`'s finalists."""
    stored = study.user_attrs.get(_RESCORED) or {}
    return {int(n): {int(s): Score.of(v) for s, v in seeds.items()} for n, seeds in stored.items()}


def set_rescored(study: Study, scores: dict[int, dict[int, Score]]) -> None:
    stored = {
        str(n): {str(s): v.stored() for s, v in seeds.items()} for n, seeds in scores.items()
    }
    study.set_user_attr(_RESCORED, stored)


def picked(study: Study) -> int | None:
    """The trial `hpo train --best` last picked among its finalists."""
    return study.user_attrs.get(_PICK)


def set_picked(study: Study, number: int) -> None:
    study.set_user_attr(_PICK, number)


# --- a trial ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    """What hpo keeps of one trial, read back."""

    params: dict[str, Any]  # the whole config, flattened (MLflow's names)
    config: dict[str, Any] | None  # Config.to_dict(); None if it failed before it had one
    seeds: list[int]
    metrics: dict[str, float]  # the mean over seeds of its last epoch (+ train_seconds)
    outcome: Outcome | None
    diagnosis: str | None
    reason: str  # why it failed or was pruned ('' if it completed)
    local_move: str | None  # "trial 0 with width 1 -> 1.25", for a local move

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        attrs = trial.user_attrs
        outcome = attrs.get(_OUTCOME)
        return cls(
            params=attrs.get(_PARAMS, trial.params),
            config=attrs.get(_CONFIG),
            seeds=list(attrs.get(_SEEDS) or []),
            metrics=attrs.get(_METRICS, {}),
            outcome=Outcome(outcome) if outcome else None,
            diagnosis=attrs.get(_DIAGNOSIS),
            reason=attrs.get(_FAIL_REASON) or attrs.get(_PRUNE_REASON) or "",
            local_move=attrs.get(_MOVE),
        )


def start_trial(
    trial: Trial, params: dict[str, Any], config: dict[str, Any], seeds: list[int]
) -> None:
    """What a trial will train: its config (flat and whole) and its seeds."""
    trial.set_user_attr(_PARAMS, params)
    trial.set_user_attr(_CONFIG, config)  # `hpo train --trial N` rebuilds it
    trial.set_user_attr(_SEEDS, seeds)


def set_local_move(study: Study, trial: FrozenTrial, move: str) -> None:
    """Where a local move comes from ('trial 0 with width 1 -> 1.25'), written by the sampler
    as the trial starts (hpo.search.moves.LocalMoves)."""
    set_attr_of_running(study, trial, _MOVE, move)


def local_move(trial: Trial) -> str | None:
    """Where a local move comes from; None for any other trial."""
    return trial.user_attrs.get(_MOVE)


def set_reason(trial: Trial, outcome: Outcome, reason: str) -> None:
    """Why a trial did not complete: pruned (by the pruner or its time budget), or failed."""
    pruned = outcome in (Outcome.PRUNED, Outcome.OUT_OF_TIME)
    trial.set_user_attr(_PRUNE_REASON if pruned else _FAIL_REASON, reason)


def set_seed_metrics(trial: Trial, per_seed: list[dict[str, float]]) -> None:
    trial.set_user_attr(_SEED_METRICS, per_seed)


def end_trial(trial: Trial, outcome: Outcome, metrics: dict[str, float], diagnosis: str) -> None:
    trial.set_user_attr(_OUTCOME, outcome.value)
    trial.set_user_attr(_METRICS, metrics)
    trial.set_user_attr(_DIAGNOSIS, diagnosis)
