"""Reading a user's data set from a path into a Found: which format it is (detect), then that
format's reader; the image formats' files decoded once and cached under their content."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hpo.tasks.dataset import cache
from hpo.tasks.dataset.folders import FILE_COLUMN, LABELS, Listing, read_labels, scan_classes
from hpo.tasks.dataset.found import Found
from hpo.tasks.dataset.images import decode_files
from hpo.tasks.dataset.npz import read_npz
from hpo.tasks.dataset.tables import CSV, PARQUET, read_table
from hpo.tasks.dataset.targets import (
    Targets,
    check_classes,
    check_kind,
    class_indices,
    from_frame,
)
from hpo.util.errors import UserError

READ = (
    "a folder of images (one folder per class), a folder with labels.csv, "
    "a table (.csv, .parquet) or NumPy arrays (.npz)"
)


def _names_images(table: Path) -> bool:
    try:
        return FILE_COLUMN in pd.read_csv(table, nrows=0).columns
    except (ValueError, OSError):
        return False


def _root(path: Path | str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"no such file or folder: {p}")
    # labels.csv itself given: the folder it describes (a table of that name without a file
    # column is read as a table)
    if p.is_file() and p.name == LABELS and _names_images(p):
        p = p.parent
    return p.resolve()


def detect(path: Path | str) -> str:
    """The format of the data set at `path`: one of found.FORMATS."""
    p = _root(path)
    if p.is_dir():
        return "image labels" if (p / LABELS).is_file() else "image folder"
    suffix = p.suffix.lower()
    if suffix in CSV + PARQUET:
        return "table"
    if suffix == ".npz":
        return "npz"
    raise UserError(f"{p.name}: unknown format {suffix or '(no suffix)'!r}; hpo reads {READ}")


def _positive(name: str, value: int | None) -> None:
    whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if value is not None and not (whole and value >= 1):
        raise UserError(f"{name} must be a whole number of pixels, 1 or more, not {value!r}")


def read(
    path: Path | str,
    *,
    target: str | Sequence[str] | None = None,
    kind: str | None = None,
    image_size: int | None = None,
    max_image_size: int | None = None,
    skip_bad: bool = False,
) -> Found:
    """The data set at `path`, every row in a stable order. `target`: a table's or labels.csv's
    target columns; `kind` overrides the guessed one; images are brought to `image_size`
    (default: their own, or the median, capped at `max_image_size`); `skip_bad` leaves out
    unreadable images instead of stopping at the first."""
    check_kind(kind)
    _positive("image_size", image_size)
    _positive("max_image_size", max_image_size)
    root = _root(path)
    fmt = detect(root)
    if fmt == "table":
        return read_table(root, target=target, kind=kind)
    if target is not None and fmt != "image labels":
        raise UserError(f"--target names columns of a table or {LABELS}; {root.name} has none")
    if fmt == "npz":
        return read_npz(root, kind=kind, image_size=image_size, max_image_size=max_image_size)
    if fmt == "image folder":
        if kind == "regression":
            raise UserError(
                f"a folder per class is classification: for regression give {root}/{LABELS} "
                f"with a file column and numeric targets"
            )
        listing = scan_classes(root)
    else:
        listing = read_labels(root, target)
    options = {"image_size": image_size, "max_image_size": max_image_size, "skip_bad": skip_bad}
    return _read_images(root, fmt, listing, kind, options)


def _targets(listing: Listing, rows: np.ndarray, kind: str | None, where: str) -> Targets:
    """The targets of the rows `rows` of the listing."""
    if listing.labels is not None:  # a folder per class
        y, classes = class_indices(np.array(listing.labels, dtype=str)[rows])
        return Targets("classification", y, classes, ())
    assert listing.table is not None
    return from_frame(listing.table.iloc[rows].reset_index(drop=True), kind, where)


def _read_images(root: Path, fmt: str, listing: Listing, kind: str | None, options: dict) -> Found:
    """An image data set: its targets checked first (cheap), then its files decoded or taken
    from the cache, then the rows whose image was skipped left out."""
    where = str(root) if fmt == "image folder" else LABELS
    every = np.arange(len(listing.files))
    targets = _targets(listing, every, kind, where)
    if targets.kind == "classification":
        check_classes(targets.y, targets.classes, where, "images")
    unique = sorted(set(listing.files))
    images_digest, digest = cache.digest_files(root, unique, listing.table_bytes)
    key = cache.key_of(images_digest, **options)
    decoded, decode = cache.decoded(key, lambda: decode_files(root, unique, **options))
    # each row's place in the decoded images (-1: its file was skipped)
    place = np.full(len(unique), -1, np.int64)
    place[decoded.kept] = np.arange(len(decoded.kept))
    index = {f: i for i, f in enumerate(unique)}
    at = place[[index[f] for f in listing.files]]
    rows = np.flatnonzero(at >= 0)
    if len(rows) < len(every):  # the skipped rows' targets go too: their classes may shrink
        targets = _targets(listing, rows, targets.kind, where)
        if targets.kind == "classification":
            check_classes(targets.y, targets.classes, where, "images")
    same = len(at) == len(decoded.x) and bool((at == np.arange(len(at))).all())
    return Found(
        path=root,
        format=fmt,
        kind=targets.kind,
        x=decoded.x if same else decoded.x[at[rows]],
        y=targets.y,
        split=None if listing.split is None else listing.split[rows],
        classes=targets.classes,
        targets=targets.names,
        digest=digest,
        notes=tuple(decoded.notes) + targets.notes,
        skipped=tuple(f for f, _ in decoded.bad),
        image_size=decoded.size,
        decode=decode,
    )
