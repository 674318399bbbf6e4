"""A run's time: the budget it may take (TimeLimit: a trial's trial_timeout and the study's
--timeout) and, on a CPU, the guess early in its first epoch that it cannot finish within it
(Pace)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hpo.util.outcomes import OutOfTime

if TYPE_CHECKING:  # hpo.study.workers reads WORKERS_ENV before torch is imported
    import torch

FIRST_EPOCH_ALLOWANCE = 3  # x a GPU trial's time limit: its first epoch's own cap (TimeLimit)
WALL_GUARD = 5  # x a CPU trial's budget x the workers: the wall-clock safety net (TimeLimit)
WORKERS_ENV = "HPO_WORKERS"  # K in each worker of `hpo study --workers K` (hpo.study.workers)


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def work_clock() -> Callable[[], float]:
    """A CPU trial's budget clock: this process's CPU time over the machine's cores, so that
    alone on an idle machine it runs about as fast as the wall clock (less where the work does
    not use every core), and it slows down as much as other processes take the cores away.
    A trial's budget then buys the same work under 1 or 3 workers, or beside other jobs."""
    n = cores()
    return lambda: time.process_time() / n


@dataclass(frozen=True)
class TimeLimit:
    """What a run may take: `seconds` (a study's trial_timeout, all seeds together) on
    `clock`, and the wall-clock moment the whole study must end (`end`, time.monotonic(), from
    --timeout), whichever comes first.

    On a CPU the seconds are work, not wall time (work_clock: CPU time over the machine's
    cores), so that a busy machine (several workers, other jobs, an outage's retries) does not
    cut the trials that were winning; a wall-clock guard of WALL_GUARD x seconds x the workers
    on the machine still stops a hung one. On a GPU the seconds are wall time (the GPU's work is
    not this process's CPU time), and the first epoch pays one-off costs that say nothing about
    what the config costs: CUDA's and cuDNN's start-up, cuDNN's kernel search for each new layer
    shape (where CUDNN_BENCHMARK is on), the stem's fit. On an H200 the first trial of a cifar10
    study took over 12 s before its first epoch ended, then ~0.25 s an epoch. So there
    (`warm_up`) the limit counts from the end of the first epoch, which has a cap of its own
    (FIRST_EPOCH_ALLOWANCE x the limit). `clock` None is the wall clock.
    """

    seconds: float | None
    warm_up: bool = False
    end: float | None = None
    clock: Callable[[], float] | None = field(default=None, compare=False)
    guard: float | None = None  # wall seconds after which the run stops whatever its clock says

    @classmethod
    def on(
        cls, device: torch.device, seconds: float | None, end: float | None = None,
        workers: int | None = None,
    ) -> TimeLimit | None:  # fmt: skip
        """The limit of a run on `device`; `workers`: the processes sharing the machine
        (default: K of --workers K, else 1), which widen the wall-clock guard."""
        if seconds is None and end is None:
            return None
        workers = workers or int(os.environ.get(WORKERS_ENV) or 1)
        if device.type != "cpu" or seconds is None:
            return cls(seconds, warm_up=device.type == "cuda", end=end)
        return cls(seconds, end=end, clock=work_clock(), guard=seconds * WALL_GUARD * workers)

    def first_due(self, start: float) -> float:
        """When the first epoch must end, on `clock` (`start`: that clock's reading)."""
        if self.seconds is None:
            return math.inf
        return start + self.seconds * (FIRST_EPOCH_ALLOWANCE if self.warm_up else 1)

    def due_after_first(self, start: float, now: float) -> float:
        """When the rest must end, on `clock`, read `now` after the first epoch."""
        return (
            math.inf if self.seconds is None else (now if self.warm_up else start) + self.seconds
        )

    def wall_end(self, start: float) -> float:
        """The wall-clock moment (time.monotonic()) the run must end: the study's end, or the
        guard's, counted from `start`."""
        due = start + self.guard if self.guard is not None else math.inf
        return min(due, self.end if self.end is not None else math.inf)


PACE_MARGIN = 1.25  # a run stopped early needs this many times the time it has left
PACE_STEPS = 10  # steps timed (after the first, which pays one-off costs) before the guess;
# more than the 8 after which a CPU run first checks that its loss is finite: a diverging run
# says so, rather than that it is slow


class Pace:
    """Whether a run can finish within its time budget, guessed early in its first epoch: a CPU
    trial that would need far more than its trial_timeout at the pace of its first steps is
    stopped there, not when the budget runs out (it would be cut then all the same, and cost
    the whole budget). On box, a conv net on 10,000 64x64 images needs 9-20 s an epoch on a
    2-core CPU against a 10 s trial budget; every one of them took the whole 10 s."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs  # the run's epochs, all seeds together
        self.start: float | None = None  # after the first step

    def step(self, i: int, steps: int, deadline: float | None, now: float) -> None:
        """After step `i` (0-based) of `steps` in the first epoch, at `now` (the trainer's
        clock): raise OutOfTime where the rest of the run would take PACE_MARGIN x the time
        left to `deadline`."""
        if i == 0 or self.start is None:
            self.start = now
            return
        if i != min(PACE_STEPS, steps - 1) or deadline is None:
            return
        per_step = (now - self.start) / i
        need = per_step * (steps * self.epochs - i - 1)
        if need > PACE_MARGIN * max(deadline - now, 0.0):
            raise OutOfTime(
                f"time budget would run out: at the pace of its first steps it needs "
                f"~{need + (now - self.start):.0f} s more",
                [],
            )
