"""What a config costs on this machine, measured before a run: seconds a training step takes
per image, timed on a few batches, and an epoch's work in training images (the CPU cost line of
`hpo study` and `hpo diagnose`)."""

from __future__ import annotations

import time

import torch

from hpo.train.config import Config
from hpo.train.data import TaskData
from hpo.train.loop import Trainer


def image_seconds(
    config: Config, data: TaskData, device: torch.device, augment: bool = False
) -> float | None:
    """Seconds a training step of `config` takes per image here, timed on 3 batches of
    `data` (None if it cannot run at all); a new process's first optimizer step and the stem's
    fit are paid once before the clock starts."""
    n = min(len(data.train), 3 * config.batch_size)
    small = TaskData(data.train.take(n), data.val.take(n), data.kind, data.n_outputs)
    try:
        warm = Trainer(config.replace(epochs=1), small, device=device, validate=False)
        warm.optimizer.step()  # imports torch._dynamo (~3 s) the first time in a process
        trainer = Trainer(
            config.replace(epochs=1), small, device=device, augment=augment, validate=False
        )
        t0 = time.monotonic()
        trainer.run_epoch()
    except (ValueError, RuntimeError):
        return None
    return (time.monotonic() - t0) / n


def epoch_images(data: TaskData) -> float:
    """An epoch in training images: the training split, and the validation split scored after
    it at about a third of a training step's cost an image."""
    return len(data.train) + len(data.val) / 3
