"""Optimisers and what steps them: SGD / Adam / Adadelta with a batch-norm group, the lr
schedules, the proximal L1 shrink and lookahead weight averaging. Knows nothing of studies."""

from __future__ import annotations

import math

import torch
from torch import nn

from hpo.train.config import Config

LOOKAHEAD_EVERY = 5  # steps between weight averages (airbench)


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
