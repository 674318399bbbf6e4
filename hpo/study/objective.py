"""One trial: the config the sampler chose, trained over the study's seeds in lockstep
(hpo.train.loop.train_seeds); each epoch goes to the pruner, MLflow and the console, and the
trial ends with its outcome, metrics and diagnosis label recorded (hpo.search.record)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import optuna
import torch

from hpo.search import record
from hpo.search.optuna_private import retry_of, written_together
from hpo.search.space import suggest
from hpo.search.spec import Spec
from hpo.study.progress import Progress
from hpo.study.queries import Budget
from hpo.tasks.base import Task
from hpo.track.study_log import StudyLog
from hpo.train.config import Config
from hpo.train.data import TaskData
from hpo.train.labels import dead, diagnose
from hpo.train.loop import TimeLimit, train_seeds
from hpo.train.seeds import aggregate, objective_value
from hpo.util.errors import first_line
from hpo.util.interrupts import unshielded
from hpo.util.outcomes import Outcome, OutOfTime, SurplusTrial, TrainingError


@dataclass
class TrialContext:
    """What a trial takes from the run it belongs to, and the only way it talks back: the
    budget it may be beyond, the progress lines, the MLflow log."""

    task: Task
    spec: Spec
    base: Config  # every field a trial does not search
    seeds: list[int]  # the seeds every trial trains under
    data: TaskData
    device: torch.device
    multi: bool  # a multi-objective study: no pruning, (metric, seconds) as the value
    budget: Budget
    progress: Progress
    log: StudyLog
    end: float | None = None  # time.monotonic() when --timeout ends the study, or None
    timeout: float | None = None  # --timeout, in seconds (for the reason a trial gives)


# a trial's reported epochs reach the study storage at most this often, and at its end: an H100
# trains a cifar10 epoch in 0.2 s, and a transaction an epoch was ~3 ms on PostgreSQL
# (benchmarks/trial_overhead.py); a CPU epoch takes longer, so its value is written at once
EPOCH_WRITE_SECONDS = 5.0


class Objective:
    """Trains one trial's config; reports epochs to the pruner, MLflow and the console."""

    def __init__(self, ctx: TrialContext) -> None:
        self.ctx = ctx
        self.number: int | None = None  # the trial this objective ran, once it started

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        # what the trial writes to the storage goes in few transactions: its config at once
        # (other workers' samplers see it), its epochs every few seconds, its end in one
        with written_together(trial, every=EPOCH_WRITE_SECONDS):
            return self._run(trial)

    def _run(self, trial: optuna.Trial) -> float | tuple[float, float]:
        self.number = trial.number
        state: dict[str, Any] = {"outcome": Outcome.FAILED, "metrics": {}, "history": []}
        reason, run_id = "", None
        try:
            with unshielded():  # Ctrl-C stops the trial's work at once (hpo.util.interrupts)
                k = self.ctx.budget.check_surplus(trial.number) + 1  # this trial is the k-th
                config = self._config(trial)
                move = record.local_move(trial)  # written by the sampler (LocalMoves)
                run_id = self.ctx.log.start_trial(trial.number, config, self.ctx.seeds, move)
                if (lost := retry_of(trial)) is not None:  # its dead worker left a RUNNING run
                    self.ctx.log.close_lost(lost, trial.number)
                self.ctx.progress.trial_start(trial.number, k, config, move)
                self.ctx.progress.scaled(config, len(self.ctx.data.train))
                return self._train(trial, config, run_id, move, state)
        except (optuna.TrialPruned, KeyboardInterrupt, TrainingError, SurplusTrial) as e:
            if isinstance(e, KeyboardInterrupt):
                state["outcome"], reason = Outcome.INTERRUPTED, "interrupted by the user (Ctrl-C)"
            elif isinstance(e, optuna.TrialPruned):
                state["outcome"] = state.get("stopped", Outcome.PRUNED)
                reason = str(e)
            else:
                state["outcome"], reason = e.outcome, first_line(e)
            record.set_reason(trial, state["outcome"], reason)
            raise
        except torch.OutOfMemoryError as e:
            reason = f"out of memory: {first_line(e, 200)}"
            record.set_reason(trial, Outcome.FAILED, reason)
            raise TrainingError(reason) from None
        except Exception as e:  # recorded with its reason; the study goes on
            reason = first_line(e)
            record.set_reason(trial, Outcome.FAILED, reason)
            raise
        finally:
            label = diagnose(state["history"], state["outcome"])
            record.end_trial(trial, state["outcome"], state["metrics"], label)
            self.ctx.log.end_trial(run_id, state["outcome"], reason, state["metrics"], label)

    def _config(self, trial: optuna.Trial) -> Config:
        """The trial's config, recorded with its seeds; a bad one fails the trial."""
        with written_together(trial):  # one storage transaction for its knobs and record
            try:
                config = suggest(trial, self.ctx.spec, self.ctx.base)
            except ValueError as e:
                raise TrainingError(f"invalid config: {e}") from None
            record.start_trial(trial, config.params(), config.to_dict(), self.ctx.seeds)
        return config

    def _train(
        self,
        trial: optuna.Trial,
        config: Config,
        run_id: str | None,
        move: str | None,
        state: dict[str, Any],
    ) -> float | tuple[float, float]:
        """Train `config` over the seeds, reporting each epoch; the trial's value."""
        ctx, t0 = self.ctx, time.monotonic()
        metric, spec = ctx.task.metric, ctx.spec

        def report(epoch: int, per_seed: list[dict[str, float]]) -> None:
            """Each epoch's mean over seeds to MLflow, the console and the pruner."""
            state["metrics"] = metrics = aggregate(
                per_seed, metric, ctx.task.direction, ctx.task.solved
            )
            state["history"].append(metrics)
            ctx.log.epoch(run_id, epoch, metrics, per_seed)
            ctx.progress.epoch(epoch, config.epochs, metrics)
            subset = "subset" in ctx.task.defaults
            ctx.progress.first_epoch(config, time.monotonic() - t0, ctx.budget.left, subset)
            if ctx.multi:  # Optuna prunes single-objective studies only
                return
            trial.report(objective_value(metrics, metric, spec.objective), epoch)
            if why := dead(metrics):  # more epochs cannot change it: stop, with its value
                raise optuna.TrialPruned(f"dead at epoch {epoch} ({why})")
            # asked always, so that a local move's values stand at the pruner's rungs for the
            # other trials; but its own early epochs cannot tell it from its origin
            # (hpo.search.spec.Spec.prune_local_moves), so it is not stopped
            if trial.should_prune() and (not move or spec.prune_local_moves):
                raise optuna.TrialPruned(f"pruned by {spec.pruner} at epoch {epoch}")

        try:
            trainers = train_seeds(
                config,
                ctx.data,
                ctx.seeds,
                device=ctx.device,
                report=report,
                time_limit=TimeLimit.on(ctx.device, spec.trial_timeout, ctx.end),
                augment=ctx.task.augment,
            )
        except OutOfTime as e:  # pruned with its reason (valueless if no epoch finished)
            state["stopped"] = Outcome.OUT_OF_TIME
            if ctx.end is not None and time.monotonic() >= ctx.end:  # the study's end
                limit = f"--timeout {ctx.timeout:g} s" if ctx.timeout else "--timeout"
                raise optuna.TrialPruned(f"{limit} reached: {e}") from e
            raise optuna.TrialPruned(f"trial_timeout {spec.trial_timeout:g} s: {e}") from e
        record.set_seed_metrics(trial, [t.history[-1] for t in trainers])
        # training time of all seeds and epochs (evaluation excluded): the cost objective
        seconds = sum(h["epoch_seconds"] for t in trainers for h in t.history)
        state["metrics"] = state["metrics"] | {"train_seconds": seconds}
        state["outcome"] = Outcome.COMPLETE
        value = objective_value(state["metrics"], metric, spec.objective)
        return (value, seconds) if ctx.multi else value
