"""A user's own data set as one more Task: an image folder (one folder per class, or a
labels.csv), a table (CSV, Parquet) or NumPy arrays (.npz).

- found: what reading found (arrays, kind, names, digest, notes)
- read: the readers, the image decoding and its cache; split: the split and the scaling
- space: the study spec derived from the data's shape; task: the Task"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["arrays", "found", "read", "space", "split", "task"],
    submod_attrs={"task": ["Request", "dataset_task", "name_of", "prepare"]},
)
