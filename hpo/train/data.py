"""On-device tensor data sets: uint8 images kept on the device, batches by index gather."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class Split:
    """One split: images as uint8 (N, C, H, W) and targets, both on one device."""

    x: torch.Tensor  # uint8 images; converted to float per batch, on the device
    y: torch.Tensor  # float32 (N, k) regression targets or int64 (N,) class labels

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def take(self, n: int) -> Split:
        return Split(self.x[:n], self.y[:n])


@dataclass
class TaskData:
    """What a search sees: train and validation only; the test split is loaded elsewhere."""

    train: Split
    val: Split
    kind: str  # "regression" | "classification"
    n_outputs: int  # regression targets or classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    def to(self, device: torch.device) -> TaskData:
        return TaskData(self.train.to(device), self.val.to(device), self.kind, self.n_outputs)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA if present, else CPU; otherwise torch's own parsing, checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA device is available")
    return device


def batch_indices(
    n: int, batch_size: int, generator: torch.Generator | None, device: torch.device
) -> Iterator[torch.Tensor]:
    """Index tensors of a shuffled (generator given) or ordered epoch; keeps the last batch."""
    if generator is None:
        order = torch.arange(n, device=device)
    else:
        order = torch.randperm(n, generator=generator, device=generator.device).to(device)
    yield from order.split(batch_size)


def to_float(x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 -> float32 in [0, 1] on the same device (docs/scenarios.md §1: divide by 255)."""
    out = x.float().div_(255.0)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out
