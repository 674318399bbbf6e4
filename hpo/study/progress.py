"""What `hpo study` says while it runs, on stderr: each trial's line, a live epoch line, the
time left, and the notes it gives once (small data shrank a batch; on a CPU, what the study
will cost at the first epoch's pace)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from hpo.search.family import describe_family
from hpo.train.config import Config
from hpo.util.values import duration

Echo = Callable[[str], None]


def cpu_estimate(first_epoch_s: float, epochs: int, trials_left: int, subset: bool) -> str:
    """One line: trial and study duration if every trial ran all epochs like the first one."""
    trial = first_epoch_s * epochs
    hints = ["--subset 0.1 (a tenth of the training images)"] if subset else []
    hints += ["--data val_subset=0.2 (a fifth of the validation images)"] if subset else []
    hints += [f"fewer --epochs (now {epochs})", "fewer --trials"]
    return (
        f"CPU estimate: epoch 1 took {duration(first_epoch_s)}, so a {epochs}-epoch trial takes "
        f"~{duration(trial)} and the {trials_left} trial(s) left up to ~"
        f"{duration(trial * trials_left)} (less where trials are pruned); to go faster: "
        + ", ".join(hints)
    )


HOUR = 3600.0
SUBSETS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)  # of the training images, largest first
MIN_TRIALS = 10  # a study that fits the hour should still hold this many trials


def cpu_cost(
    task: str,
    per_image: float,
    n_train: int,
    n_val: int,
    epochs: int,
    trials: int,
    subset: bool,
) -> str:
    """One line before a study sized for a GPU starts on a CPU: what it would cost here at
    `per_image` seconds a training image (timed on a few batches; scoring a validation image
    costs about a third of that), and a command that fits about an hour."""
    epoch = per_image * (n_train + n_val / 3)
    line = (
        f"CPU estimate: a trial trains ~{duration(epoch)} an epoch here (timed on 3 batches), "
        f"so {trials} trial(s) of {epochs} epochs take up to ~{duration(trials * epochs * epoch)}"
    )
    if trials * epochs * epoch <= HOUR:
        return line
    fewer = min(epochs, 4)
    choice = None
    for share in SUBSETS if subset else (1.0,):
        val = 0.2 if subset else 1.0
        one = fewer * per_image * (n_train * share + n_val * val / 3)
        choice = (share, val, max(1, min(trials, int(HOUR // one))))
        if choice[2] >= MIN_TRIALS:
            break
    share, val, fit = choice
    flags = f" --subset {share:g} --data val_subset={val:g}" if subset and share < 1 else ""
    return f"{line}; about an hour here: hpo study {task}{flags} --epochs {fewer} --trials {fit}"


def time_left(
    finished: int, budget: int, done_here: int, elapsed: float, deadline_left: float | None
) -> str | None:
    """'37/200 finished, ~6 min left' at the pace of this run so far (`done_here` trials
    finished, by all workers, in `elapsed` seconds), or when --timeout stops it, if sooner;
    None before the pace is known or once the budget is filled."""
    left = budget - finished
    if left < 1:
        return None
    if deadline_left is not None and deadline_left <= 0:
        return f"{finished}/{budget} finished, --timeout reached"
    if done_here < 1 or elapsed <= 0:
        return None
    seconds = left * elapsed / done_here
    if deadline_left is not None and deadline_left < seconds:
        return f"{finished}/{budget} finished, --timeout stops it in ~{duration(deadline_left)}"
    return f"{finished}/{budget} finished, ~{duration(seconds)} left"


def scaling_note(asked: Config, used: Config, n_train: int) -> str:
    """One line: how min_steps_per_epoch changed a config for `n_train` images."""
    return (
        f"note: {n_train} training images: batch {asked.batch_size} -> {used.batch_size} and "
        f"lr {asked.lr:g} -> {used.lr:g}, so that an epoch keeps >= "
        f"{asked.min_steps_per_epoch} steps (min_steps_per_epoch)"
    )


class Progress:
    """Live progress on stderr: trial k/N, the epoch, the best so far."""

    def __init__(self, budget: int, metric: str, echo: Echo, cpu: bool = False) -> None:
        self.budget, self.metric, self.echo, self.cpu = budget, metric, echo, cpu
        self.tty = sys.stderr.isatty()
        self._said: set[str] = set()  # the notes given once per process

    def trial_start(self, number: int, k: int, config: Config, move: str | None = None) -> None:
        conv = "-".join(map(str, config.conv_channels)) or "none"
        dense = "-".join(map(str, config.dense_units)) or "none"
        net = f"conv {conv} dense {dense} {config.activation}"
        if config.model:  # a user's own net: its factory and knobs
            net = describe_family(config)
        self.echo(
            f"trial {number} ({k}/{self.budget}): {net} "
            f"{config.optimizer} lr {config.lr:.2g} bs {config.batch_size}"
            f"{' bn' if config.batch_norm else ''}{f' l1 {config.l1:.2g}' if config.l1 else ''}"
        )
        if move:
            self.echo(f"  a local move: {move}")

    def scaled(self, asked: Config, n_train: int) -> None:
        """Once per process: that small data made a trial's batch (and SGD lr) smaller."""
        used = asked.scaled_to(n_train)  # what the trainer does with it
        if "scaling" not in self._said and used.batch_size != asked.batch_size:
            self._said.add("scaling")
            self.echo(scaling_note(asked, used, n_train))

    def first_epoch(
        self, config: Config, seconds: float, left: Callable[[], int], subset: bool
    ) -> None:
        """Once per process, on a CPU, after the first epoch: the study at this pace (`left`:
        how many trials are left, asked then only: it reads the study)."""
        if not self.cpu or "estimate" in self._said:
            return
        self._said.add("estimate")
        if self.tty:  # end the live epoch line that the estimate would otherwise join
            print(file=sys.stderr)
        self.echo(cpu_estimate(seconds, config.epochs, max(left(), 1), subset))

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


class Timing:
    """Where one `hpo study` run's wall time went, for the summary's last line: its phases in
    order (start-up, data, baseline, trials, original, summary), the trials it ran by how they
    ended, and the seconds MLflow's calls took within them."""

    def __init__(self, started: float | None = None) -> None:
        self.started = started if started is not None else time.time()  # the command's start
        self.phases: dict[str, float] = {}
        self._mark = self.started

    def lap(self, phase: str) -> None:
        """The time since the last lap (or the start) belongs to `phase`."""
        now = time.time()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._mark
        self._mark = now

    def line(self, trials: dict[str, tuple[int, float]], mlflow: float) -> str:
        """'time: 4.2 min in all: start-up 6 s, data 1 s, ...' with `trials` {state: (count,
        seconds)} after the trials phase."""
        total = time.time() - self.started
        parts = []
        for phase, seconds in self.phases.items():
            part = f"{phase} {duration(seconds)}"
            if phase == "trials" and trials:
                part += (
                    " ("
                    + ", ".join(f"{n} {state} {duration(s)}" for state, (n, s) in trials.items())
                    + ")"
                )
            parts.append(part)
        tail = f"; MLflow {duration(mlflow)} of it" if mlflow >= 0.5 else ""
        return f"time: {duration(total)} in all: " + ", ".join(parts) + tail
