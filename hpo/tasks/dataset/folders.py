"""Finding a user's image files: a folder per class (torchvision's ImageFolder layout, perhaps
inside train/, val/, test/ folders), or a labels.csv naming each file and its targets."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from hpo.tasks.dataset.images import EXTENSIONS
from hpo.tasks.dataset.tables import ALIASES, SPLIT_COLUMN, split_of
from hpo.tasks.dataset.targets import choose_columns
from hpo.util.errors import UserError, first_line

LABELS = "labels.csv"
FILE_COLUMN = "file"
SPLIT_DIRS = {"train": "train", "val": "val", "test": "test", **ALIASES}


@dataclass
class Listing:
    """The rows of an image data set before any image is read."""

    files: list[str]  # each row's file, relative to the root, with / separators
    split: np.ndarray | None  # each row's split (the user's own), or None
    labels: list[str] | None = None  # each row's class (a folder per class)
    table: pd.DataFrame | None = None  # each row's target columns (labels.csv)
    table_bytes: bytes = b""  # labels.csv as read: part of the digest


def _visible(name: str) -> bool:
    return not name.startswith(".")  # .DS_Store, .ipynb_checkpoints, .git


def _dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p.name))


def _is_image(name: str) -> bool:
    return _visible(name) and os.path.splitext(name)[1].lower() in EXTENSIONS


def images_in(folder: Path, root: Path) -> list[str]:
    """The image files anywhere under `folder`, relative to `root`, sorted."""
    out = []
    # followlinks, as ImageFolder does: class folders are often links into a shared store
    for base, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if _visible(d)]
        rel = Path(base).relative_to(root)
        out += [(rel / n).as_posix() for n in names if _is_image(n)]
    return sorted(out)


def _parts(root: Path) -> list[tuple[str | None, Path]]:
    """(split, folder of class folders): train/, val/, test/ when there is a train/ folder."""
    subdirs = _dirs(root)
    splits = [d for d in subdirs if d.name.lower() in SPLIT_DIRS]
    if not any(SPLIT_DIRS[d.name.lower()] == "train" for d in splits):
        return [(None, root)]
    others = [d.name for d in subdirs if d not in splits]
    if others:
        raise UserError(
            f"{root} has a train/ folder beside other folders ({', '.join(others[:5])}): "
            f"put each split's class folders in train/, val/, test/, or rename a class 'train'"
        )
    return [(SPLIT_DIRS[d.name.lower()], d) for d in splits]


def _nothing_found(root: Path, parts: list[tuple[str | None, Path]]) -> str:
    where = f"{root}/train/<class>/" if parts[0][0] else f"{root}/<class>/"
    line = f"no images found in {where} (read: {', '.join(EXTENSIONS)}, in any case)"
    loose = [n for n in os.listdir(parts[0][1]) if _is_image(n)]
    if loose:
        line += (
            f"; the {len(loose)} images directly in {parts[0][1]} are not read: put each "
            f"class's images in a folder of its own, or list them in {LABELS}"
        )
    return line


def scan_classes(root: Path) -> Listing:
    """A folder per class: each row's file and class, and its split where given by folders."""
    parts = _parts(root)
    files: list[str] = []
    labels: list[str] = []
    split: list[str | None] = []
    for part, folder in parts:
        for klass in _dirs(folder):
            found = images_in(klass, root)
            files += found
            labels += [klass.name] * len(found)
            split += [part] * len(found)
    if not files:
        raise UserError(_nothing_found(root, parts))
    given = np.array(split, "<U5") if parts[0][0] is not None else None
    return Listing(files, given, labels=labels)


def _files_of(column: pd.Series, root: Path) -> list[str]:
    if n := int(column.isna().sum()):
        raise UserError(f"{LABELS} has {n} rows with no {FILE_COLUMN}: each row names one image")
    # ./a.png and a.png are one file; a Windows-made table may use backslashes
    files = [PurePosixPath(f.strip().replace("\\", "/")).as_posix() for f in column]
    missing = [f for f in dict.fromkeys(files) if not (root / f).is_file()]
    if missing:
        raise UserError(
            f"{LABELS} names {len(missing)} files that do not exist in {root} "
            f"(the first: {missing[0]}); paths are relative to {root}"
        )
    return files


def read_labels(root: Path, target: str | Sequence[str] | None) -> Listing:
    """labels.csv: a `file` column (paths relative to `root`), perhaps a `split` column, and
    the target columns (those `target` names, else all the others)."""
    data = (root / LABELS).read_bytes()
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype={FILE_COLUMN: str, SPLIT_COLUMN: str})
    except (ValueError, OSError) as e:
        raise UserError(f"{root / LABELS} cannot be read as CSV: {first_line(e)}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if FILE_COLUMN not in frame.columns:
        raise UserError(
            f"{LABELS} has no {FILE_COLUMN!r} column (columns: {', '.join(frame.columns)}): "
            f"it names each image, relative to {root}"
        )
    if frame.empty:
        raise UserError(f"{root / LABELS} has no rows")
    files = _files_of(frame[FILE_COLUMN], root)
    split = split_of(frame[SPLIT_COLUMN], LABELS) if SPLIT_COLUMN in frame.columns else None
    columns = choose_columns(
        frame.columns, target, where=LABELS, exclude=(FILE_COLUMN, SPLIT_COLUMN)
    )
    return Listing(files, split, table=frame[columns], table_bytes=data)
