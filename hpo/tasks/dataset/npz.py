"""Reading NumPy arrays (.npz): x and y, and the user's own x_val/y_val, x_test/y_test. uint8 x
are images (brought to (N, 3, S, S) like image files); a 2-D x of numbers is features."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from hpo.tasks.dataset.cache import digest_file
from hpo.tasks.dataset.found import Found
from hpo.tasks.dataset.images import choose_size, resize_array
from hpo.tasks.dataset.tables import fill_missing
from hpo.tasks.dataset.targets import check_classes, from_array
from hpo.util.errors import UserError, first_line

PARTS = (("train", ""), ("val", "_val"), ("test", "_test"))
CHANNELS = (1, 3, 4)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array in the file. Never unpickled: a file that needs it is a UserError."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{path.name} cannot be read as .npz: {first_line(e)}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UserError(f"{path.name} holds one array (an .npy), not the arrays x and y")
    try:
        with data:
            return {name: data[name] for name in data.files}
    except ValueError:  # object arrays: loading them would run pickled code
        raise UserError(
            f"{path.name} holds Python objects (pickled arrays), which hpo does not load: "
            f"save x and y as plain NumPy arrays (strings as a str array)"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{path.name} cannot be read as .npz: {first_line(e)}") from None


def _joined(arrays: dict[str, np.ndarray], where: str) -> tuple[np.ndarray, np.ndarray, list]:
    """x and y of every part one after another, and the part of each row (train/val/test)."""
    if "x" not in arrays or "y" not in arrays:
        has = ", ".join(arrays) or "nothing"
        raise UserError(f"{where} needs arrays named x and y (it has: {has})")
    xs, ys, split = [], [], []
    for part, suffix in PARTS:
        x, y = arrays.get(f"x{suffix}"), arrays.get(f"y{suffix}")
        if x is None and y is None:
            continue
        if x is None or y is None:
            have, lack = ("x", "y") if y is None else ("y", "x")
            have, lack = have + suffix, lack + suffix
            raise UserError(f"{where} has {have} but no {lack}: give both or neither")
        if len(x) != len(y):
            raise UserError(
                f"{where}: x{suffix} has {len(x)} rows but y{suffix} has {len(y)}; they must match"
            )
        if xs and (x.shape[1:] != xs[0].shape[1:] or x.dtype.kind != xs[0].dtype.kind):
            raise UserError(
                f"{where}: x{suffix} is {x.dtype} {x.shape[1:]} per row but x is "
                f"{xs[0].dtype} {xs[0].shape[1:]}; they must match"
            )
        xs.append(x)
        ys.append(y)
        split += [part] * len(x)
    if not split:
        raise UserError(f"{where}: x and y have no rows")
    return np.concatenate(xs), np.concatenate(ys), split


def as_images(x: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """uint8 (N,H,W), (N,H,W,C) or (N,C,H,W) as (N, 3, H, W), and notes of what was assumed."""
    if x.ndim == 3:
        x, notes = x[:, None], ["x read as N,H,W grayscale images"]
    elif x.shape[3] in CHANNELS and x.shape[1] not in CHANNELS:
        x, notes = x.transpose(0, 3, 1, 2), ["x read as N,H,W,C"]
    else:
        notes = ["x read as N,C,H,W"]
    channels = x.shape[1]
    if channels not in CHANNELS:
        raise UserError(
            f"x of {where} has shape {x.shape} as N,C,H,W: images need 1, 3 or 4 channels"
        )
    if channels == 1:
        x = np.repeat(x, 3, axis=1)
        notes.append("1 channel repeated to RGB")
    elif channels == 4:
        x = x[:, :3]
        notes.append("alpha channel dropped")
    return np.ascontiguousarray(x), notes


def as_features(x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A 2-D x of numbers as float32, NaN and inf filled with each column's median."""
    x = x.astype(np.float32)
    if np.isfinite(x).all():
        return x, []
    filled = 0
    for j in range(x.shape[1]):
        column, n = fill_missing(x[:, j])
        x[:, j], filled = column, filled + n
    return x, [f"filled {filled} NaN or inf in x with each column's median"]


def _sized(x: np.ndarray, image_size: int | None, max_image_size: int | None) -> tuple:
    h, w = x.shape[2:]
    size, note = choose_size([(w, h)], image_size, max_image_size)
    if note is None:
        return x, size, []
    return resize_array(x, size), size, [note]


def read_npz(
    path: Path, *, kind: str | None, image_size: int | None, max_image_size: int | None
) -> Found:
    """An .npz file's x and y (and x_val/y_val, x_test/y_test: the user's own split)."""
    where = path.name
    x, y, split = _joined(load_arrays(path), where)
    if x.dtype == np.uint8 and x.ndim in (3, 4):
        x, notes = as_images(x, where)
        x, size, more = _sized(x, image_size, max_image_size)
        notes += more
    elif x.ndim == 2 and x.dtype.kind in "biuf":
        (x, notes), size = as_features(x), None
    else:
        raise UserError(
            f"x of {where} is {x.dtype} of shape {x.shape}: hpo reads uint8 images "
            f"(N,H,W / N,H,W,C / N,C,H,W) or 2-D features (N, F)"
        )
    targets = from_array(y, kind, where)
    if targets.kind == "classification":
        check_classes(targets.y, targets.classes, where)
    return Found(
        path=path,
        format="npz",
        kind=targets.kind,
        x=x,
        y=targets.y,
        split=np.array(split, "<U5") if set(split) != {"train"} else None,
        classes=targets.classes,
        targets=targets.names,
        digest=digest_file(path),
        notes=tuple(notes) + targets.notes,
        image_size=size,
    )
