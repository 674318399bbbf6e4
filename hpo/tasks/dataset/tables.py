"""Reading a table (.csv, .parquet) into float32 features and targets: numbers kept, text
columns one-hot encoded (up to a cap), missing numbers filled, each change said in a note."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hpo.tasks.dataset.cache import digest_file
from hpo.tasks.dataset.found import SPLITS, Found
from hpo.tasks.dataset.targets import check_classes, choose_columns, from_frame, is_number
from hpo.util.errors import UserError, first_line

CSV = (".csv",)
PARQUET = (".parquet", ".pq")
MAX_CATEGORIES = 32  # a text column with more distinct values is dropped, not one-hot encoded
SPLIT_COLUMN = "split"
ALIASES = {"valid": "val", "validation": "val", "dev": "val", "training": "train"}


def read_frame(path: Path) -> pd.DataFrame:
    """The table in `path`, any failure to read it a UserError saying why."""
    what = "Parquet" if path.suffix.lower() in PARQUET else "CSV"
    try:
        if what == "Parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except ImportError:
        raise UserError("reading Parquet needs pyarrow: pip install pyarrow") from None
    except (ValueError, OSError, NotImplementedError) as e:  # pandas and pyarrow parse errors
        raise UserError(f"{path.name} cannot be read as {what}: {first_line(e)}") from None
    if frame.empty:
        raise UserError(f"{path.name} has no rows")
    return frame


def split_of(values: pd.Series, where: str) -> np.ndarray:
    """A `split` column as train/val/test per row (val's usual other names accepted)."""
    text = values.astype(str).str.strip().str.lower().replace(ALIASES)
    wrong = sorted(set(text) - set(SPLITS))
    if wrong or values.isna().any():
        shown = wrong[0] if wrong else "an empty cell"
        raise UserError(
            f"the split column of {where} holds {shown!r}: each row's split must be "
            f"train, val or test"
        )
    return text.to_numpy().astype("<U5")


def fill_missing(values: np.ndarray) -> tuple[np.ndarray, int]:
    """A numeric column with NaN and inf replaced by its median; how many were."""
    values = np.asarray(values, np.float64)
    bad = ~np.isfinite(values)
    n = int(bad.sum())
    if n:
        values = values.copy()
        values[bad] = np.median(values[~bad]) if n < len(values) else 0.0
    return values, n


def _one_hot(column: pd.Series, categories: list[str]) -> np.ndarray:
    """One column of 0/1 per category; a row with no value is all zeros."""
    codes = np.full(len(column), -1, np.int64)
    present = column.notna().to_numpy()
    codes[present] = np.searchsorted(categories, column[present].astype(str).to_numpy())
    out = np.zeros((len(column), len(categories)), np.float32)
    rows = np.flatnonzero(present)
    out[rows, codes[rows]] = 1.0
    return out


def _is_row_index(column: pd.Series) -> bool:
    """pandas' to_csv writes the index as an unnamed first column: 0, 1, 2, ..."""
    values = column.to_numpy()
    return np.issubdtype(values.dtype, np.integer) and np.array_equal(
        values, np.arange(len(values))
    )


def encode_features(frame: pd.DataFrame, where: str) -> tuple[np.ndarray, list[str], list[str]]:
    """(float32 (N, F) features, their names, notes) from every column of `frame`."""
    blocks, names = [], []
    filled, encoded, dropped = [], [], []
    for name in map(str, frame.columns):
        column = frame[name]
        if name.startswith("Unnamed: ") and _is_row_index(column):
            dropped.append(f"{name} (the row numbers: a saved index)")
        elif is_number(column) or pd.api.types.is_bool_dtype(column):
            values, n = fill_missing(column.to_numpy(np.float64, na_value=np.nan))
            blocks.append(values[:, None])
            names.append(name)
            filled += [f"{name}: {n}"] if n else []
        elif pd.api.types.is_datetime64_any_dtype(column):
            dropped.append(f"{name} (a date)")
        else:
            categories = sorted(set(column.dropna().astype(str)))
            if len(categories) > MAX_CATEGORIES:
                n = len(categories)
                dropped.append(
                    f"{name} ({n} distinct values, over the {MAX_CATEGORIES} one-hot encoded)"
                )
                continue
            blocks.append(_one_hot(column, categories))
            names += [f"{name}={c}" for c in categories]
            encoded.append(f"{name}: {len(categories)}")
    notes = _feature_notes(filled, encoded, dropped)
    if not blocks:
        why = f"; dropped {', '.join(dropped)}" if dropped else ""
        raise UserError(f"{where} has no usable feature column{why}")
    return np.hstack(blocks).astype(np.float32), names, notes


def _feature_notes(filled: list[str], encoded: list[str], dropped: list[str]) -> list[str]:
    notes = []
    if encoded:
        columns = f"{len(encoded)} text column{'s' * (len(encoded) > 1)}"
        notes.append(f"one-hot encoded {columns} ({', '.join(encoded)} values)")
    if dropped:
        notes.append(f"dropped {', '.join(dropped)}")
    if filled:
        notes.append(f"filled missing numbers with the column's median ({', '.join(filled)})")
    return notes


def read_table(path: Path, *, target: str | Sequence[str] | None, kind: str | None) -> Found:
    """A .csv or .parquet file: `target` names its target columns, the rest are features. A
    column named `split` (train/val/test per row) is the user's own split."""
    frame = read_frame(path)
    frame.columns = [str(c) for c in frame.columns]
    where = path.name
    split = split_of(frame[SPLIT_COLUMN], where) if SPLIT_COLUMN in frame.columns else None
    columns = choose_columns(
        frame.columns, target, where=where, exclude=(SPLIT_COLUMN,) if split is not None else (),
        required=True,
    )  # fmt: skip
    targets = from_frame(frame[columns], kind, where)
    if targets.kind == "classification":
        check_classes(targets.y, targets.classes, where)
    rest = frame.drop(columns=columns + ([SPLIT_COLUMN] if split is not None else []))
    x, names, notes = encode_features(rest, where)
    if split is not None:
        notes.append("the split column is your own train/val/test split")
    return Found(
        path=path,
        format="table",
        kind=targets.kind,
        x=x,
        y=targets.y,
        split=split,
        classes=targets.classes,
        targets=targets.names,
        features=tuple(names),
        digest=digest_file(path),
        notes=tuple(notes) + targets.notes,
    )
