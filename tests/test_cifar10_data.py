"""Tests for hpo.tasks.cifar10.download on a tiny data set written in the exact official format."""

from __future__ import annotations

import hashlib
import io
import pickle
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from hpo.tasks.cifar10 import download as cd
from hpo.tasks.cifar10.download import ARCHIVE, default_data_dir, ensure_cifar10
from hpo.tasks.cifar10.files import FOLDER, DataError, label_names, load_cifar10, split_indices
from hpo.util.errors import UserError

ROWS = 20  # per batch; the real files have 10,000
# Published with the release (https://www.cs.toronto.edu/~kriz/cifar.html) and checked by
# torchvision's CIFAR10 (tgz_md5, train_list, test_list, meta): written out here, not read from
# the code, so a typo in the code cannot agree with itself.
PUBLISHED_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
PUBLISHED_FILE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
NOT_OFFICIAL = "is not the official CIFAR-10 release"
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BATCHES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]


@dataclass
class Tiny:
    """A tiny CIFAR-10: the extracted folder, its tarball and md5, and the raw rows."""

    folder: Path
    tarball: Path
    md5: str
    data: dict[str, np.ndarray]  # batch name -> (ROWS, 3072) uint8
    labels: dict[str, list[int]]


def write_batches(folder: Path, rng: np.random.Generator) -> tuple[dict, dict]:
    """The official layout: Python-2-style dicts with bytes keys, pickled at protocol 2."""
    folder.mkdir(parents=True)
    data, labels = {}, {}
    for b, name in enumerate(BATCHES):
        data[name] = rng.integers(0, 256, (ROWS, 3072), dtype=np.uint8)
        labels[name] = [int(v) for v in rng.integers(0, 10, ROWS)]
        batch_label = "testing batch 1 of 1" if name == "test_batch" else f"training batch {b + 1}"
        obj = {
            b"batch_label": batch_label.encode(),
            b"labels": labels[name],
            b"data": data[name],
            b"filenames": [f"img_{b}_{i}.png".encode() for i in range(ROWS)],
        }
        (folder / name).write_bytes(pickle.dumps(obj, protocol=2))
    meta = {
        b"num_cases_per_batch": ROWS,
        b"label_names": [n.encode() for n in NAMES],
        b"num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return data, labels


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    root = tmp_path_factory.mktemp("cifar_src")
    folder = root / FOLDER
    data, labels = write_batches(folder, np.random.default_rng(0))
    tarball = root / "archive" / ARCHIVE
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname=FOLDER)
    return Tiny(folder, tarball, md5_of(tarball), data, labels)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def assert_matches(tiny: Tiny, loaded: tuple[np.ndarray, ...]) -> None:
    train_x, train_y, test_x, test_y = loaded
    assert train_x.shape == (5 * ROWS, 3, 32, 32) and train_x.dtype == np.uint8
    assert test_x.shape == (ROWS, 3, 32, 32) and test_x.dtype == np.uint8
    assert train_y.shape == (5 * ROWS,) and train_y.dtype == np.int64
    assert test_y.shape == (ROWS,) and test_y.dtype == np.int64
    raw_train = np.concatenate([tiny.data[f"data_batch_{i}"] for i in range(1, 6)])
    for i, c, h, w in [(0, 0, 0, 0), (7, 1, 5, 31), (5 * ROWS - 1, 2, 31, 0), (33, 2, 17, 9)]:
        assert train_x[i, c, h, w] == raw_train[i, c * 1024 + h * 32 + w]
    i, c, h, w = ROWS - 1, 1, 30, 2
    assert test_x[i, c, h, w] == tiny.data["test_batch"][i, c * 1024 + h * 32 + w]
    np.testing.assert_array_equal(train_x.reshape(len(train_x), -1), raw_train)
    expected_y = sum((tiny.labels[f"data_batch_{i}"] for i in range(1, 6)), [])
    np.testing.assert_array_equal(train_y, expected_y)
    np.testing.assert_array_equal(test_y, tiny.labels["test_batch"])


# --- loading ----------------------------------------------------------------------------------


def test_load_from_extracted_folder(tiny: Tiny, tmp_path: Path, no_network: None) -> None:
    shutil.copytree(tiny.folder, tmp_path / FOLDER)
    folder = ensure_cifar10(tmp_path, md5="0" * 32)  # a complete folder is not checked or fetched
    assert folder == tmp_path / FOLDER
    assert_matches(tiny, load_cifar10(folder))
    assert label_names(folder) == NAMES


def test_load_from_tarball_only(tiny: Tiny, tmp_path: Path, no_network: None) -> None:
    shutil.copy(tiny.tarball, tmp_path / ARCHIVE)
    messages: list[str] = []
    folder = ensure_cifar10(tmp_path, md5=tiny.md5, progress=messages.append)
    assert folder == tmp_path / FOLDER
    assert sorted(p.name for p in folder.iterdir()) == sorted([*BATCHES, "batches.meta"])
    assert_matches(tiny, load_cifar10(folder))
    assert any("extracting" in m for m in messages)
    assert len([m for m in messages if NOT_OFFICIAL in m]) == 1  # checked after extracting too
    # Only the archive and the folder remain: no temp directories left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ARCHIVE, FOLDER])
    # A second call uses the folder as is.
    assert ensure_cifar10(tmp_path, md5=tiny.md5, download=False) == folder


def test_incomplete_folder_is_replaced_from_tarball(tiny: Tiny, tmp_path: Path) -> None:
    shutil.copytree(tiny.folder, tmp_path / FOLDER)
    (tmp_path / FOLDER / "data_batch_3").unlink()
    shutil.copy(tiny.tarball, tmp_path / ARCHIVE)
    folder = ensure_cifar10(tmp_path, md5=tiny.md5, download=False)
    assert_matches(tiny, load_cifar10(folder))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ARCHIVE, FOLDER])


def test_download_from_file_url(tiny: Tiny, tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"  # created on demand
    messages: list[str] = []
    folder = ensure_cifar10(
        data_dir, url=tiny.tarball.as_uri(), md5=tiny.md5, progress=messages.append
    )
    assert_matches(tiny, load_cifar10(folder))
    assert any("100%" in m for m in messages)
    assert not (data_dir / f"{ARCHIVE}.part").exists()
    assert md5_of(data_dir / ARCHIVE) == tiny.md5
    assert all("\n" not in m for m in messages)


def test_download_md5_mismatch_leaves_nothing(tiny: Tiny, tmp_path: Path) -> None:
    url = tiny.tarball.as_uri()
    with pytest.raises(DataError) as info:
        ensure_cifar10(tmp_path, url=url, md5="0" * 32)
    message = str(info.value)
    assert url in message and tiny.md5 in message and "0" * 32 in message
    assert ARCHIVE in message and str(tmp_path) in message
    assert "\n" not in message
    assert not (tmp_path / f"{ARCHIVE}.part").exists()
    assert not (tmp_path / ARCHIVE).exists()
    assert not (tmp_path / FOLDER).exists()


def test_download_network_error_says_how_to_work_offline(tmp_path: Path) -> None:
    url = (tmp_path / "nowhere" / ARCHIVE).as_uri()
    with pytest.raises(DataError) as info:
        ensure_cifar10(tmp_path, url=url)
    message = str(info.value)
    assert message.startswith(f"could not download {url} (")
    assert f"put {ARCHIVE} (md5 {PUBLISHED_ARCHIVE_MD5}" in message and str(tmp_path) in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_removes_part_file(tiny: Tiny, tmp_path: Path) -> None:
    def interrupt(message: str) -> None:
        if "%" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_cifar10(tmp_path, url=tiny.tarball.as_uri(), md5=tiny.md5, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_tarball_in_dir_is_named(tmp_path: Path, no_network: None) -> None:
    archive = tmp_path / ARCHIVE
    archive.write_bytes(b"not a tarball at all")
    with pytest.raises(DataError) as info:  # wrong md5: never opened
        ensure_cifar10(tmp_path)
    message = str(info.value)
    assert str(archive) in message and PUBLISHED_ARCHIVE_MD5 in message
    assert md5_of(archive) in message
    assert archive.exists()  # the user's file is reported, not deleted
    with pytest.raises(DataError, match=ARCHIVE):  # right md5 but unreadable
        ensure_cifar10(tmp_path, md5=md5_of(archive))
    assert not (tmp_path / FOLDER).exists()


def test_download_off_and_nothing_present(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        ensure_cifar10(tmp_path / "empty", download=False)
    message = str(info.value)
    assert ARCHIVE in message and cd.URL in message and str(tmp_path / "empty") in message
    assert "\n" not in message
    assert isinstance(info.value, UserError)  # the CLI prints it as one line, exit code 2


def test_truncated_batch_is_named(tiny: Tiny, tmp_path: Path) -> None:
    folder = tmp_path / FOLDER
    shutil.copytree(tiny.folder, folder)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar10(folder)


@pytest.mark.parametrize(
    "obj",
    [
        {b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]},  # wrong width
        {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1]},  # too few labels
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]},  # label out of range
        {b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]},  # not uint8
        [1, 2, 3],  # not a dict
    ],
)
def test_malformed_batch_is_named(tiny: Tiny, tmp_path: Path, obj: object) -> None:
    folder = tmp_path / FOLDER
    shutil.copytree(tiny.folder, folder)
    (folder / "test_batch").write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10(folder)


def test_missing_batch_is_named(tiny: Tiny, tmp_path: Path) -> None:
    folder = tmp_path / FOLDER
    shutil.copytree(tiny.folder, folder)
    (folder / "data_batch_5").unlink()
    with pytest.raises(DataError, match="data_batch_5"):
        load_cifar10(folder)


def test_pickle_that_imports_code_is_refused(tiny: Tiny, tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    folder = tmp_path / FOLDER
    shutil.copytree(tiny.folder, folder)
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match="data_batch_1"):
        load_cifar10(folder)


# --- the published checksums -----------------------------------------------------------------


def test_checksums_are_the_published_ones() -> None:
    assert cd.MD5 == PUBLISHED_ARCHIVE_MD5
    assert cd.FILE_MD5 == PUBLISHED_FILE_MD5
    assert set(cd.FILE_MD5) == set(cd.FILES)  # every file of the folder is checked


def test_default_archive_md5_is_the_published_one(tiny: Tiny, tmp_path: Path) -> None:
    shutil.copy(tiny.tarball, tmp_path / ARCHIVE)
    with pytest.raises(DataError, match=f"expected {PUBLISHED_ARCHIVE_MD5}"):
        ensure_cifar10(tmp_path, download=False)  # no md5 given: the published one is expected


def tiny_md5s(folder: Path) -> dict[str, str]:
    return {name: md5_of(folder / name) for name in cd.FILES}


def test_unofficial_folder_is_used_with_one_notice(
    tiny: Tiny, tmp_path: Path, no_network: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(tiny.folder, tmp_path / FOLDER)
    hashed: list[str] = []
    real_md5 = cd._md5_of

    def spy(path: Path) -> str:
        hashed.append(path.name)
        return real_md5(path)

    monkeypatch.setattr(cd, "_md5_of", spy)
    messages: list[str] = []
    folder = ensure_cifar10(tmp_path, download=False, progress=messages.append)
    assert folder == tmp_path / FOLDER
    assert len(messages) == 1 and "\n" not in messages[0]
    assert NOT_OFFICIAL in messages[0] and str(folder) in messages[0]
    assert "not comparable with published" in messages[0]
    assert all(name in messages[0] for name in cd.FILES)  # none of the tiny files matches
    assert_matches(tiny, load_cifar10(folder))  # still used
    assert sorted(hashed) == sorted(cd.FILES)
    # Judged once per process: a second load neither hashes again nor repeats the notice.
    assert ensure_cifar10(tmp_path, download=False, progress=messages.append) == folder
    assert len(messages) == 1 and len(hashed) == len(cd.FILES)


def test_notice_names_only_the_files_that_differ(
    tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(tiny.folder, tmp_path / FOLDER)
    table = tiny_md5s(tmp_path / FOLDER)
    monkeypatch.setattr(
        cd, "FILE_MD5", {**table, "data_batch_3": PUBLISHED_FILE_MD5["data_batch_3"]}
    )
    messages: list[str] = []
    ensure_cifar10(tmp_path, download=False, progress=messages.append)
    assert len(messages) == 1 and NOT_OFFICIAL in messages[0]
    assert "(data_batch_3 differs from the published md5)" in messages[0]
    assert not any(name in messages[0] for name in cd.FILES if name != "data_batch_3")


def test_official_folder_gives_no_notice(
    tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    shutil.copytree(tiny.folder, tmp_path / FOLDER)
    # The tiny files stand in for the release: the published table becomes theirs.
    monkeypatch.setattr(cd, "FILE_MD5", tiny_md5s(tmp_path / FOLDER))
    messages: list[str] = []
    folder = ensure_cifar10(tmp_path, download=False, progress=messages.append)
    assert messages == []
    assert_matches(tiny, load_cifar10(folder))
    ensure_cifar10(tmp_path, download=False)  # no progress callback: stderr stays quiet too
    assert capsys.readouterr().err == ""


def test_notice_goes_to_stderr_without_a_progress_callback(
    tiny: Tiny, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    shutil.copytree(tiny.folder, tmp_path / FOLDER)
    ensure_cifar10(tmp_path, download=False)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and NOT_OFFICIAL in err[0]


def test_changed_file_is_judged_again(
    tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / FOLDER
    shutil.copytree(tiny.folder, folder)
    monkeypatch.setattr(cd, "FILE_MD5", tiny_md5s(folder))
    messages: list[str] = []
    ensure_cifar10(tmp_path, download=False, progress=messages.append)
    assert messages == []
    # Replaced in place (new size and mtime): the cached verdict no longer applies.
    other = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=2)
    (folder / "test_batch").write_bytes(other)
    ensure_cifar10(tmp_path, download=False, progress=messages.append)
    assert len(messages) == 1 and "(test_batch differs" in messages[0]


# --- unsafe archives --------------------------------------------------------------------------


def unsafe_tarball(tmp_path: Path, tiny: Tiny, name: str, kind: bytes = tarfile.REGTYPE) -> str:
    """The tiny archive plus one extra member called `name`; returns the archive's md5."""
    archive = tmp_path / ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny.folder, arcname=FOLDER)
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return md5_of(archive)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("../evil", tarfile.REGTYPE),
        (f"{FOLDER}/../../evil", tarfile.REGTYPE),
        ("/tmp/hpo-test-evil", tarfile.REGTYPE),
        (f"{FOLDER}/link", tarfile.SYMTYPE),
    ],
)
def test_unsafe_tar_member_is_rejected(tiny: Tiny, tmp_path: Path, name: str, kind: bytes) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    md5 = unsafe_tarball(data_dir, tiny, name, kind)
    with pytest.raises(DataError, match="unsafe"):
        ensure_cifar10(data_dir, md5=md5, download=False)
    assert not (tmp_path / "evil").exists() and not Path("/tmp/hpo-test-evil").exists()
    assert sorted(p.name for p in data_dir.iterdir()) == [ARCHIVE]  # no half folder, no temp


# --- paths and splits -------------------------------------------------------------------------


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HPO_DATA_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "explicit"
    monkeypatch.delenv("HPO_DATA_DIR")
    assert default_data_dir() == tmp_path / "xdg" / "hpo" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "hpo" / "data"


def test_split_indices() -> None:
    train, val = split_indices(50_000, 0.1, seed=0)
    assert len(train) == 45_000 and len(val) == 5_000
    assert train.dtype == np.int64 and val.dtype == np.int64
    assert len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(50_000))
    again = split_indices(50_000, 0.1, seed=0)
    np.testing.assert_array_equal(again[0], train)
    np.testing.assert_array_equal(again[1], val)
    other = split_indices(50_000, 0.1, seed=1)
    assert not np.array_equal(other[1], val)


def test_split_indices_edges() -> None:
    train, val = split_indices(10, 0.0)
    assert len(val) == 0 and len(train) == 10
    with pytest.raises(ValueError):
        split_indices(10, 1.0)
    with pytest.raises(ValueError):
        split_indices(-1)
