"""The CIFAR-10 files: download, verify, extract, load and split the official python version.

The data lives in one directory (`default_data_dir()` unless given). What is already there is
used before anything is fetched: the extracted `cifar-10-batches-py/` folder, then the
`cifar-10-python.tar.gz` archive, and only then the network. Every failure is a `DataError` whose
message says what went wrong and which file to put where to work offline.

A folder whose files are not byte for byte the published release (such as the JPEG-decoded copy
in ../shared/cifar10) is still used, but with a one-line notice: accuracies measured on it cannot
be compared with published CIFAR-10 figures.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from hpo.tasks.cifar10.files import (
    FILES,
    FOLDER,
    DataError,
    reason_of,
)

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# The checksum published on https://www.cs.toronto.edu/~kriz/cifar.html.
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"

# The md5 of each file in the official archive, as torchvision's CIFAR10 checks them
# (train_list, test_list, meta): a folder that differs is not the published data.
FILE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
_CHUNK = 1 << 20
_TIMEOUT_S = 30  # per socket operation, not the whole download: offline fails fast
# Folder verdicts of this process, keyed by the folder, each file's (size, mtime) and the md5
# table: hashing the 180 MB takes about half a second, so it happens (and is reported) once per
# process.
_VERDICTS: dict[tuple[Any, ...], tuple[str, ...]] = {}


def default_data_dir() -> Path:
    """`$HPO_DATA_DIR`, else `$XDG_CACHE_HOME/hpo/data`, else `~/.cache/hpo/data`."""
    if explicit := os.environ.get("HPO_DATA_DIR"):
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "hpo" / "data"


def ensure_cifar10(
    data_dir: Path | str,
    *,
    download: bool = True,
    url: str = URL,
    md5: str = MD5,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The extracted `cifar-10-batches-py` directory in `data_dir`, fetching what is missing.

    Uses a complete extracted folder as is; else verifies and extracts `cifar-10-python.tar.gz`;
    else (if `download`) fetches `url`, checks its md5 and extracts it. Either way the folder's
    files are compared with the published per-file md5s (`FILE_MD5`); a folder that differs is
    still returned, after one notice through `progress` (stderr without it).
    """
    data_dir = Path(data_dir).expanduser()
    folder = data_dir / FOLDER
    if not _missing(folder):
        _check_release(folder, progress)
        return folder
    archive = data_dir / ARCHIVE
    if archive.is_file():
        _verify_md5(archive, md5)
        return _check_release(_extract(archive, data_dir, progress), progress)
    if not download:
        raise DataError(
            f"CIFAR-10 is not in {data_dir}{_incomplete_note(folder)} and downloading is off; "
            f"{_offline_hint(data_dir, url, md5)}"
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data directory {data_dir}: {reason_of(e)}") from None
    _download(url, archive, md5, data_dir, progress)
    return _check_release(_extract(archive, data_dir, progress), progress)


# --- finding and fetching ---------------------------------------------------------------------


def _missing(folder: Path) -> list[str]:
    """The expected files that `folder` lacks (all of them if it does not exist)."""
    return [name for name in FILES if not (folder / name).is_file()]


def _incomplete_note(folder: Path) -> str:
    if not folder.is_dir():
        return ""
    return f" ({folder} lacks {', '.join(_missing(folder))})"


def _offline_hint(data_dir: Path, url: str, md5: str) -> str:
    return f"put {ARCHIVE} (md5 {md5}, from {url}) or its extracted {FOLDER}/ into {data_dir}"


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_md5(archive: Path, md5: str) -> None:
    try:
        actual = _md5_of(archive)
    except OSError as e:
        raise DataError(f"cannot read {archive}: {reason_of(e)}") from None
    if actual != md5.lower():
        # Not deleted: it is the user's file, and they may want to look at it.
        raise DataError(
            f"{archive} is corrupt: md5 {actual}, expected {md5}; delete or replace it"
        )


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _check_release(folder: Path, progress: Callable[[str], None] | None) -> Path:
    """`folder`, after saying once per process if its files are not the published release.

    Only hashes bytes: nothing is unpickled here, so test_batch is never loaded on the way to
    the training split.
    """
    stamps = []
    for name in FILES:
        try:
            stat = (folder / name).stat()
        except OSError as e:
            raise DataError(f"cannot read {folder / name}: {reason_of(e)}") from None
        stamps.append((name, stat.st_size, stat.st_mtime_ns))
    key = (str(folder.resolve()), tuple(stamps), tuple(sorted(FILE_MD5.items())))
    if key in _VERDICTS:
        return folder  # judged, and if need be reported, earlier in this process
    differ = []
    for name in FILES:
        try:
            if _md5_of(folder / name) != FILE_MD5[name]:
                differ.append(name)
        except OSError as e:
            raise DataError(f"cannot read {folder / name}: {reason_of(e)}") from None
    _VERDICTS[key] = tuple(differ)
    if differ:
        # Used all the same (e.g. the JPEG-decoded copy made where the archive cannot be
        # fetched), but never silently: its accuracies read a few points off the real data's.
        (progress or _stderr)(
            f"note: {folder} is not the official CIFAR-10 release ({', '.join(differ)} "
            f"{'differs' if len(differ) == 1 else 'differ'} from the published md5); it is used "
            "as is, but accuracies on it are not comparable with published CIFAR-10 figures"
        )
    return folder


def _progress_line(done: int, total: int) -> str:
    if total:
        return f"{ARCHIVE}: {done * 100 // total}% ({done / 1e6:.1f} of {total / 1e6:.1f} MB)"
    return f"{ARCHIVE}: {done / 1e6:.1f} MB"


def _download(
    url: str,
    archive: Path,
    md5: str,
    data_dir: Path,
    progress: Callable[[str], None] | None,
) -> None:
    """Fetch `url` to `archive` via a .part file that only becomes `archive` once verified."""
    part = archive.with_name(archive.name + ".part")
    report = progress or (lambda _message: None)
    try:
        report(f"downloading {url} to {archive}")
        digest = hashlib.md5(usedforsecurity=False)
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, part.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            # Report every 5 % of the size, or every 10 MB when the server does not say it.
            step = total / 20 if total else 10e6
            done, next_report = 0, step
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if done >= next_report:
                    report(_progress_line(done, total))
                    next_report = (done // step + 1) * step
        if total and done != total:
            raise OSError(f"got {done} of {total} bytes")
        actual = digest.hexdigest()
        if actual != md5.lower():
            raise OSError(f"md5 {actual}, expected {md5}")
        os.replace(part, archive)
    except Exception as e:
        part.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url} ({reason_of(e)}); {_offline_hint(data_dir, url, md5)}"
        ) from None
    except BaseException:
        # Ctrl-C and friends: no half file left behind, and the interrupt goes on as it was.
        part.unlink(missing_ok=True)
        raise


# --- extracting -------------------------------------------------------------------------------


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse members that could write outside the target: absolute, `..`, links, devices."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or member.name.startswith(("/", "\\")):
        raise DataError(f"{archive} is unsafe: member {member.name!r} points outside the folder")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{archive} is unsafe: member {member.name!r} is not a plain file")


def _extract(archive: Path, data_dir: Path, progress: Callable[[str], None] | None) -> Path:
    """Extract `archive` beside itself and move `cifar-10-batches-py/` into place atomically."""
    if progress:
        progress(f"extracting {archive}")
    folder = data_dir / FOLDER
    try:
        # Extracting in data_dir (not /tmp) keeps the final rename on one file system: atomic,
        # so a crash leaves a hidden temp directory, never a half folder that looks valid.
        tmp = Path(tempfile.mkdtemp(prefix=".cifar10-extract-", dir=data_dir))
    except OSError as e:
        raise DataError(f"cannot extract into {data_dir}: {reason_of(e)}") from None
    try:
        # The "data" filter (Python >= 3.11.4) is a second line of defence after our checks.
        kwargs: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # one pass: the archive is decompressed once
                _check_member(member, archive)
                tar.extract(member, tmp, **kwargs)
        extracted = tmp / FOLDER
        if missing := _missing(extracted):
            raise DataError(f"{archive} lacks {FOLDER}/{missing[0]}; delete or replace it")
        _move_into_place(extracted, folder)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise DataError(
            f"{archive} is not a readable .tar.gz ({reason_of(e)}); delete or replace it"
        ) from None
    except OSError as e:
        raise DataError(f"cannot extract {archive} into {data_dir}: {reason_of(e)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _move_into_place(extracted: Path, folder: Path) -> None:
    """Rename `extracted` to `folder`, replacing an incomplete `folder` left by someone else."""
    if folder.exists():
        if not _missing(folder):
            return  # another worker finished the same extraction meanwhile: keep theirs
        # An incomplete folder: move it aside first, since rename() cannot replace a non-empty
        # directory.
        trash = Path(tempfile.mkdtemp(prefix=".cifar10-old-", dir=folder.parent))
        try:
            os.replace(folder, trash / FOLDER)
        except FileNotFoundError:
            pass  # another process moved it first
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(extracted, folder)
    except OSError:
        if _missing(folder):
            raise
        # Another worker extracted the same archive at the same time and won: use theirs.
