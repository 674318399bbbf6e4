"""hpo.Task: the public surface of a task (hpo.tasks.base.Task), with the constructor of a
Task from arrays a caller already has."""

from __future__ import annotations

from typing import Any

import torch

from hpo.tasks import base


class Task(base.Task):
    """One studied problem (see hpo.tasks.base.Task for its fields): a plugin package builds
    one; `Task.from_arrays` makes one of arrays in memory."""

    @staticmethod
    def from_arrays(
        x: Any,
        y: Any,
        *,
        x_val: Any = None,
        y_val: Any = None,
        x_test: Any = None,
        y_test: Any = None,
        name: str | None = None,
        folder: str | None = None,
    ) -> base.Task:
        """The Task of arrays a caller already has: uint8 images (N,H,W,C or N,C,H,W) or float
        features (N,F), and their targets; the splits given, else a seeded 80/10/10. They are
        written once as an .npz (named by their content, under `folder`, else HPO_CACHE_DIR's
        arrays/), which the study records, so that workers read the same data.

        >>> import numpy as np, hpo
        >>> x = np.random.default_rng(0).normal(size=(200, 4)).astype("float32")
        >>> task = hpo.Task.from_arrays(x, x @ np.ones(4, "float32"), name="sums")
        >>> task.kind, task.n_outputs
        ('regression', 1)
        """
        from hpo.tasks.dataset.arrays import write_arrays
        from hpo.tasks.dataset.task import Request, dataset_task

        parts = {"x": x, "y": y, "x_val": x_val, "y_val": y_val, "x_test": x_test}
        parts["y_test"] = y_test
        path = write_arrays({k: v for k, v in parts.items() if v is not None}, folder)
        cpu = not torch.cuda.is_available()
        return dataset_task(Request(path=str(path), cpu=cpu), name=name or path.stem)
