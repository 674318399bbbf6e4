"""Decoding a user's image files with Pillow into uint8 (N, 3, S, S): each image's size read from
its header first, the one size they are brought to, every mode converted to RGB (and counted),
the work spread over the cores when there is enough of it to pay for the worker processes."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hpo.util.errors import UserError, first_line

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# Below this many files one process decodes them all: starting workers and shipping the arrays
# back costs more than a second core gains on small images (measured on 2 cores, 32x32 PNGs:
# see the report of the commit that added this module).
POOL_FROM = 800
CHUNKS_PER_WORKER = 4  # a few chunks each, so that one slow chunk does not leave a core idle
GRAY = ("1", "L", "I", "F")
MEMORY_SHARE = 0.5  # of the memory available, the most a data set's decoded images may take


@dataclass
class Decoded:
    """What decoding a list of files gave: the images of those it could read."""

    x: np.ndarray  # uint8 (n, 3, S, S): the readable files, in the order given
    kept: np.ndarray  # int64 (n,): the index of each in the list of files given
    bad: list[tuple[str, str]]  # (relative path, why) of each unreadable file
    notes: list[str]  # the conversions counted, the size chosen
    size: int  # S


def kind_of(mode: str) -> str | None:
    """The kind of conversion a Pillow mode needs to become RGB, as a note counts it."""
    if mode == "RGB":
        return None
    if mode in GRAY or mode.startswith("I;"):
        return "grayscale"
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        return "RGBA"
    return {"P": "palette"}.get(mode, mode)  # CMYK, YCbCr, LAB, HSV by their own name


def to_rgb(img: Image.Image) -> Image.Image:
    """`img` as an RGB image. Alpha is dropped (the colour under it kept); 16-bit and float
    grayscale are scaled to 0..255 first, which Pillow's own convert would clip instead."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "F") or mode.startswith("I;"):
        a = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and a.max(initial=0) > 255):
            a = a / 257.0  # 16-bit range
        elif mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0  # a float image in 0..1
        gray = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # Pillow warns when a palette's transparency goes straight
    return img.convert("RGB")


def _why(error: BaseException) -> str:
    return first_line(error, 120) or type(error).__name__


def _headers(paths: Sequence[str]) -> list[tuple[int, int, str] | str]:
    """(width, height, mode) of each file from its header (nothing is decoded), or why not."""
    out: list[tuple[int, int, str] | str] = []
    for path in paths:
        try:
            with Image.open(path) as img:
                out.append((*img.size, img.mode))
        except Exception as e:  # noqa: BLE001 - whatever a broken file raises, it is the file's
            out.append(_why(e))
    return out


def _decode_one(path: str, size: int) -> np.ndarray:
    with Image.open(path) as img:
        if img.size != (size, size) and max(img.size) > 2 * size:
            img.draft("RGB", (size, size))  # JPEG only: decode at 1/2..1/8 scale, far faster
        rgb = to_rgb(img)
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BILINEAR)
        return np.asarray(rgb).transpose(2, 0, 1)


def _decode(paths: Sequence[str], size: int) -> tuple[np.ndarray, list[str | None]]:
    """One chunk's images as uint8 (n, 3, size, size), and why each unreadable one was not."""
    out = np.zeros((len(paths), 3, size, size), np.uint8)
    errors: list[str | None] = [None] * len(paths)
    for i, path in enumerate(paths):
        try:
            out[i] = _decode_one(path, size)
        except Exception as e:  # noqa: BLE001 - truncated data, a decoder's own errors, bombs
            errors[i] = _why(e)
    return out, errors


def workers() -> int:
    """The cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def start_pool(n_files: int, processes: int) -> Executor | None:
    """Worker processes for `n_files` files, or None: decode here. Forked (Linux), because a
    spawned worker would import hpo.tasks, and with it torch (~2 s), before its first file."""
    if n_files < POOL_FROM or processes < 2 or not sys.platform.startswith("linux"):
        return None
    Image.init()  # the format plugins, imported once here rather than in every worker
    context = multiprocessing.get_context("fork")
    return ProcessPoolExecutor(processes, mp_context=context)


def _map(pool: Executor | None, n_workers: int, fn: Callable[..., Any], items: list[str],
         *args: Any) -> Iterator:  # fmt: skip
    """fn over chunks of `items` (here, or on the workers): the chunks' results in order."""
    if pool is None:
        return iter([fn(items, *args)])
    n = max(1, -(-len(items) // (n_workers * CHUNKS_PER_WORKER)))
    chunks = [items[i : i + n] for i in range(0, len(items), n)]
    return pool.map(fn, chunks, *(repeat(a) for a in args))


def _decode_all(pool: Executor | None, n_workers: int, paths: list[str], size: int) -> tuple:
    """(uint8 (n, 3, size, size), why each unreadable file was not read, else None)."""
    if pool is None:
        return _decode(paths, size)
    x = np.empty((len(paths), 3, size, size), np.uint8)  # filled chunk by chunk: no concatenate
    errors: list[str | None] = []
    for part, why in _map(pool, n_workers, _decode, paths, size):
        x[len(errors) : len(errors) + len(part)] = part
        errors += why
    return x, errors


def choose_size(
    sizes: Sequence[tuple[int, int]], image_size: int | None, max_image_size: int | None
) -> tuple[int, str | None]:
    """The side every image is brought to, and a note saying why (None: kept as they are)."""
    distinct = sorted(set(sizes), key=lambda s: (s[0] * s[1], s))
    text = "x".join(map(str, distinct[0])) + (
        ".." + "x".join(map(str, distinct[-1])) if len(distinct) > 1 else ""
    )
    what = f"mixed sizes {text}" if len(distinct) > 1 else f"all {text}"
    if image_size is not None:
        if distinct == [(image_size, image_size)]:
            return image_size, None
        return image_size, f"{what}: resized to {image_size}x{image_size} (image_size)"
    side = int(np.median([max(s) for s in sizes]))
    if len(distinct) == 1 and distinct[0][0] == distinct[0][1]:
        if max_image_size is None or side <= max_image_size:
            return side, None
    why = "the median size" if len(distinct) > 1 else "square"
    if max_image_size is not None and side > max_image_size:
        side, why = max_image_size, f"{why} {side} capped at {max_image_size} on a CPU"
    note = f"{what}: resized to {side}x{side} ({why}; --data image_size=N sets it)"
    return side, note


def check_fits(n: int, size: int, available: int | None = None) -> None:
    """Refuse, in one line with the size that would fit, images whose uint8 array would take
    more than half the memory available now (`available`, bytes: default psutil's): the
    decoded array, its copy for the device and the training beside it must fit, and an OOM
    kill says nothing."""
    if available is None:
        import psutil

        available = psutil.virtual_memory().available
    need = n * 3 * size * size
    if need <= available * MEMORY_SHARE:
        return
    fits = int((available * MEMORY_SHARE / (3 * max(n, 1))) ** 0.5)
    raise UserError(
        f"{n:,} images of {size}x{size} take {need / 2**30:.1f} GiB as uint8, more than half "
        f"of the {available / 2**30:.1f} GiB of memory available: --data image_size={fits} "
        "would fit"
    )


def _bad_line(bad: list[tuple[str, str]], root: Path) -> str:
    first, why = bad[0]
    lead = f"{len(bad)} images in {root} cannot be read, the first" if len(bad) > 1 else "image"
    return f"{lead} {first} ({why}): replace or remove it, or pass --skip-bad to skip such files"


def _conversions(modes: Sequence[str]) -> str | None:
    counts = Counter(k for k in map(kind_of, modes) if k)
    if not counts:
        return None
    parts = [
        f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].lower()))
    ]
    noun = "image" if sum(counts.values()) == 1 else "images"
    return f"{', '.join(parts)} {noun} converted to RGB"


def decode_files(
    root: Path,
    files: Sequence[str],
    *,
    image_size: int | None,
    max_image_size: int | None,
    skip_bad: bool,
    processes: int | None = None,
) -> Decoded:
    """Decode `files` (paths relative to `root`). An unreadable one is a UserError naming it,
    or, with skip_bad, left out and listed in `bad`."""
    paths = [str(root / f) for f in files]
    processes = processes or workers()
    pool = start_pool(len(paths), processes)
    with pool or nullcontext():  # one pool for both passes: it starts once
        heads = [h for part in _map(pool, processes, _headers, paths) for h in part]
        bad = [(files[i], h) for i, h in enumerate(heads) if isinstance(h, str)]
        if bad and not skip_bad:
            raise UserError(_bad_line(bad, root))
        ok = [i for i, h in enumerate(heads) if not isinstance(h, str)]
        if not ok:
            raise UserError(f"none of the {len(files)} images in {root} can be read")
        size, size_note = choose_size([heads[i][:2] for i in ok], image_size, max_image_size)
        check_fits(len(ok), size)
        x, errors = _decode_all(pool, processes, [paths[i] for i in ok], size)
    failed = [(files[i], e) for i, e in zip(ok, errors, strict=True) if e is not None]
    if failed and not skip_bad:
        raise UserError(_bad_line(failed, root))
    good = np.array([e is None for e in errors], bool)
    kept = np.array(ok, np.int64)[good]
    bad += failed
    notes = [n for n in (_conversions([heads[i][2] for i in kept]), size_note) if n]
    if bad:
        notes.append(f"{len(bad)} unreadable image{'s' * (len(bad) > 1)} skipped (--skip-bad)")
    return Decoded(x[good] if not good.all() else x, kept, sorted(bad), notes, size)


def resize_array(x: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, 3, H, W) images resized to (N, 3, size, size), as files are."""
    out = np.empty((len(x), 3, size, size), np.uint8)
    for i, image in enumerate(x):
        rgb = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))
        out[i] = np.asarray(rgb.resize((size, size), Image.BILINEAR)).transpose(2, 0, 1)
    return out
