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
