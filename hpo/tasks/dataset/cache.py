"""What a data set's content is (its sha256 digest) and the decoded images kept under that
digest in the cache, so that reading the same images again, from any process, is a load."""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
from filelock import FileLock

from hpo.tasks.dataset.images import Decoded
from hpo.util.paths import cache_dir

# Part of every key: a change to how images are decoded (resampling, conversions) bumps it, so
# that no older cache entry is taken for the new way's result.
VERSION = 1


def digest_files(root: Path, files: Sequence[str], extra: bytes = b"") -> tuple[str, str]:
    """(the images' digest, the data set's digest): sha256 over each file's relative path and
    bytes, in sorted path order, then (the second) `extra`, the labels table's bytes. Paths
    relative to `root` make a copy of the data elsewhere digest the same."""
    h = hashlib.sha256()
    for rel in sorted(files):
        try:
            data = (root / rel).read_bytes()  # one read each: small files, hashed whole
        except OSError:  # no permission, say: decoding it names the file (or skips it)
            h.update(f"{rel}\0unreadable\0".encode())
            continue
        # the path and the length first, so that no two listings hash alike
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    images = h.hexdigest()
    h.update(extra)
    return images, h.hexdigest()


def digest_file(path: Path) -> str:
    """sha256 of one file's bytes (a table, an .npz)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def key_of(images_digest: str, **options: object) -> str:
    """The cache key of `images_digest` decoded under `options` (sizes, skip_bad)."""
    text = json.dumps([VERSION, images_digest, sorted(options.items())], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _load(path: Path) -> Decoded | None:
    """A cache entry, or None where it is missing or unreadable (then decoded again)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            x, kept = data["x"], data["kept"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    bad = [(str(f), str(why)) for f, why in meta["bad"]]
    return Decoded(x, kept, bad, list(meta["notes"]), int(meta["size"]))


def _store(path: Path, decoded: Decoded) -> None:
    """Write an entry whole or not at all: a temporary file, then an atomic rename. A cache
    that cannot be written costs the next read a decode, nothing more."""
    meta = {"bad": decoded.bad, "notes": decoded.notes, "size": decoded.size}
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, x=decoded.x, kept=decoded.kept, meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)
    except OSError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _lock(folder: Path, key: str) -> AbstractContextManager[object]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # no cache folder: decode without one
        return nullcontext()
    return FileLock(str(folder / f"{key}.lock"))


def decoded(key: str, decode: Callable[[], Decoded]) -> tuple[Decoded, dict[str, float]]:
    """The images cached under `key`, else `decode()`, stored there; and what it took
    ({"images": n, "seconds": s, "cached": 0 | 1}). A lock per key makes a second process
    wanting the same images wait for the first one's rather than decode them again."""
    start = time.perf_counter()
    folder = cache_dir() / "decoded"
    path = folder / f"{key}.npz"
    result = _load(path)
    cached = result is not None
    if result is None:
        with _lock(folder, key):
            result = _load(path)  # another process may have written it while this one waited
            cached = result is not None
            if result is None:
                result = decode()
                _store(path, result)
    seconds = round(time.perf_counter() - start, 3)
    return result, {"images": len(result.x), "seconds": seconds, "cached": int(cached)}
