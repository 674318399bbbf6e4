"""The `cifar10` task (docs/scenarios.md §3): the task itself (task), finding, fetching and
verifying the official archive (download), and reading its python batches (files)."""

from hpo.tasks.cifar10.task import DEFAULTS, N_TEST, N_TRAIN_FILES, ORIGINAL, TASK, split

__all__ = ["DEFAULTS", "N_TEST", "N_TRAIN_FILES", "ORIGINAL", "TASK", "split"]
