"""Reading the CIFAR-10 python batches: the official file names, a safe unpickler that imports
nothing beyond numpy arrays, the train/test loaders (the train loader never opens test_batch)
and the fixed train/validation split. hpo.tasks.cifar10.download finds, fetches and verifies
them."""

from __future__ import annotations

import pickle
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np

from hpo.util.errors import UserError

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
FILES = (*TRAIN_BATCHES, TEST_BATCH, META)
N_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)


class DataError(UserError):
    """The data set is missing, corrupt or cannot be fetched; str() is one line for the user.

    A `UserError`, so the CLI prints it as one line and exits with code 2.
    """


def load_cifar10(folder: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y): uint8 (N, 3, 32, 32) images and int64 (N,) labels."""
    train_x, train_y = load_cifar10_split(folder, "train")
    test_x, test_y = load_cifar10_split(folder, "test")
    return train_x, train_y, test_x, test_y


def load_cifar10_split(folder: Path | str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one split: "train" reads data_batch_1..5 only, "test" reads test_batch only.

    A search loads "train" and never opens test_batch, so the test set cannot leak into it.
    """
    names = {"train": TRAIN_BATCHES, "test": (TEST_BATCH,)}.get(split)
    if names is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    batches = [_load_batch(Path(folder) / name) for name in names]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def label_names(folder: Path | str) -> list[str]:
    """The ten class names from `batches.meta`, in label order."""
    path = Path(folder) / META
    meta = _unpickle(path)
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != N_CLASSES:
        raise DataError(f"{path} is malformed: no list of {N_CLASSES} label_names")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def split_indices(
    n: int, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sorted int64 indices into range(n); val is round(n * val_fraction) of them.

    A fixed-seed permutation: the same n, fraction and seed give the same split on every machine.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = round(n * val_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    # Sorted, so gathering a split reads memory in order; shuffling is the training loop's job.
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)


def reason_of(error: BaseException) -> str:
    """The error as a short single-line reason."""
    reason: object = error
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        reason = error.reason  # str(URLError) wraps it in "<urlopen error ...>"
    text = " ".join(str(reason).split())
    return text or type(error).__name__


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles the batch dicts, but refuses to import anything beyond what arrays need.

    The extracted folder may not have been md5-checked, and plain pickle runs arbitrary code.
    """

    _ALLOWED = {
        ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol 2
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # numpy < 2 (the official files)
        ("numpy._core.multiarray", "_reconstruct"),  # numpy >= 2
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "numpy.core.multiarray":
            # numpy >= 2 warns on the old module path; the functions are the same.
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, Any]:
    """One pickled dict from the official files, with its bytes keys decoded to str."""
    try:
        with path.open("rb") as f:
            # encoding="bytes": the official files are Python 2 pickles of str (bytes) keys.
            obj = _BatchUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path} is missing; delete {path.parent} to extract it again") from None
    except Exception as e:  # unpickling a damaged file can raise almost anything
        raise DataError(
            f"{path} is unreadable ({type(e).__name__}: {reason_of(e)}); "
            f"delete {path.parent} to extract it again"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(
            f"{path} is malformed: not a dict; delete {path.parent} to extract it again"
        )
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 (n, 3, 32, 32), y int64 (n,)) from one batch file."""
    batch = _unpickle(path)
    data, labels = batch.get("data"), batch.get("labels")
    width = int(np.prod(IMAGE_SHAPE))
    problem = None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        problem = "no uint8 2-D 'data' array"
    elif data.shape[1] != width:
        problem = f"'data' has {data.shape[1]} columns, expected {width}"
    elif not isinstance(labels, list | np.ndarray) or len(labels) != data.shape[0]:
        problem = f"'labels' is not a list of {data.shape[0]} labels"
    if problem is None:
        y = np.asarray(labels)
        if y.size and (y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= N_CLASSES):
            problem = f"'labels' are not integers in 0..{N_CLASSES - 1}"
    if problem is not None:
        raise DataError(
            f"{path} is malformed: {problem}; delete {path.parent} to extract it again"
        )
    # Each row is the red, green, then blue 32x32 plane, row-major: exactly (3, 32, 32) in C order.
    x = np.ascontiguousarray(data).reshape(-1, *IMAGE_SHAPE)
    return x, y.astype(np.int64).reshape(-1)
