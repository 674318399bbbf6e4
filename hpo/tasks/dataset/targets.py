"""What a data set's targets are: which columns, classification or regression, and the y that
hpo trains on (int64 class indices, or float32 (N, k) outputs). Shared by tables, labels.csv
and .npz arrays, so that the same column reads the same way in each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpo.tasks.dataset.found import KINDS
from hpo.util.errors import UserError

# A single integer target with at most this many distinct values is a class label; so is one
# whose values are exactly 0..K-1 (class indices) with up to MAX_CLASSES of them.
FEW_VALUES = 20
MAX_CLASSES = 1000


@dataclass(frozen=True)
class Targets:
    kind: str  # one of KINDS
    y: np.ndarray  # int64 (N,) into classes, or float32 (N, k)
    classes: tuple[str, ...]
    names: tuple[str, ...]  # the target columns
    notes: tuple[str, ...] = ()


def check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise UserError(f"kind must be classification or regression, not {kind!r}")


def _names(target: str | Sequence[str], available: Sequence[str]) -> list[str]:
    names = [target] if isinstance(target, str) else list(target)
    out = []
    for name in map(str, names):
        # "a,b" for two columns (one CLI flag), unless a column is called that
        parts = [name] if name in available or "," not in name else name.split(",")
        out += [p.strip() for p in parts if p.strip()]
    return out


def choose_columns(
    columns: Sequence[str],
    target: str | Sequence[str] | None,
    *,
    where: str,
    exclude: Sequence[str] = (),
    required: bool = False,
) -> list[str]:
    """The target columns: those `target` names, else (unless `required`) all but `exclude`."""
    available = [str(c) for c in columns if c not in exclude]
    listed = ", ".join(available)
    if target is None or not _names(target, available):
        if required:
            raise UserError(f"a table needs --target COL (columns: {listed})")
        if not available:
            raise UserError(f"{where} has no target column beside {', '.join(exclude)}")
        return available
    names = _names(target, available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UserError(f"target {unknown[0]!r} is not a column of {where} (columns: {listed})")
    return list(dict.fromkeys(names))


def is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _check_present(series: pd.Series, where: str) -> None:
    bad = series.isna().to_numpy().copy()
    if is_number(series):
        bad |= ~np.isfinite(series.to_numpy(dtype=np.float64, na_value=np.nan))
    if n := int(bad.sum()):
        raise UserError(
            f"target {series.name!r} of {where} has NaN, inf or no value in {n} of "
            f"{len(series)} rows: fill or drop those rows"
        )


def _looks_like_classes(values: np.ndarray) -> bool:
    """An integer column few-valued enough, or indexed 0..K-1, to be class labels."""
    if not np.issubdtype(values.dtype, np.integer):
        return False
    distinct = np.unique(values)
    if len(distinct) <= FEW_VALUES:
        return True
    indices = distinct[0] == 0 and distinct[-1] == len(distinct) - 1
    return bool(indices and len(distinct) <= min(MAX_CLASSES, len(values) // 2))


def _guess(frame: pd.DataFrame) -> tuple[str, tuple[str, ...]]:
    if len(frame.columns) != 1:
        return "regression", ()
    column = frame.iloc[:, 0]
    if not is_number(column):
        return "classification", ()
    if _looks_like_classes(column.to_numpy()):
        n = column.nunique()
        note = f"target {column.name!r}: {n} integer values read as classes"
        return "classification", (f"{note} (--data kind=regression predicts it as a number)",)
    return "regression", ()


def class_indices(values: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """(int64 index of each value, the class names): sorted numerically for numbers, else
    as text."""
    if np.issubdtype(values.dtype, np.number) and values.dtype != bool:
        distinct = np.unique(values)
        names = tuple(str(int(v)) if float(v).is_integer() else str(float(v)) for v in distinct)
    else:
        values = values.astype(str)
        distinct = np.unique(values)
        names = tuple(map(str, distinct))
    return np.searchsorted(distinct, values).astype(np.int64), names


def from_frame(frame: pd.DataFrame, kind: str | None, where: str) -> Targets:
    """The targets in `frame`'s columns (every row must have a value), as `kind` says or as
    guessed: a text or few-valued integer column is classification, numbers regression."""
    check_kind(kind)
    for name in frame.columns:
        _check_present(frame[name], where)
    notes: tuple[str, ...] = ()
    if kind is None:
        kind, notes = _guess(frame)
    names = tuple(map(str, frame.columns))
    if kind == "classification":
        if len(names) != 1:
            raise UserError(
                f"classification takes one target column, not {len(names)} "
                f"({', '.join(names)}): name one with --target"
            )
        y, classes = class_indices(frame.iloc[:, 0].to_numpy())
        return Targets(kind, y, classes, names, notes)
    text = [n for n in frame.columns if not is_number(frame[n])]
    if text:
        raise UserError(
            f"target {text[0]!r} of {where} is not numeric: regression needs numbers "
            f"(--data kind=classification reads one text column as classes)"
        )
    return Targets(kind, frame.to_numpy(dtype=np.float32), (), names, notes)


def from_array(y: np.ndarray, kind: str | None, where: str) -> Targets:
    """The targets of an array y: (N,) labels or values, or (N, k) values."""
    if y.dtype.kind == "S":
        y = y.astype(str)
    if y.ndim == 2 and y.shape[1] == 1 and y.dtype.kind != "f":
        y = y[:, 0]
    if y.ndim == 1:
        frame = pd.DataFrame({"y": y})
    elif y.ndim == 2:
        names = ["y"] if y.shape[1] == 1 else [f"y{i}" for i in range(y.shape[1])]
        frame = pd.DataFrame(y, columns=names)
    else:
        raise UserError(f"y of {where} has shape {y.shape}: it must be (N,) or (N, k)")
    if y.dtype.kind == "f" and kind is None:
        kind = "regression"  # floats are values, whatever they hold
    return from_frame(frame, kind, where)


def check_classes(y: np.ndarray, classes: Sequence[str], where: str, unit: str = "rows") -> None:
    """Classification needs two classes or more, each with two examples or more."""
    counts = np.bincount(y, minlength=len(classes))
    present = [c for c, n in zip(classes, counts, strict=True) if n]
    if len(present) < 2:
        only = f"only {present[0]!r}" if present else "none"
        raise UserError(f"classification needs at least 2 classes; {where} has {only}")
    few = [(c, int(n)) for c, n in zip(classes, counts, strict=True) if n < 2]
    if few:
        name, n = few[0]
        more = f" (and {len(few) - 1} more classes)" if len(few) > 1 else ""
        raise UserError(
            f"class {name!r} of {where} has {n} {unit if n != 1 else unit[:-1]}{more}: each "
            f"class needs at least 2 (add examples, or remove the class)"
        )
