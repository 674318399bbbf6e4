"""One label per run for the failures in docs/scenarios.md: collapsed_to_mean, stuck_at_chance,
diverged, overfitting, failed (no epoch finished), or ok; and no_better_than_mean, a regression
whose predictions vary but explain nothing (R² below COLLAPSE_R2: a negative R² is worse than
predicting the mean)."""

from __future__ import annotations

from typing import Any

from hpo.util.outcomes import Outcome

COLLAPSE_R2 = 0.05  # R2 below this: no better than predicting the mean
COLLAPSE_SPREAD = 0.1  # predictions vary < 10 % as much as the targets
CHANCE_MARGIN = 0.03  # within 3 points of always guessing the majority class
OVERFIT_EPOCHS = 3  # val loss up while train loss down for this many epochs in a row
# Regression outputs this constant over the validation set (their spread / the targets'): the
# net gives one answer for every input. The ReLU units that are all off pass no gradient back,
# so it stays dead: measured on box, the user's net (Adam lr 0.01) has a spread of exactly 0 at
# each of its first 10 epochs (R2 -0.004 to -0.0002).
DEAD_SPREAD = 1e-6


def dead(metrics: dict[str, float]) -> str:
    """Why a regression net cannot learn from here, from one epoch's metrics ('' if it may):
    its outputs are the same for every input."""
    if metrics.get("val_pred_spread", 1.0) < DEAD_SPREAD:
        return "its outputs are the same for every input"
    return ""


def diagnose(history: list[dict[str, float]], outcome: str = Outcome.COMPLETE) -> str:
    """The label for a run from its per-epoch metrics and how it ended (an Outcome)."""
    if outcome == Outcome.DIVERGED:
        return "diverged"
    if not history:
        return "ok" if outcome == Outcome.COMPLETE else "failed"
    last = history[-1]
    if "val_r2" in last:
        spread = last.get("val_pred_spread", 1.0)
        # a constant prediction: R2 ~ 0 at the mean, below 0 at any other constant
        if last["val_r2"] < COLLAPSE_R2:
            return "collapsed_to_mean" if spread < COLLAPSE_SPREAD else "no_better_than_mean"
    if "val_over_chance" in last and last["val_over_chance"] < CHANCE_MARGIN:
        return "stuck_at_chance"
    if _overfitting(history):
        return "overfitting"
    return "ok"


def _overfitting(history: list[dict[str, Any]]) -> bool:
    if len(history) <= OVERFIT_EPOCHS:
        return False
    tail = history[-(OVERFIT_EPOCHS + 1) :]
    pairs = list(zip(tail, tail[1:], strict=False))
    val_up = all(b["val_loss"] > a["val_loss"] for a, b in pairs)
    train_down = all(b["train_loss"] < a["train_loss"] for a, b in pairs)
    return val_up and train_down
