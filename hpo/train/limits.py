"""A run's time: the budget it may take (TimeLimit: a trial's trial_timeout and the study's
--timeout) and, on a CPU, the guess early in its first epoch that it cannot finish within it
(Pace)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hpo.util.outcomes import OutOfTime

FIRST_EPOCH_ALLOWANCE = 3  # x a GPU trial's time limit: its first epoch's own cap (TimeLimit)


@dataclass(frozen=True)
class TimeLimit:
    """Seconds a run may take (a study's trial_timeout), all seeds together, and the moment
    the whole study must end (`end`, time.monotonic(), from --timeout), whichever comes first.

    On a GPU (`warm_up`) the first epoch pays one-off costs that say nothing about what the
    config costs: CUDA's and cuDNN's start-up, cuDNN's kernel search for each new layer shape
    (where CUDNN_BENCHMARK is on), the stem's fit. On an H200 the first trial of a cifar10
    study took over 12 s before its first epoch ended, then ~0.25 s an epoch. So there the
    limit counts from the end of the first epoch, which has a cap of its own
    (FIRST_EPOCH_ALLOWANCE x the limit). On a CPU the first epoch costs what the others do, and
    the limit counts from the start. `end` is kept everywhere.
    """

    seconds: float | None
    warm_up: bool = False
    end: float | None = None

    @classmethod
    def on(
        cls, device: torch.device, seconds: float | None, end: float | None = None
    ) -> TimeLimit | None:
        if seconds is None and end is None:
            return None
        return cls(seconds, warm_up=device.type == "cuda", end=end)

    def first_due(self, start: float) -> float:
        due = math.inf
        if self.seconds is not None:
            due = start + self.seconds * (FIRST_EPOCH_ALLOWANCE if self.warm_up else 1)
        return min(due, self.end if self.end is not None else math.inf)

    def due_after_first(self, start: float, now: float) -> float:
        due = math.inf if self.seconds is None else (now if self.warm_up else start) + self.seconds
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
