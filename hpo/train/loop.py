"""The training loop: train(config, data, ...) -> Result. Knows neither Optuna nor MLflow."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from hpo.train.augment import flip_crop
from hpo.train.config import Config
from hpo.train.data import TaskData, batch_indices, to_float
from hpo.train.evaluate import autocast, evaluate, metrics_for, predict  # noqa: F401
from hpo.train.limits import FIRST_EPOCH_ALLOWANCE, Pace, TimeLimit  # noqa: F401
from hpo.train.models import Net, build_model
from hpo.train.optim import (
    LOOKAHEAD_EVERY,
    Lookahead,
    l1_thresholds,
    lookahead_decay,
    make_optimizer,
    set_lr,
    shrink_l1,
)
from hpo.util.outcomes import Diverged, OutOfTime

STEM_FIT_IMAGES = 5_000  # images the whitening stem is fitted on (airbench: 5,000)
# cuDNN's kernel search (torch.backends.cudnn.benchmark): off. It times every algorithm for
# each new layer shape, once per process, and a study keeps meeting new shapes. On an H200
# (benchmarks/cudnn_tuning.py, RESULTS §6) it made the first epoch of the recipe's neighbours
# 3-4 s slower (3.6 vs 0.5 s at width 1.5; 2 s trials) and their later epochs no faster
# (0.225 / 0.223 s recipe, 0.340 / 0.362 s width 1.5, 0.503 / 0.433 s width 1.25 batch 512).
CUDNN_BENCHMARK = False

Report = Callable[[int, dict[str, float]], None]  # (epoch, metrics); may raise to stop


@dataclass
class Result:
    """What a finished training run gives back."""

    metrics: dict[str, float]  # the last epoch's metrics
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    model: Net | None = None


class Trainer:
    """One training run, advanced an epoch at a time (several seeds can step in lockstep)."""

    def __init__(
        self,
        config: Config,
        data: TaskData,
        *,
        device: torch.device,
        seed: int = 0,
        deadline: float | None = None,
        augment: bool = False,
        validate: bool = True,
        clock: Callable[[], float] | None = None,
        end: float | None = None,
    ) -> None:
        config = config.scaled_to(len(data.train))  # smaller batch on small data, if asked
        self.config, self.data, self.device = config, data, device
        self.deadline, self.validate = deadline, validate  # deadline: on `clock`
        self.end = end  # the wall clock's (time.monotonic()): the study's end, a guard's
        self.clock = clock or (lambda: time.monotonic())  # a budget's clock (TimeLimit)
        self.augment = augment and config.augment  # the task's images can be flipped/cropped
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = CUDNN_BENCHMARK
        torch.manual_seed(seed)  # weight init; shuffle order has its own generator below
        model = build_model(config, data.image_shape, data.n_outputs).to(device)
        self.channels_last = device.type == "cuda" and bool(config.conv_channels)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.stem = model.stem()
        if self.stem is not None:
            self.stem.fit(to_float(data.train.x[:STEM_FIT_IMAGES]))
        self.model = model
        self.optimizer = make_optimizer(config, model)
        self.shuffle = torch.Generator(device=device).manual_seed(seed)
        self.n = len(data.train)
        self.flip_bits = None
        if self.augment and config.aug_flip == "alternating":  # each image's flip at epoch 1
            self.flip_bits = (
                torch.randint(0, 2, (self.n,), generator=self.shuffle, device=device) == 1
            )
        self.averaged = Lookahead(model) if config.lookahead else None
        self.steps_per_epoch = math.ceil(self.n / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.eval_batch = (
            max(config.batch_size, 256) if device.type == "cuda" else config.batch_size
        )
        # A finiteness check syncs (and on CUDA stalls the pipeline): every few steps only;
        # a diverged run still stops within that many steps.
        self.check_every = 8 if device.type == "cpu" else 25
        self.constrained = config.max_norm > 0
        self.trained = [p for p in model.parameters() if p.requires_grad]  # what grad_clip sees
        self.l1_weights = model.l1_weights() if config.l1 > 0 else []
        self.fixed_lr = config.schedule == "constant"
        if self.fixed_lr:
            set_lr(self.optimizer, config, 0, self.total_steps, self.steps_per_epoch)
        self.history: list[dict[str, float]] = []
        self.step = 0
        self.pace: Pace | None = None  # the run's first trainer: its time budget at this pace
        self.wall_pace: Pace | None = None  # and its wall-clock end at this pace

    def run_epoch(self) -> dict[str, float]:
        """Train one epoch, then evaluate; returns (and records) the epoch's metrics."""
        epoch = len(self.history) + 1
        if self.stem is not None:
            self.stem.conv.bias.requires_grad_(epoch <= self.config.stem_bias_epochs)
        t0 = time.monotonic()
        train_loss = self._train_epoch(epoch)  # its .item() syncs the device before timing
        seconds = time.monotonic() - t0
        if not math.isfinite(train_loss):
            raise Diverged(f"loss became {train_loss} at epoch {epoch}")
        metrics = {"train_loss": train_loss}
        if self.validate:  # off for the final retrain on train + validation
            metrics |= self._validate(epoch)
        metrics |= {
            "lr": self.optimizer.param_groups[0]["lr"],
            "epoch_seconds": seconds,
            "images_per_second": self.n / max(seconds, 1e-9),
        }
        self.history.append(metrics)
        return metrics

    def _train_epoch(self, epoch: int) -> float:
        """One pass over the training images; the mean training loss."""
        config, model, optimizer = self.config, self.model, self.optimizer
        model.train()
        loss_sum = torch.zeros((), device=self.device)
        order = batch_indices(self.n, config.batch_size, self.shuffle, self.device)
        for i, idx in enumerate(order):
            if not self.fixed_lr:
                set_lr(optimizer, config, self.step, self.total_steps, self.steps_per_epoch)
            with autocast(self.device):
                out = model(self._batch(idx, epoch))
            loss = _loss(config, self.data.kind, out.float(), self.data.train.y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.trained, config.grad_clip)
            optimizer.step()
            if self.constrained:
                model.apply_constraints()
            if self.l1_weights:
                shrink_l1(self.l1_weights, l1_thresholds(optimizer, self.l1_weights, config.l1))
            loss_sum.add_(loss.detach(), alpha=idx.numel())
            self.step += 1
            if self.averaged is not None:
                if self.step % LOOKAHEAD_EVERY == 0:
                    self.averaged.update(lookahead_decay(self.step, self.total_steps))
                if self.step == self.total_steps:
                    self.averaged.update(1.0)  # end on the average itself
            if (i + 1) % self.check_every == 0 and not torch.isfinite(loss_sum):
                raise Diverged(f"loss became {loss_sum.item()} at epoch {epoch}, step {i + 1}")
            self._in_time(i, epoch)
        return (loss_sum / self.n).item()

    def _in_time(self, i: int, epoch: int) -> None:
        """After step `i`: OutOfTime past the budget (on its clock) or the wall-clock end, or
        where the first steps' pace says the run cannot finish before either (Pace)."""
        if self.deadline is not None and self.clock() > self.deadline:
            raise OutOfTime(f"time budget ran out during epoch {epoch}", self.history)
        if self.end is not None and time.monotonic() > self.end:
            raise OutOfTime(f"the wall clock ran out during epoch {epoch}", self.history)
        if epoch == 1 and self.pace is not None:
            self.pace.step(i, self.steps_per_epoch, self.deadline, self.clock())
        if epoch == 1 and self.wall_pace is not None:
            self.wall_pace.step(i, self.steps_per_epoch, self.end, time.monotonic())

    def _batch(self, idx: torch.Tensor, epoch: int) -> torch.Tensor:
        """The training images at `idx` as the net sees them: floats, flipped and cropped."""
        x = to_float(self.data.train.x[idx], self.channels_last)
        if not self.augment:
            return x
        flips = None  # random
        if self.flip_bits is not None:  # every other epoch, every image flips
            flips = self.flip_bits[idx] ^ (epoch % 2 == 0)
        return flip_crop(x, pad=self.config.aug_pad, generator=self.shuffle, flips=flips)

    def _validate(self, epoch: int) -> dict[str, float]:
        """The validation metrics after `epoch`. Test-time augmentation (6 forward passes an
        image at tta 2) only at the last epoch: the pruner compares every trial on plain
        predictions at its rungs, and earlier epochs cost one pass (on an H100, 0.07 s an epoch
        of a 3 s trial)."""
        config, model, data = self.config, self.model, self.data
        model.tta = config.tta if epoch == config.epochs else 0
        metrics = evaluate(model, data.val, data.kind, self.eval_batch)
        model.tta = config.tta
        if data.kind == "regression" and not math.isfinite(metrics["val_loss"]):
            raise Diverged(f"validation loss became {metrics['val_loss']} at epoch {epoch}")
        return metrics


SeedsReport = Callable[[int, list[dict[str, float]]], None]  # (epoch, metrics of each seed)


def train_seeds(
    config: Config,
    data: TaskData,
    seeds: list[int],
    *,
    device: torch.device,
    report: SeedsReport | None = None,
    time_limit: TimeLimit | None = None,
    augment: bool = False,
    validate: bool = True,
) -> list[Trainer]:
    """The training loop: `config` under each seed, in lockstep, an epoch at a time, evaluating
    on `data.val` after every epoch (unless not `validate`). A study's trial, `hpo train`, the
    original's replay and `hpo diagnose` all train through it.

    `report(epoch, per_seed)` gets each epoch (1-based) with one metrics dict per seed, and may
    raise to stop the run (pruning, solved, hopeless). Past `time_limit` (see TimeLimit)
    OutOfTime is raised. `augment`: whether the task's images may be flipped and cropped (when
    config.augment). Returns the trainers: their history and model.
    """
    clock = time_limit.clock if time_limit is not None else None
    now = clock or (lambda: time.monotonic())
    start, wall_start = now(), time.monotonic()
    first_due = _finite(time_limit.first_due(start)) if time_limit is not None else None
    end = _finite(time_limit.wall_end(wall_start)) if time_limit is not None else None
    trainers = [
        Trainer(
            config,
            data,
            device=device,
            seed=seed,
            deadline=first_due,
            augment=augment,
            validate=validate,
            clock=clock,
            end=end,
        )
        for seed in seeds
    ]
    if time_limit is not None and not time_limit.warm_up:  # a GPU's first epoch: no guide
        trainers[0].pace = Pace(config.epochs * len(seeds))
        trainers[0].wall_pace = Pace(config.epochs * len(seeds))
    for epoch in range(1, config.epochs + 1):
        per_seed = [t.run_epoch() for t in trainers]
        if epoch == 1 and time_limit is not None:  # on a GPU the limit proper starts now
            due = _finite(time_limit.due_after_first(start, now()))
            for t in trainers:
                t.deadline = due
        if report is not None:  # may raise to stop
            report(epoch, per_seed)
    return trainers


def _finite(due: float) -> float | None:
    return None if math.isinf(due) else due


def train(
    config: Config,
    data: TaskData,
    *,
    device: torch.device,
    seed: int = 0,
    report: Report | None = None,
    time_limit: TimeLimit | None = None,
    augment: bool = False,
    keep_model: bool = False,
    validate: bool = True,
) -> Result:
    """One seed of train_seeds; `report(epoch, metrics)` gets that seed's metrics."""
    (trainer,) = train_seeds(
        config,
        data,
        [seed],
        device=device,
        report=None if report is None else lambda epoch, per_seed: report(epoch, per_seed[0]),
        time_limit=time_limit,
        augment=augment,
        validate=validate,
    )
    return Result(
        metrics=trainer.history[-1],
        history=trainer.history,
        model=trainer.model if keep_model else None,
    )


def _loss(config: Config, kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if kind == "regression":
        return F.mse_loss(out, y)
    return F.cross_entropy(out, y, label_smoothing=config.label_smoothing)
