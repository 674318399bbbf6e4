"""The training loop: train(config, data, ...) -> Result. Knows neither Optuna nor MLflow."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hpo.augment import flip_crop
from hpo.config import Config
from hpo.data import Split, TaskData, batch_indices, to_float
from hpo.models import Net, build_model

STEM_FIT_IMAGES = 5_000  # images the whitening stem is fitted on (airbench: 5,000)
LOOKAHEAD_EVERY = 5  # steps between weight averages (airbench)

Report = Callable[[int, dict[str, float]], None]  # (epoch, metrics); may raise to stop


class TrainingError(RuntimeError):
    """A trial that cannot go on; its message is the reason recorded for the trial."""


class Diverged(TrainingError):
    """The training loss became NaN or infinite."""


class OutOfTime(TrainingError):
    """The trial's time budget ran out; `history` holds the epochs that did finish."""

    def __init__(self, message: str, history: list[dict[str, float]]) -> None:
        super().__init__(message)
        self.history = history


@dataclass
class Result:
    """What a finished training run gives back."""

    metrics: dict[str, float]  # the last epoch's metrics
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    seconds: float = 0.0  # wall time of the whole run
    model: Net | None = None


def metrics_for(kind: str, out: torch.Tensor, y: torch.Tensor, prefix: str) -> dict[str, float]:
    """Task metrics of predictions `out` against targets `y` (one sync at the end)."""
    if kind == "regression":
        mse = F.mse_loss(out, y)
        var = y.var(dim=0, unbiased=False).clamp_min(1e-12)
        r2 = 1.0 - ((out - y) ** 2).mean(dim=0) / var  # per target, then averaged (sklearn)
        # prediction spread / target spread: ~0 when a net predicts the mean for every input
        spread = (out.std(dim=0, unbiased=False) / var.sqrt()).mean()
        values = torch.stack([mse, r2.mean(), spread]).tolist()
        return {
            f"{prefix}_loss": values[0],
            f"{prefix}_mse": values[0],
            f"{prefix}_r2": values[1],
            f"{prefix}_pred_spread": values[2],
        }
    loss = F.cross_entropy(out, y)
    accuracy = (out.argmax(dim=1) == y).float().mean()
    majority = torch.bincount(y).max() / y.numel()  # accuracy of always guessing the top class
    values = torch.stack([loss, accuracy, accuracy - majority]).tolist()
    return {
        f"{prefix}_loss": values[0],
        f"{prefix}_accuracy": values[1],
        f"{prefix}_over_chance": values[2],
    }


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Model outputs for uint8 images `x`, in eval mode, batch by batch (float32)."""
    was_training = model.training
    model.eval()
    channels_last = device.type == "cuda"
    outs = []
    for idx in batch_indices(x.shape[0], batch_size, None, x.device):
        with _autocast(device):
            outs.append(model(to_float(x[idx], channels_last)).float())
    model.train(was_training)
    return torch.cat(outs)


def evaluate(model: nn.Module, split: Split, kind: str, batch_size: int, prefix: str = "val"):
    """Metrics of `model` on a split."""
    out = predict(model, split.x, batch_size, split.x.device)
    return metrics_for(kind, out, split.y, prefix)


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
    ) -> None:
        config = config.scaled_to(len(data.train))  # smaller batch on small data, if asked
        self.config, self.data, self.device = config, data, device
        self.deadline, self.validate = deadline, validate
        self.augment = augment and config.augment  # the task's images can be flipped/cropped
        if device.type == "cuda":
            # cuDNN picks the fastest kernels per shape once and caches them for the process
            torch.backends.cudnn.benchmark = True
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
        self.l1_weights = model.l1_weights() if config.l1 > 0 else []
        self.fixed_lr = config.schedule == "constant"
        if self.fixed_lr:
            set_lr(self.optimizer, config, 0, self.total_steps, self.steps_per_epoch)
        self.history: list[dict[str, float]] = []
        self.step = 0

    def run_epoch(self) -> dict[str, float]:
        """Train one epoch, then evaluate; returns (and records) the epoch's metrics."""
        config, data, model, optimizer = self.config, self.data, self.model, self.optimizer
        epoch = len(self.history) + 1
        if self.stem is not None:
            self.stem.conv.bias.requires_grad_(epoch <= config.stem_bias_epochs)
        # train one epoch
        model.train()
        t0 = time.monotonic()
        loss_sum = torch.zeros((), device=self.device)
        for i, idx in enumerate(
            batch_indices(self.n, config.batch_size, self.shuffle, self.device)
        ):
            if not self.fixed_lr:
                set_lr(optimizer, config, self.step, self.total_steps, self.steps_per_epoch)
            x = to_float(data.train.x[idx], self.channels_last)
            if self.augment:
                flips = None  # random
                if self.flip_bits is not None:  # every other epoch, every image flips
                    flips = self.flip_bits[idx] ^ (epoch % 2 == 0)
                x = flip_crop(x, pad=config.aug_pad, generator=self.shuffle, flips=flips)
            with _autocast(self.device):
                out = model(x)
            loss = _loss(config, data.kind, out.float(), data.train.y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
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
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise OutOfTime(f"time budget ran out during epoch {epoch}", self.history)
        train_loss = (loss_sum / self.n).item()  # also syncs the device before timing
        seconds = time.monotonic() - t0
        if not math.isfinite(train_loss):
            raise Diverged(f"loss became {train_loss} at epoch {epoch}")
        # evaluate
        metrics = {"train_loss": train_loss}
        if self.validate:  # off for the final retrain on train + validation
            # Test-time augmentation (6 forward passes an image at tta 2) only at the last
            # epoch: the pruner compares every trial on plain predictions at its rungs, and
            # earlier epochs cost one pass (on an H100, 0.07 s an epoch of a 3 s trial).
            model.tta = config.tta if epoch == config.epochs else 0
            metrics |= evaluate(model, data.val, data.kind, self.eval_batch)
            model.tta = config.tta
            if data.kind == "regression" and not math.isfinite(metrics["val_loss"]):
                raise Diverged(f"validation loss became {metrics['val_loss']} at epoch {epoch}")
        metrics |= {
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_seconds": seconds,
            "images_per_second": self.n / max(seconds, 1e-9),
        }
        self.history.append(metrics)
        return metrics


def train(
    config: Config,
    data: TaskData,
    *,
    device: torch.device,
    seed: int = 0,
    report: Report | None = None,
    deadline: float | None = None,
    augment: bool = False,
    keep_model: bool = False,
    validate: bool = True,
) -> Result:
    """Train `config` on `data.train`, evaluating on `data.val` after every epoch.

    `report(epoch, metrics)` is called once per epoch (1-based) and may raise to stop the run
    (pruning). `deadline` is a time.monotonic() value after which OutOfTime is raised.
    `augment`: whether the task's images may be flipped and cropped (when config.augment).
    """
    start = time.monotonic()
    trainer = Trainer(
        config,
        data,
        device=device,
        seed=seed,
        deadline=deadline,
        augment=augment,
        validate=validate,
    )
    for epoch in range(1, config.epochs + 1):
        metrics = trainer.run_epoch()
        if report is not None:  # may raise to prune
            report(epoch, metrics)
    return Result(
        metrics=trainer.history[-1],
        history=trainer.history,
        seconds=time.monotonic() - start,
        model=trainer.model if keep_model else None,
    )


@torch.no_grad()
def l1_thresholds(
    optimizer: torch.optim.Optimizer, weights: list[tuple[torch.Tensor, bool]], l1: float
) -> list[float | torch.Tensor]:
    """How far this step's L1 shrink moves each weight: `l1` times the optimizer's own step.

    SGD and Adam move a weight by about lr per step (Adam: at most lr), so the shrink is
    lr * l1. Adadelta's lr is a multiplier (1.0 by design) on a step of lr * RMS(past updates)
    per weight, which starts near 1e-3 * lr: a shrink of lr * l1 would zero every weight at
    once. There the shrink is l1 times that per-weight step size, so one `l1` means the same
    for all three (pixel at 224 px, centred inputs, Adadelta lr 1, l1 0.6: val accuracy 0.986
    after 4 epochs; with lr * l1 it sat at 0.5).
    """
    group = optimizer.param_groups[0]
    lr = group["lr"]
    if not isinstance(optimizer, torch.optim.Adadelta):
        return [lr * l1] * len(weights)
    eps = group["eps"]
    out: list[float | torch.Tensor] = []
    for w, _ in weights:
        acc_delta = optimizer.state[w].get("acc_delta")
        out.append(
            lr * l1 * math.sqrt(eps)
            if acc_delta is None
            else acc_delta.add(eps).sqrt_().mul_(lr * l1)
        )
    return out


@torch.no_grad()
def shrink_l1(
    weights: list[tuple[torch.Tensor, bool]], thresholds: float | list[float | torch.Tensor]
) -> None:
    """Proximal L1 step: soft-threshold each weight towards zero by its threshold (a number,
    or a tensor of per-element thresholds), with exact zeros.

    A layer followed by batch norm computes the same function at any scale of a unit's weights,
    so there a plain shrink would not select anything: it would only make the weights smaller,
    i.e. every later step relatively larger, until training oscillates (pixel: val accuracy
    1.0, 0.62, 1.0, 0.76 over four epochs). There each unit keeps its norm and the shrink
    sparsifies its direction instead.
    """
    if not isinstance(thresholds, list):
        thresholds = [thresholds] * len(weights)
    for (w, normalised), t in zip(weights, thresholds, strict=True):
        before = torch.linalg.vector_norm(w.flatten(1), dim=1) if normalised else None
        if isinstance(t, torch.Tensor):
            w.sub_(torch.minimum(torch.maximum(w, -t), t))  # w - clamp(w, -t, t)
        else:
            w.copy_(torch.nn.functional.softshrink(w, t))
        if before is not None:  # a unit shrunk to 0 stays 0
            after = torch.linalg.vector_norm(w.flatten(1), dim=1)
            w.mul_((before / after.clamp_min(1e-12)).view(-1, *(1,) * (w.dim() - 1)))


class Lookahead:
    """A running average of the weights (and batch-norm statistics) that the weights are reset
    to at each update: w_avg <- decay w_avg + (1 - decay) w; w <- w_avg (airbench)."""

    def __init__(self, model: nn.Module) -> None:
        self.live = [t for t in model.state_dict().values() if t.is_floating_point()]
        self.average = [t.detach().clone() for t in self.live]

    @torch.no_grad()
    def update(self, decay: float) -> None:
        torch._foreach_lerp_(self.average, self.live, 1.0 - decay)
        torch._foreach_copy_(self.live, self.average)


def lookahead_decay(step: int, total_steps: int) -> float:
    """Weight of the past average at `step`: 0.95^5 (step / total)^3, i.e. ~0 for the first
    half of training and 0.77 at the end (airbench's schedule)."""
    return 0.95**LOOKAHEAD_EVERY * (step / total_steps) ** 3


def make_optimizer(config: Config, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) / Adam / Adadelta with the config's lr and weight decay.

    Two parameter groups: the weights, then batch norm's parameters at bn_lr_scale x the lr and
    weight decay / bn_lr_scale (the same decay per step). Frozen parameters are left out.
    """
    norm_ids = {
        id(p)
        for m in model.modules()
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)
        for p in m.parameters()
    }
    # the whitening stem's bias counts: it trains for the first epochs (then has no gradient,
    # which every torch optimizer skips); its frozen weight does not
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) not in norm_ids], "lr_scale": 1.0},
        {
            "params": [p for p in trainable if id(p) in norm_ids],
            "lr": config.lr * config.bn_lr_scale,
            "weight_decay": config.weight_decay / config.bn_lr_scale,
            "lr_scale": config.bn_lr_scale,
        },
    ]
    params = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        nesterov = config.nesterov and config.momentum > 0  # torch rejects Nesterov w/o momentum
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=nesterov,
            weight_decay=config.weight_decay,
        )
    if config.optimizer == "adam":
        # eps 1e-8 = the user's Keras setting in docs/scenarios.md §1 (and torch's default)
        return torch.optim.Adam(params, lr=config.lr, eps=1e-8, weight_decay=config.weight_decay)
    return torch.optim.Adadelta(params, lr=config.lr, weight_decay=config.weight_decay)


def lr_factor(config: Config, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier on the peak lr at optimiser step `step` (0-based)."""
    if config.schedule == "keras_decay":
        return 1.0 / (1.0 + config.lr_decay * step)
    if config.schedule == "onecycle":  # linear up to lr_peak_at of the steps, then down
        peak = config.lr_peak_at * total_steps
        start, end = config.lr_start, config.lr_end
        if step < peak:
            return start + (1.0 - start) * (step + 1) / peak
        return end + (1.0 - end) * max(0.0, (total_steps - step) / max(total_steps - peak, 1))
    if config.schedule == "cosine":
        warmup = config.warmup_epochs * steps_per_epoch
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total_steps - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return 1.0


def set_lr(optimizer, config: Config, step: int, total_steps: int, steps_per_epoch: int) -> None:
    lr = config.lr * lr_factor(config, step, total_steps, steps_per_epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def _loss(config: Config, kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if kind == "regression":
        return F.mse_loss(out, y)
    return F.cross_entropy(out, y, label_smoothing=config.label_smoothing)


def _autocast(device: torch.device):
    # bf16 on CUDA: tensor-core speed without loss scaling; CPU stays float32.
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
