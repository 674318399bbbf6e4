"""What reading a user's data set found: the arrays, their kind, names and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMATS = ("image folder", "image labels", "table", "npz")
KINDS = ("classification", "regression")
SPLITS = ("train", "val", "test")


@dataclass
class Found:
    """A data set as read from disk, before the split: every row, in a stable order."""

    path: Path  # the file or folder given, resolved
    format: str  # one of FORMATS
    kind: str  # one of KINDS
    # uint8 (N, C, H, W) images, or float32 (N, F) features (a table, a float npz)
    x: np.ndarray
    # int64 (N,) class indices into `classes`, or float32 (N, k) regression targets
    y: np.ndarray
    # the user's own split of each row ("train" | "val" | "test"), or None: hpo makes one
    split: np.ndarray | None
    classes: tuple[str, ...] = ()  # class names in index order (classification)
    targets: tuple[str, ...] = ()  # regression target names; the label column (labels table)
    features: tuple[str, ...] = ()  # a table's feature columns after one-hot encoding
    # sha256 hex of the content: the files' bytes (images, table, npz) and the labels, so that
    # the same data under another path has the same digest, and a changed file another one
    digest: str = ""
    # what was assumed or converted, each a short phrase ("12 grayscale converted to RGB",
    # "x read as N,H,W,C", "resized to 32x32 (the median size; capped at 64 on a CPU)")
    notes: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # files left out under skip_bad (relative paths)
    image_size: int | None = None  # the size images were resized to; None: not images
    decode: dict[str, float] = field(default_factory=dict)  # images, seconds, cached (0/1)

    @property
    def images(self) -> bool:
        return self.x.dtype == np.uint8 and self.x.ndim == 4

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.kind == "classification" else int(self.y.shape[1])
