"""The CIFAR-10 loader and task on the real 60,000 images (the offline copy in ../shared/cifar10).

`build.py` there writes the official python format from JPEG-compressed images in the official
order with the official labels: sizes, class counts, dtypes and label order can be checked against
the published release, and since its pixels are lossy, the loader must say it is not that release.
Runs by default (about 15 s, most of it build.py); skipped where the shared folder is absent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hpo.tasks.cifar10 import download as cd
from hpo.tasks.cifar10 import files as cf
from hpo.tasks.cifar10.download import ensure_cifar10
from hpo.tasks.cifar10.files import FOLDER, label_names, load_cifar10_split
from hpo.tasks.cifar10.task import TASK

SHARED = Path(__file__).resolve().parents[2] / "shared" / "cifar10"
# The first labels of data_batch_1 and of test_batch in the official release.
FIRST_TRAIN_LABELS = [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
FIRST_TEST_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
NOT_OFFICIAL = "is not the official CIFAR-10 release"


@pytest.fixture(scope="session")
def real_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the full data set in the official python format, built once."""
    if not (SHARED / "build.py").is_file():
        pytest.skip(f"no offline CIFAR-10 copy at {SHARED} (build.py and cifar10-jpeg.npz)")
    pytest.importorskip("PIL", reason="build.py decodes the JPEGs with Pillow")
    out = tmp_path_factory.mktemp("cifar10_real")
    done = subprocess.run(
        [sys.executable, str(SHARED / "build.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture
def fresh_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget this process's folder verdicts, so that the notice is given again."""
    monkeypatch.setattr(cd, "_VERDICTS", {})


def test_loader_reads_the_full_data_set_and_says_it_is_not_official(
    real_dir: Path, fresh_verdicts: None
) -> None:
    messages: list[str] = []
    folder = ensure_cifar10(real_dir, download=False, progress=messages.append)
    assert folder == real_dir / FOLDER
    # Decoded JPEGs: no batch is byte for byte the published one, so the notice names them.
    assert len(messages) == 1 and NOT_OFFICIAL in messages[0] and "\n" not in messages[0]
    assert all(name in messages[0] for name in (*cf.TRAIN_BATCHES, cf.TEST_BATCH))
    assert label_names(folder) == CLASSES

    for split, n, first in [
        ("train", 50_000, FIRST_TRAIN_LABELS),
        ("test", 10_000, FIRST_TEST_LABELS),
    ]:
        x, y = load_cifar10_split(folder, split)
        assert x.shape == (n, 3, 32, 32) and x.dtype == np.uint8, split
        assert y.shape == (n,) and y.dtype == np.int64, split
        assert y[:10].tolist() == first, split
        np.testing.assert_array_equal(np.bincount(y, minlength=10), [n // 10] * 10)
        assert x[:100].std() > 10  # real images, not a blank array


def test_task_splits_the_real_data_with_one_notice(
    real_dir: Path,
    fresh_verdicts: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("HPO_DATA_DIR", str(real_dir))
    cpu = torch.device("cpu")
    data = TASK.load(TASK.settings(), cpu)
    test = TASK.load_test(TASK.settings(), cpu)
    assert (len(data.train), len(data.val), len(test)) == (45_000, 5_000, 10_000)
    assert data.train.x.dtype == torch.uint8 and data.train.x.shape[1:] == (3, 32, 32)
    assert test.y[:10].tolist() == FIRST_TEST_LABELS
    assert torch.bincount(test.y, minlength=10).tolist() == [1_000] * 10
    counts = torch.bincount(data.train.y, minlength=10) + torch.bincount(data.val.y, minlength=10)
    assert counts.tolist() == [5_000] * 10
    # Two loads, one notice: the verdict is cached for the process.
    notices = [line for line in capsys.readouterr().err.splitlines() if NOT_OFFICIAL in line]
    assert len(notices) == 1
