"""Judging a model: its outputs for uint8 images (in eval mode, batch by batch, bf16 on CUDA)
and the task's metrics of them: loss, MSE, R² and the spread of the predictions, or accuracy
and its margin over always guessing the majority class."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hpo.train.data import Split, batch_indices, to_float


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
        with autocast(device):
            outs.append(model(to_float(x[idx], channels_last)).float())
    model.train(was_training)
    return torch.cat(outs)


def evaluate(model: nn.Module, split: Split, kind: str, batch_size: int, prefix: str = "val"):
    """Metrics of `model` on a split."""
    out = predict(model, split.x, batch_size, split.x.device)
    return metrics_for(kind, out, split.y, prefix)


def autocast(device: torch.device):
    """bf16 on CUDA: tensor-core speed without loss scaling; CPU stays float32."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
