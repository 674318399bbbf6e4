"""Live progress on stderr, and the up-front estimate of a study's duration on a CPU."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from hpo.train.config import Config

Echo = Callable[[str], None]


def cpu_estimate(first_epoch_s: float, epochs: int, trials_left: int, subset: bool) -> str:
    """One line: trial and study duration if every trial ran all epochs like the first one."""
    trial = first_epoch_s * epochs
    hints = ["--subset 0.1 (a tenth of the training images)"] if subset else []
    hints += ["--data val_subset=0.2 (a fifth of the validation images)"] if subset else []
    hints += [f"fewer --epochs (now {epochs})", "fewer --trials"]
    return (
        f"CPU estimate: epoch 1 took {_duration(first_epoch_s)}, so a {epochs}-epoch trial takes "
        f"~{_duration(trial)} and the {trials_left} trial(s) left up to ~"
        f"{_duration(trial * trials_left)} (less where trials are pruned); to go faster: "
        + ", ".join(hints)
    )


def time_left(
    finished: int, budget: int, done_here: int, elapsed: float, deadline_left: float | None
) -> str | None:
    """'37/200 finished, ~6 min left' at the pace of this run so far (`done_here` trials
    finished, by all workers, in `elapsed` seconds), or when --timeout stops it, if sooner;
    None before the pace is known or once the budget is filled."""
    left = budget - finished
    if done_here < 1 or left < 1 or elapsed <= 0:
        return None
    seconds = left * elapsed / done_here
    if deadline_left is not None and deadline_left < seconds:
        return f"{finished}/{budget} finished, --timeout stops it in ~{_duration(deadline_left)}"
    return f"{finished}/{budget} finished, ~{_duration(seconds)} left"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class Progress:
    """Live progress on stderr: trial k/N, the epoch, the best so far."""

    def __init__(self, budget: int, metric: str, echo: Echo) -> None:
        self.budget, self.metric, self.echo = budget, metric, echo
        self.tty = sys.stderr.isatty()

    def trial_start(
        self, number: int, budget: int, k: int, config: Config, move: str | None = None
    ) -> None:
        conv = "-".join(map(str, config.conv_channels)) or "none"
        dense = "-".join(map(str, config.dense_units)) or "none"
        self.echo(
            f"trial {number} ({k}/{budget}): conv {conv} dense {dense} {config.activation} "
            f"{config.optimizer} lr {config.lr:.2g} bs {config.batch_size}"
            f"{' bn' if config.batch_norm else ''}{f' l1 {config.l1:.2g}' if config.l1 else ''}"
        )
        if move:
            self.echo(f"  a local move: {move}")

    def epoch(self, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        line = (
            f"  epoch {epoch}/{epochs}: {self.metric} {metrics[self.metric]:.4g} "
            f"train_loss {metrics['train_loss']:.4g} ({metrics['images_per_second']:.0f} img/s)"
        )
        if self.tty:
            print("\r" + line.ljust(78), end="", file=sys.stderr, flush=True)
        else:
            self.echo(line)

    def trial_end(
        self, record: dict[str, Any], best: dict[str, Any] | None, left: str | None = None
    ) -> None:
        if self.tty:
            print("\r" + " " * 78 + "\r", end="", file=sys.stderr, flush=True)
        value = record["metrics"].get(self.metric)
        shown = f"{self.metric} {value:.4g}" if value is not None else "no metric"
        line = f"trial {record['number']} {record['state']}: {shown}"
        if record["seconds"] is not None:
            line += f" in {record['seconds']:.1f} s"
        if record["reason"]:
            line += f" ({record['reason']})"
        if best is not None:
            line += f"; best so far {best['value']:.4g} (trial {best['number']})"
        if left:
            line += f"; {left}"
        self.echo(line)
