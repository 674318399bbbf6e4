"""The training loop: train(config, data, ...) -> Result. Knows neither Optuna nor MLflow."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hpo.config import Config
from hpo.data import Split, TaskData, batch_indices, to_float
from hpo.models import Net, build_model

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
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        validate: bool = True,
    ) -> None:
        self.config, self.data, self.device = config, data, device
        self.deadline, self.validate = deadline, validate
        self.augment = augment if config.augment else None
        torch.manual_seed(seed)  # weight init; shuffle order has its own generator below
        model = build_model(config, data.image_shape, data.n_outputs).to(device)
        self.channels_last = device.type == "cuda" and bool(config.conv_channels)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = make_optimizer(config, model)
        self.shuffle = torch.Generator(device=device).manual_seed(seed)
        self.n = len(data.train)
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
            if self.augment is not None:
                x = self.augment(x, self.shuffle)
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
            metrics |= evaluate(model, data.val, data.kind, self.eval_batch)
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
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    keep_model: bool = False,
    validate: bool = True,
) -> Result:
    """Train `config` on `data.train`, evaluating on `data.val` after every epoch.

    `report(epoch, metrics)` is called once per epoch (1-based) and may raise to stop the run
    (pruning). `deadline` is a time.monotonic() value after which OutOfTime is raised.
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


def make_optimizer(config: Config, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) / Adam / Adadelta with the config's lr and weight decay."""
    params = model.parameters()
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
        # eps 1e-8 = the user's Keras setting in SEEDS.md §1 (and torch's default)
        return torch.optim.Adam(params, lr=config.lr, eps=1e-8, weight_decay=config.weight_decay)
    return torch.optim.Adadelta(params, lr=config.lr, weight_decay=config.weight_decay)


def lr_factor(config: Config, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier on the peak lr at optimiser step `step` (0-based)."""
    if config.schedule == "keras_decay":
        return 1.0 / (1.0 + config.lr_decay * step)
    if config.schedule == "onecycle":  # triangular: up for the first 25 %, then down to 0
        peak = 0.25 * total_steps
        if step < peak:
            return (step + 1) / peak
        return max(0.0, (total_steps - step) / max(total_steps - peak, 1))
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
        group["lr"] = lr


def _loss(config: Config, kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if kind == "regression":
        return F.mse_loss(out, y)
    return F.cross_entropy(out, y, label_smoothing=config.label_smoothing)


def _autocast(device: torch.device):
    # bf16 on CUDA: tensor-core speed without loss scaling; CPU stays float32.
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
