"""On-device tensor data sets: uint8 images kept on the device, batches by index gather."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class Split:
    """One split: images as uint8 (N, C, H, W), or float32 features (N, F), and targets, both
    on one device."""

    x: torch.Tensor  # uint8 images (converted to float per batch, on the device) or features
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
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) of an image, or (F,) of a feature vector."""
        return tuple(self.train.x.shape[1:])

    @property
    def images(self) -> bool:
        return self.train.x.dtype == torch.uint8 and self.train.x.dim() == 4

    def shape_text(self) -> str:
        """'3x64x64 images' or '10 features', for the console."""
        shape = self.image_shape
        if self.images:
            return "x".join(map(str, shape)) + " images"
        return f"{shape[0]} features" if len(shape) == 1 else "x".join(map(str, shape))

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
    """uint8 -> float32 in [0, 1] on the same device (docs/scenarios.md §1: divide by 255);
    float features (a table, a float array) as they are: they were standardised instead."""
    if x.dtype != torch.uint8:
        return x.float()
    out = x.float().div_(255.0)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out
