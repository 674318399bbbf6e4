"""One trial: the config the sampler chose, trained over the study's seeds in lockstep
(hpo.train.loop.train_seeds); each epoch goes to the pruner, MLflow and the console, and the trial
ends with its outcome, metrics and diagnosis label recorded."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import optuna
import torch

from hpo.search.space import suggest
from hpo.train.labels import diagnose
from hpo.train.loop import TimeLimit, train_seeds
from hpo.train.seeds import aggregate, objective_value, seed_list
from hpo.util.errors import first_line
from hpo.util.outcomes import Outcome, OutOfTime, SurplusTrial, TrainingError

if TYPE_CHECKING:
    from hpo.study.runner import Runner


class Objective:
    """Trains one trial's config; reports epochs to the pruner, MLflow and the console."""

    def __init__(self, ctx: Runner) -> None:
        self.ctx = ctx
        self.number: int | None = None  # the trial this objective ran, once it started

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        ctx = self.ctx
        self.number = trial.number
        outcome, reason, metrics = Outcome.FAILED, "", {}
        history: list[dict[str, float]] = []
        run_id = None
        t0 = time.monotonic()
        try:
            ctx.check_surplus(trial)
            try:
                config = suggest(trial, ctx.spec, ctx.base)
            except ValueError as e:
                raise TrainingError(f"invalid config: {e}") from None
            seeds = seed_list(ctx.options.seed, ctx.spec.seeds)
            trial.set_user_attr("params", config.params())
            trial.set_user_attr("config", config.to_dict())  # `hpo train --trial N` rebuilds it
            trial.set_user_attr("seeds", seeds)
            move = trial.user_attrs.get("local_move")  # hpo.search.samplers.LocalMoves: its origin
            run_id = ctx.log.start_trial(trial.number, config, seeds, move)
            ctx.progress.trial_start(
                trial.number, ctx.budget, ctx.finished_so_far() + 1, config, move
            )
            ctx.note_scaling(config)
            task, metric = ctx.task, ctx.task.metric

            def report(epoch: int, per_seed: list[dict[str, float]]) -> None:
                """Each epoch's mean over seeds to MLflow, the console and the pruner."""
                nonlocal metrics
                metrics = aggregate(per_seed, metric, task.direction, task.solved)
                history.append(metrics)
                ctx.log.epoch(run_id, epoch, metrics, per_seed)
                ctx.progress.epoch(epoch, config.epochs, metrics)
                ctx.estimate_on_cpu(config, time.monotonic() - t0)
                if not ctx.multi:  # Optuna prunes single-objective studies only
                    trial.report(objective_value(metrics, metric, ctx.spec.objective), epoch)
                    # asked always, so that a local move's values stand at the pruner's rungs
                    # for the other trials; but its own early epochs cannot tell it from its
                    # origin (hpo.search.spec.Spec.prune_local_moves), so it is not stopped
                    prunable = not move or ctx.spec.prune_local_moves
                    if trial.should_prune() and prunable:
                        raise optuna.TrialPruned(f"pruned by {ctx.spec.pruner} at epoch {epoch}")

            try:
                trainers = train_seeds(
                    config,
                    ctx.data,
                    seeds,
                    device=ctx.device,
                    report=report,
                    time_limit=TimeLimit.on(ctx.device, ctx.spec.trial_timeout),
                    augment=task.augment,
                )
            except OutOfTime as e:  # pruned with its reason (valueless if no epoch finished)
                outcome = Outcome.OUT_OF_TIME
                raise optuna.TrialPruned(f"trial_timeout {ctx.spec.trial_timeout:g} s: {e}") from e
            trial.set_user_attr("seed_metrics", [t.history[-1] for t in trainers])
            # training time of all seeds and epochs (evaluation excluded): the cost objective
            seconds = sum(h["epoch_seconds"] for t in trainers for h in t.history)
            metrics = metrics | {"train_seconds": seconds}
            outcome = Outcome.COMPLETE
            value = objective_value(metrics, metric, ctx.spec.objective)
            return (value, seconds) if ctx.multi else value
        except optuna.TrialPruned as e:
            if outcome != Outcome.OUT_OF_TIME:
                outcome = Outcome.PRUNED
            reason = str(e)
            trial.set_user_attr("prune_reason", reason)
            raise
        except KeyboardInterrupt:
            outcome, reason = Outcome.INTERRUPTED, "interrupted by the user (Ctrl-C)"
            trial.set_user_attr("fail_reason", reason)
            raise
        except torch.OutOfMemoryError as e:
            reason = f"out of memory: {first_line(e, 200)}"
            trial.set_user_attr("fail_reason", reason)
            raise TrainingError(reason) from None
        except (TrainingError, SurplusTrial) as e:
            outcome, reason = e.outcome, first_line(e)
            trial.set_user_attr("fail_reason", reason)
            raise
        except Exception as e:  # recorded with its reason; the study goes on
            reason = first_line(e)
            trial.set_user_attr("fail_reason", reason)
            raise
        finally:
            label = diagnose(history, outcome)
            trial.set_user_attr("outcome", outcome.value)
            trial.set_user_attr("metrics", metrics)
            trial.set_user_attr("diagnosis", label)
            ctx.log.end_trial(run_id, outcome, reason, metrics, label)
