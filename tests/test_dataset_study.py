"""A user's own data set end to end (issue 33): each format in its real encoding (PNG, JPEG,
CSV, Parquet, npz), written here, studied with `hpo study PATH`, reported, retrained once on
its test split and seen by MLflow as a dataset input; the study's record keeps the data's
digest, so a rerun whose data changed is refused; bad input is one line and exit 2 with
nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import cli

TINY = ("--trials", "2", "--epochs", "1", "--seed", "0")


def _png_classes(root: Path, n: int = 24, size: int = 8, suffix: str = ".png") -> Path:
    """Two classes told apart by their colour (red or green), as image files."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, channel in (("green", 1), ("red", 0)):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            pixels[..., channel] = 200
            Image.fromarray(pixels).save(folder / f"{i}{suffix}")
    return root


def _table(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 3))
    return x, x @ np.array([1.0, -2.0, 0.5]) + 0.01 * rng.normal(size=n)


def _mlflow_inputs(uri: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return [(r.data.tags.get("kind"), r.inputs.dataset_inputs) for r in runs]


def test_an_image_folder_is_studied_reported_retrained_and_known_to_mlflow(scratch):
    _png_classes(scratch / "colours")
    ran = cli("study", "./colours", *TINY)
    assert ran.returncode == 0, ran.stderr
    line = next(s for s in ran.stderr.splitlines() if s.startswith("data set:"))
    assert "classification of 2 classes (green, red)" in line and "3x8x8 images" in line
    assert "38 train / 5 val / 5 test" in line and "stratified" in line
    assert "best val_accuracy" in ran.stdout or "val_accuracy" in ran.stdout
    report = cli("report", "colours", "--format", "json")
    assert report.returncode == 0, report.stderr
    body = json.loads(report.stdout)
    assert body["study"] == "colours" and len(body["trials"]) == 2
    assert "pca_logistic_regression" in body["baselines"]
    final = cli("train", "colours", "--best", "--finalists", "0")
    assert final.returncode == 0, final.stderr
    assert "test_accuracy" in final.stdout
    inputs = _mlflow_inputs(f"sqlite:///{scratch / 'mlflow.db'}", "colours")
    trials = [i for kind, i in inputs if kind == "trial"]
    parents = [i for kind, i in inputs if kind == "study"]
    assert len(trials) == 2 and all(len(i) == 1 for i in trials + parents)
    dataset = parents[0][0].dataset
    assert dataset.name == "colours" and dataset.digest and "colours" in dataset.source
    assert json.loads(dataset.profile)["classes"] == ["green", "red"]


def test_a_rerun_whose_images_changed_is_refused_saying_what_changed(scratch):
    folder = _png_classes(scratch / "colours", n=12)
    assert cli("study", "colours/", *TINY).returncode == 0
    (folder / "red" / "0.png").unlink()
    ran = cli("study", "colours/", "--trials", "3", "--epochs", "1")
    assert ran.returncode == 2
    assert "is not the data study 'colours' was made from" in ran.stderr
    assert "rows 24 -> 23" in ran.stderr and "--study-name" in ran.stderr


def test_labels_csv_regression_on_jpeg_with_the_users_own_split(scratch):
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(2)
    rows = []
    (scratch / "sq").mkdir()
    for i in range(40):
        img = np.zeros((12, 12, 3), dtype=np.uint8)
        x, y = rng.integers(0, 8, 2)
        img[y : y + 4, x : x + 4] = 255
        Image.fromarray(img).save(scratch / "sq" / f"{i}.jpg", quality=95)
        split = "train" if i < 30 else ("val" if i < 35 else "test")
        rows.append({"file": f"{i}.jpg", "split": split, "x": x / 8, "y": y / 8})
    pd.DataFrame(rows).to_csv(scratch / "sq" / "labels.csv", index=False)
    ran = cli("study", "./sq", *TINY)
    assert ran.returncode == 0, ran.stderr
    assert "regression of 2 target(s) (x, y)" in ran.stderr
    assert "30 train / 5 val / 5 test" in ran.stderr
    assert "val_mse" in ran.stdout
    final = cli("train", "sq", "--best", "--finalists", "0")
    assert final.returncode == 0 and "test_r2" in final.stdout, final.stderr


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_with_a_target_column(scratch, suffix):
    import pandas as pd

    x, y = _table()
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(
        colour=np.where(x[:, 0] > 0, "warm", "cold"), target=y
    )
    path = scratch / f"rows{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    ran = cli("study", path.name, "--target", "target", *TINY)
    assert ran.returncode == 0, ran.stderr
    line = next(s for s in ran.stderr.splitlines() if s.startswith("data set:"))
    assert "regression of 1 target(s) (target)" in line and "5 features" in line
    assert "linear_regression" in ran.stdout
    assert cli("train", "rows", "--best", "--finalists", "0").returncode == 0


def test_arrays_in_an_npz_with_their_own_validation_split(scratch):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 255, (60, 8, 8, 3), dtype=np.uint8)
    y = (x[:, 0, 0, 0] > 127).astype(np.int64)
    np.savez(scratch / "arr.npz", x=x[:40], y=y[:40], x_val=x[40:50], y_val=y[40:50],
             x_test=x[50:], y_test=y[50:])  # fmt: skip
    ran = cli("study", "arr.npz", *TINY)
    assert ran.returncode == 0, ran.stderr
    assert "40 train / 10 val / 10 test" in ran.stderr and "N,H,W,C" in ran.stderr
    assert "hpo tasks" and cli("tasks", "arr.npz").stdout.startswith("npz")


def test_the_users_original_net_is_replayed_beside_the_search(scratch):
    x, y = _table()
    np.savez(scratch / "lin.npz", x=x.astype(np.float32), y=y.astype(np.float32))
    (scratch / "mine.toml").write_text(
        'dense_units = [8]\noptimizer = "sgd"\nlr = 0.1\nepochs = 2\n'
    )
    ran = cli("study", "lin.npz", *TINY, "--original-config", "mine.toml")
    assert ran.returncode == 0, ran.stderr
    assert "original" in ran.stdout and "mine.toml" in ran.stderr
    report = json.loads(cli("report", "lin", "--format", "json").stdout)
    assert report["original_replay"]["status"] in ("ok", "stopped")


@pytest.mark.parametrize(
    "make, args, words",
    [
        (lambda d: None, ("study", "./nothing-here"), "no such file or folder"),
        (lambda d: (d / "box").mkdir(), ("study", "./box"), "built-in task"),
        (
            lambda d: (d / "mine.toml").write_text("colour = 3\n"),
            ("--original-config", "mine.toml"),
            "unknown config field(s): colour",
        ),
        (lambda d: None, ("--data", "n_train=3"), "unknown data setting(s) n_train"),
    ],  # fmt: skip
)
def test_bad_input_is_one_line_exit_2_and_writes_no_store(scratch, make, args, words):
    make(scratch)
    if args[0] != "study":
        _png_classes(scratch / "ok", n=4)
        args = ("study", "./ok", *args)
    ran = cli(*args, "--trials", "1")
    assert ran.returncode == 2, ran.stderr
    errors = [s for s in ran.stderr.splitlines() if s.startswith("hpo: error")]
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in ran.stderr
    assert not (scratch / "hpo.db").exists() and not (scratch / "mlflow.db").exists()


def test_hpo_init_writes_the_derived_spec_that_hpo_study_then_reads(scratch):
    x, y = _table()
    np.savez(scratch / "lin.npz", x=x.astype(np.float32), y=y.astype(np.float32))
    ran = cli("init", "lin.npz")
    assert ran.returncode == 0, ran.stderr
    text = (scratch / "studies" / "lin.toml").read_text()
    assert 'data = "lin.npz"' in text and "[space]" in text and "dense_units" in text
    edited = text.replace("\n[space]\n", "\n[space]\nbatch_size = 16\n", 1)
    edited = "\n".join(s for s in edited.splitlines() if not s.startswith("batch_size = ["))
    (scratch / "studies" / "lin.toml").write_text(edited)
    assert cli("init", "lin.npz").returncode == 2  # it exists
    ran = cli("study", "--spec", "studies/lin.toml", *TINY)
    assert ran.returncode == 0, ran.stderr
    trials = json.loads(cli("report", "lin", "--format", "json").stdout)["trials"]
    assert {t["params"]["batch_size"] for t in trials} == {16}
