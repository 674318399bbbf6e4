"""The cifar10 task end to end on a tiny CIFAR-10 written in the official format.

Splits and subsets, the test batch kept out of the search path, the user's original network,
the shipped specs, and `hpo study cifar10` as a real subprocess (also offline, with no data).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from hpo.search.space import suggest
from hpo.search.spec import load_spec
from hpo.study.progress import cpu_cost, cpu_estimate
from hpo.tasks import TASKS
from hpo.tasks.cifar10 import download as cifar10_data
from hpo.tasks.cifar10 import files as cifar10_files
from hpo.tasks.cifar10.download import ARCHIVE
from hpo.tasks.cifar10.files import FOLDER, DataError, load_cifar10_split, split_indices
from hpo.tasks.cifar10.task import TASK, split
from hpo.train.config import Config
from hpo.train.models import build_model, count_parameters
from hpo.util.errors import UserError

from .conftest import ROOT, cli, hpo, write_spec
from .test_cifar10_data import PUBLISHED_ARCHIVE_MD5, ROWS, md5_of, write_batches

CPU = torch.device("cpu")
N_TRAIN = 5 * ROWS  # images in the tiny data_batch_1..5


@dataclass
class Source:
    """A tiny CIFAR-10: the extracted folder and its tarball (with the tarball's md5)."""

    folder: Path
    tarball: Path
    md5: str


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    root = tmp_path_factory.mktemp("cifar10_task")
    write_batches(root / FOLDER, np.random.default_rng(1))
    tarball = root / "archive" / ARCHIVE
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(root / FOLDER, arcname=FOLDER)
    return Source(root / FOLDER, tarball, md5_of(tarball))


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HPO_DATA_DIR; the network is off limits (a test that reaches it fails)."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("HPO_DATA_DIR", str(path))

    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return path


@pytest.fixture
def extracted(source: Source, data_dir: Path) -> Path:
    """HPO_DATA_DIR holding the extracted folder; returns that folder."""
    shutil.copytree(source.folder, data_dir / FOLDER)
    return data_dir / FOLDER


def rows(x: torch.Tensor) -> set[bytes]:
    return {bytes(img.numpy().tobytes()) for img in x}


# --- data -------------------------------------------------------------------------------------


def test_load_from_extracted_folder(source: Source, extracted: Path) -> None:
    data = TASK.load(TASK.settings(), CPU)
    assert (len(data.train), len(data.val)) == (N_TRAIN - N_TRAIN // 10, N_TRAIN // 10)
    assert data.train.x.shape[1:] == (3, 32, 32) and data.train.x.dtype == torch.uint8
    assert data.train.y.dtype == torch.int64 and data.val.y.dtype == torch.int64
    assert data.image_shape == (3, 32, 32) and data.n_outputs == 10
    # exactly the images split_indices picks from the five training batches, labels alongside
    x, y = load_cifar10_split(source.folder, "train")
    train, val = split_indices(N_TRAIN, 0.1, 0)
    assert torch.equal(data.train.x, torch.from_numpy(x[train]))
    assert torch.equal(data.train.y, torch.from_numpy(y[train]))
    assert torch.equal(data.val.x, torch.from_numpy(x[val]))
    assert torch.equal(data.val.y, torch.from_numpy(y[val]))


def test_load_from_tarball(
    source: Source, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(source.tarball, data_dir / ARCHIVE)
    monkeypatch.setattr(cifar10_data, "MD5", source.md5)  # the tiny archive's, not the real one
    data = TASK.load(TASK.settings(), CPU)
    assert (data_dir / FOLDER / "data_batch_5").is_file()  # extracted next to the archive
    x, _ = load_cifar10_split(source.folder, "train")
    train, val = split_indices(N_TRAIN, 0.1, 0)
    assert torch.equal(data.train.x, torch.from_numpy(x[train]))
    assert torch.equal(data.val.x, torch.from_numpy(x[val]))


def test_tarball_with_another_md5_is_refused(source: Source, data_dir: Path) -> None:
    shutil.copy(source.tarball, data_dir / ARCHIVE)  # the real md5 is expected: ours differs
    expected = f"is corrupt: md5 {source.md5}, expected {PUBLISHED_ARCHIVE_MD5};"
    with pytest.raises(DataError, match=expected):
        TASK.load(TASK.settings(), CPU)


def test_split_sizes_of_the_full_data_set() -> None:
    settings = TASK.settings()
    assert TASK.sizes(settings) == {"n_train": 45_000, "n_val": 5_000, "n_test": 10_000}
    train, val = split(50_000, settings)
    expected_train, expected_val = split_indices(50_000, 0.1, 0)
    np.testing.assert_array_equal(train, expected_train)
    np.testing.assert_array_equal(val, expected_val)
    assert len(np.union1d(train, val)) == 50_000 and not np.intersect1d(train, val).size


def test_subset_shrinks_only_the_training_split() -> None:
    full_train, full_val = split(50_000, TASK.settings())
    tenth = TASK.settings({"subset": 0.1})
    train, val = split(50_000, tenth)
    assert TASK.sizes(tenth) == {"n_train": 4_500, "n_val": 5_000, "n_test": 10_000}
    assert len(train) == 4_500
    np.testing.assert_array_equal(val, full_val)  # validation is never touched
    assert np.isin(train, full_train).all()
    half, _ = split(50_000, TASK.settings({"subset": 0.5}))
    assert np.isin(train, half).all()  # nested: a smaller subset lies inside a larger one


def test_val_subset_shrinks_only_the_validation_split() -> None:
    full_train, full_val = split(50_000, TASK.settings())
    settings = TASK.settings({"val_subset": 0.2})
    train, val = split(50_000, settings)
    assert TASK.sizes(settings) == {"n_train": 45_000, "n_val": 1_000, "n_test": 10_000}
    assert len(val) == 1_000 and np.isin(val, full_val).all()
    np.testing.assert_array_equal(train, full_train)
    both_train, both_val = split(50_000, TASK.settings({"val_subset": 0.2, "subset": 0.1}))
    np.testing.assert_array_equal(both_val, val)  # neither subset moves the other split
    np.testing.assert_array_equal(both_train, split(50_000, TASK.settings({"subset": 0.1}))[0])
    assert np.isin(val, split(50_000, TASK.settings({"val_subset": 0.5}))[1]).all()  # nested


def test_subset_on_tiny_data(extracted: Path) -> None:
    full = TASK.load(TASK.settings(), CPU)
    half = TASK.load(TASK.settings({"subset": 0.5}), CPU)
    assert len(half.train) == round(len(full.train) / 2)
    assert torch.equal(half.val.x, full.val.x) and torch.equal(half.val.y, full.val.y)
    assert rows(half.train.x) <= rows(full.train.x)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"subset": 0.0}, "subset must be in"),
        ({"subset": 1.5}, "subset must be in"),
        ({"val_subset": 0.0}, "val_subset must be in"),
        ({"val_fraction": 0.0}, "val_fraction must be in"),
    ],
)
def test_bad_settings_fail_before_any_download(data_dir: Path, overrides, message) -> None:
    with pytest.raises(UserError, match=message):
        TASK.load(TASK.settings(overrides), CPU)
    assert not any(data_dir.iterdir())  # nothing fetched or created


def test_test_split_is_the_test_batch_and_apart(source: Source, extracted: Path) -> None:
    settings = TASK.settings({"subset": 0.5})  # subset applies to training only
    test = TASK.load_test(settings, CPU)
    x, y = load_cifar10_split(source.folder, "test")
    assert len(test) == ROWS and torch.equal(test.x, torch.from_numpy(x))
    assert torch.equal(test.y, torch.from_numpy(y))
    data = TASK.load(settings, CPU)
    assert not rows(test.x) & (rows(data.train.x) | rows(data.val.x))


def test_search_path_never_opens_test_batch(
    extracted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (extracted / "test_batch").write_bytes(b"not a pickle")  # present, so no re-extraction
    opened: list[str] = []
    real = cifar10_files._unpickle

    def spy(path: Path):
        opened.append(path.name)
        return real(path)

    monkeypatch.setattr(cifar10_files, "_unpickle", spy)
    data = TASK.load(TASK.settings(), CPU)  # works: the damaged test batch is never read
    assert len(data.train) + len(data.val) == N_TRAIN
    assert sorted(opened) == [f"data_batch_{i}" for i in range(1, 6)]
    with pytest.raises(DataError, match="test_batch is unreadable"):
        TASK.load_test(TASK.settings(), CPU)


def test_sizes_and_listing_do_not_need_the_data(data_dir: Path) -> None:
    assert TASKS["cifar10"] is TASK
    assert TASK.sizes(TASK.settings())["n_train"] == 45_000
    assert not any(data_dir.iterdir())


def test_images_are_augmentable() -> None:
    # flip + crop apply when a config asks (config.augment); its pad and flip mode come from it
    assert TASK.augment is True


# --- the original network ---------------------------------------------------------------------


def test_original_config_builds_and_runs() -> None:
    net = build_model(TASK.original, (3, 32, 32), TASK.n_outputs)
    out = net(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    # Keras' model.summary() of the user's network (docs/scenarios.md §3) by hand: convs 896 +
    # 9,248 + 18,496 + 36,928 + 73,856 + 147,584; dense 2,098,176 + 524,800 + 5,130.
    assert count_parameters(net) == 2_915_114
    assert TASK.original.epochs == 50 and not TASK.original.augment
    with torch.no_grad():
        for layer in net.head:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(100.0)
    net.apply_constraints()  # max-norm 3 on the two hidden dense layers, not on the output
    hidden = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    for layer in hidden[:-1]:
        assert float(layer.weight.detach().norm(dim=1).max()) <= 3.0 + 1e-4
    assert float(hidden[-1].weight.detach().norm(dim=1).max()) > 3.0


# --- the shipped specs ------------------------------------------------------------------------


def _config(spec, trial) -> Config:
    return suggest(trial, spec, Config.from_dict(spec.base))  # as hpo.study's Runner does


def test_known_good_spec_is_fixed_and_the_search_starts_from_it() -> None:
    spec = load_spec(ROOT / "studies" / "cifar10-known-good.toml")
    assert spec.task == "cifar10" and all(p.fixed for p in spec.space.values())
    config = _config(spec, optuna.trial.FixedTrial({}))  # nothing left to suggest
    # the public record's shape (airbench94): whitening stem, 64/256/256 conv groups with the
    # pool after the first conv, BN shifts only, GELU, global max-pool, logits / 9
    assert config.stem == "whiten" and config.conv_channels == (64, 256, 256)
    assert (config.convs_per_block, config.downsample, config.residual) == (2, "pool_first", False)
    assert config.batch_norm and not config.bn_scale and config.activation == "gelu"
    assert config.global_pool == "max" and config.dense_units == ()
    assert config.logit_scale == pytest.approx(1 / 9, rel=1e-3)
    assert (config.optimizer, config.nesterov, config.lr, config.momentum) == (
        "sgd",
        True,
        1.5,
        0.85,
    )
    assert (config.lookahead, config.tta, config.aug_pad, config.aug_flip) == (
        True,
        2,
        2,
        "alternating",
    )
    assert (config.schedule, config.label_smoothing, config.batch_size, config.epochs) == (
        "onecycle",
        0.2,
        1024,
        10,
    )
    # studies/cifar10.toml enqueues it: its trial 0 is exactly this config
    search = load_spec(ROOT / "studies" / "cifar10.toml")
    assert search.enqueue is not None and set(search.enqueue) <= set(search.space)
    assert _config(search, optuna.trial.FixedTrial(search.enqueue)) == config
    assert build_model(config, (3, 32, 32), 10)(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_search_spec_samples_buildable_configs() -> None:
    spec = load_spec(ROOT / "studies" / "cifar10.toml")
    assert spec.task == "cifar10" and spec.epochs == 10 and spec.trial_timeout == 12
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    for _ in range(6):
        trial = study.ask()
        config = _config(spec, trial)
        assert config.epochs == spec.epochs and 2 <= len(config.conv_channels) <= 4
        net = build_model(config, (3, 32, 32), 10).eval()  # eval: BN takes a batch of 2 too
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
        study.tell(trial, 0.5)


def test_cpu_estimate_points_to_subset_and_epochs() -> None:
    line = cpu_estimate(420.0, 10, 200, subset=True)
    assert "7 min" in line and "70 min" in line and "9.7 days" in line
    assert "--subset" in line and "--epochs" in line and "\n" not in line
    assert "val_subset" in line
    assert "--subset" not in cpu_estimate(1.0, 6, 30, subset=False)


# --- the command line -------------------------------------------------------------------------

TINY_CIFAR = """
task = "cifar10"

[study]
sampler = "random"
pruner = "none"
epochs = 1

[space]
optimizer = ["sgd", "adam"]
lr = { low = 1e-3, high = 1e-1, log = true }
augment = [false, true]

[base]
conv_channels = [4]
conv_kernel = [3]
downsample = "pool"
global_pool = "avg"
batch_size = 32
"""


def test_tiny_study_through_the_cli(extracted: Path, scratch: Path, tracking_uri: str) -> None:
    spec = write_spec(scratch / "tiny-cifar10.toml", TINY_CIFAR)
    out = hpo(
        "study",
        "cifar10",
        "--trials",
        "2",
        "--epochs",
        "1",
        "--storage",
        "memory",
        "--no-original",
        "--spec",
        str(spec),
        "--device",
        "cpu",
        "--tracking-uri",
        tracking_uri,
        env={"HPO_DATA_DIR": str(extracted.parent)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2/2 trials finished" in out.stdout
    assert "pca_logistic_regression" in out.stdout
    lines = out.stderr.splitlines()
    gpu = next(i for i, line in enumerate(lines) if line.startswith("no GPU in use"))
    data = next(i for i, line in enumerate(lines) if line.startswith("data: 90 train / 10 val"))
    assert gpu < data  # said up front, before the data load
    estimate = [line for line in lines if line.startswith("CPU estimate:")]
    assert len(estimate) == 1 and "--subset" in estimate[0] and "--epochs" in estimate[0]
    assert "Traceback" not in out.stderr


def test_offline_without_data_is_one_error_line(
    scratch: Path, tmp_path: Path, tracking_uri: str
) -> None:
    empty = tmp_path / "nodata"
    empty.mkdir()
    # Where a network exists, a dead proxy makes the download fail at once all the same.
    dead = "http://127.0.0.1:9"
    proxy = {"https_proxy": dead, "HTTPS_PROXY": dead, "no_proxy": "", "NO_PROXY": ""}
    t0 = time.monotonic()
    out = hpo(
        "study",
        "cifar10",
        "--trials",
        "1",
        "--storage",
        "memory",
        "--tracking-uri",
        tracking_uri,
        "--data-dir",
        str(empty),
        env=proxy,
        timeout=120,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert time.monotonic() - t0 < 90
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("hpo: error:")]
    assert len(errors) == 1 and out.stderr.strip().splitlines()[-1] == errors[0]
    assert ARCHIVE in errors[0] and str(empty) in errors[0]
    assert not (empty / (ARCHIVE + ".part")).exists()  # no half download left behind


def test_hpo_train_reads_the_data_where_the_study_did(
    extracted: Path, scratch: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hpo study cifar10 --data-dir X` keeps X in the study: `hpo train cifar10` then reads the
    data there, with no flag and no HPO_DATA_DIR (the default folder is empty, the network
    refused)."""
    monkeypatch.delenv("HPO_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(scratch / "empty-cache"))
    spec = write_spec(scratch / "tiny-cifar10.toml", TINY_CIFAR)
    common = ["--storage", f"sqlite:///{scratch / 'hpo.db'}", "--tracking-uri", tracking_uri]
    study = cli(
        "study", "cifar10", "--trials", "1", "--epochs", "1", "--no-original", "--no-baseline",
        "--spec", str(spec), "--device", "cpu", "--data-dir", str(extracted.parent), *common,
    )  # fmt: skip
    assert study.returncode == 0, study.stderr[-3000:]
    assert "HPO_DATA_DIR" not in os.environ
    train = cli("train", "cifar10", "--finalists", "0", "--device", "cpu", *common)
    assert train.returncode == 0, train.stderr[-3000:]
    assert train.stdout.startswith("trial 0: test_loss ")


def test_a_gpu_sized_study_on_a_cpu_gives_its_cost_before_it_starts() -> None:
    """cifar10 at full size on this CPU: minutes an epoch, so 200 trials take days; the line
    names a command that fits about an hour, with at least 10 trials."""
    line = cpu_cost("cifar10", 0.01, 45_000, 5_000, 10, 200, subset=True)
    assert line.startswith("CPU estimate: a trial trains ~8 min an epoch here")
    assert "200 trial(s) of 10 epochs take up to ~10.8 days" in line
    fit = line.split("about an hour here: ")[1]
    assert fit == "hpo study cifar10 --subset 0.1 --data val_subset=0.2 --epochs 4 --trials 18"
    one = 4 * 0.01 * (4_500 + 1_000 / 3)  # what each of those trials costs: ~193 s
    assert 10 <= 3600 // one == 18
    small = cpu_cost("box", 1e-5, 10_000, 2_000, 3, 30, subset=False)
    assert "about an hour" not in small  # it fits: nothing to change


def test_the_cost_line_comes_before_the_first_trial(
    extracted: Path, scratch: Path, tracking_uri: str
) -> None:
    spec = TINY_CIFAR.replace(
        "epochs = 1\n", 'epochs = 1\ntrial_timeout = 12\ntrial_timeout_device = "cuda"\n'
    )
    path = write_spec(scratch / "gpu-sized.toml", spec)
    out = cli(
        "study", "cifar10", "--trials", "1", "--storage", "memory", "--no-original",
        "--no-baseline", "--spec", str(path), "--device", "cpu", "--tracking-uri", tracking_uri,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stderr.splitlines()
    cost = next(i for i, line in enumerate(lines) if line.startswith("CPU estimate: a trial"))
    first = next(i for i, line in enumerate(lines) if line.startswith("trial 0 (1/1)"))
    assert cost < first
