"""The train/val/test split of a data set (the user's own where given, else a seeded 80/10/10
one, stratified by class) and the feature scaling learnt from its training rows only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpo.tasks.dataset.found import SPLITS, Found
from hpo.util.errors import UserError

MIN_ROWS = 10  # fewer, and a 10 % val or test part would be no rows, or one
SHARE = 0.1  # of all rows for val and for test; of the user's train rows for a part carved


@dataclass(frozen=True)
class Splits:
    """Row indices (int64, sorted) into a Found, for each part, and how they were made."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    how: str  # one phrase: "your own train/val/test split", "seeded 80/10/10 split (seed 0)"


def _quotas(counts: np.ndarray, n: int) -> np.ndarray:
    """`n` rows shared among classes of `counts` rows in proportion (largest remainders
    first), each class keeping one row at least, so that none is missing from what is left."""
    exact = n * counts / counts.sum()
    quota = np.minimum(np.floor(exact).astype(np.int64), counts - 1)
    while quota.sum() < n:
        room = quota < counts - 1
        if not room.any():
            break
        quota[np.argmax(np.where(room, exact - quota, -np.inf))] += 1
    return quota


def _carve(
    rows: np.ndarray, y: np.ndarray | None, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(the rest, `n` of `rows` drawn at random: per class in proportion where `y` is given)."""
    if y is None:
        drawn = rng.permutation(rows)[:n]
    else:
        labels = y[rows]
        classes, counts = np.unique(labels, return_counts=True)
        quota = _quotas(counts, n)
        drawn = np.concatenate(
            [rng.permutation(rows[labels == c])[:q] for c, q in zip(classes, quota, strict=True)]
        )
    return np.setdiff1d(rows, drawn), np.sort(drawn).astype(np.int64)


def _labels(found: Found) -> np.ndarray | None:
    return found.y if found.kind == "classification" else None


def _check_enough(found: Found) -> None:
    n = len(found.y)
    if n < MIN_ROWS:
        raise UserError(
            f"{n} rows are too few to split into train, val and test: hpo needs {MIN_ROWS} or "
            f"more (add rows, or give your own split)"
        )
    y = _labels(found)
    if y is None:
        return
    counts = np.bincount(y, minlength=len(found.classes))
    few = [(c, int(k)) for c, k in zip(found.classes, counts, strict=True) if k < 2]
    if few:
        name, k = few[0]
        raise UserError(
            f"class {name!r} has {k} example{'s' if k != 1 else ''}: a stratified split needs "
            f"at least 2 per class (add examples, remove the class, or give your own split)"
        )


def _given(found: Found, seed: int) -> Splits:
    """The user's own split, kept; a val or test part it lacks carved from its train rows."""
    assert found.split is not None
    parts = {p: np.flatnonzero(found.split == p).astype(np.int64) for p in SPLITS}
    if not len(parts["train"]):
        counts = ", ".join(f"{len(parts[p])} {p}" for p in SPLITS)
        raise UserError(f"your split has no train rows ({counts}): mark some rows train")
    missing = [p for p in ("val", "test") if not len(parts[p])]
    if not missing:
        return Splits(parts["train"], parts["val"], parts["test"], "your own train/val/test split")
    n_train = len(parts["train"])
    if n_train < MIN_ROWS:
        raise UserError(
            f"your split has {n_train} train rows and no {' or '.join(missing)} rows: carving "
            f"them from train needs {MIN_ROWS} train rows or more (add rows, or give them)"
        )
    rng = np.random.default_rng(seed)
    y, n = _labels(found), max(1, round(SHARE * n_train))
    for part in missing:
        parts["train"], parts[part] = _carve(parts["train"], y, n, rng)
    gave = "/".join(p for p in SPLITS if p not in missing)
    each = " each" if len(missing) > 1 else ""
    how = (
        f"your own {gave} split; {' and '.join(missing)} carved as 10 %{each} of your train "
        f"(seed {seed}{', stratified by class' if y is not None else ''})"
    )
    return Splits(parts["train"], parts["val"], parts["test"], how)


def make_split(found: Found, seed: int = 0) -> Splits:
    """The split of `found`'s rows: the user's own where given, else 80/10/10 drawn with
    `seed`, in proportion per class for classification."""
    if found.split is not None:
        return _given(found, seed)
    _check_enough(found)
    rng = np.random.default_rng(seed)
    y, n = _labels(found), len(found.y)
    rest, test = _carve(np.arange(n, dtype=np.int64), y, max(1, round(SHARE * n)), rng)
    train, val = _carve(rest, y, max(1, round(SHARE * n)), rng)
    how = f"seeded 80/10/10 split (seed {seed})"
    how += ", stratified by class" if y is not None else ""
    return Splits(train.astype(np.int64), val, test, how)


def standardise(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per feature of the training rows, float32: the scaling every split gets,
    so that nothing of val or test leaks into training. A constant feature's std is 1."""
    mean = x_train.mean(axis=0, dtype=np.float64)
    std = x_train.std(axis=0, dtype=np.float64)
    std[~(std > 0)] = 1.0  # constant, or no rows: leave the feature as it is, centred
    return mean.astype(np.float32), std.astype(np.float32)


def scaled(x: np.ndarray, scale: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """`x` standardised with standardise's (mean, std), float32."""
    mean, std = scale
    return ((x - mean) / std).astype(np.float32)
