"""Task data: the generated images say what the targets say; the test split stays apart."""

from __future__ import annotations

import pytest
import torch

from hpo.study.baselines import run_baselines
from hpo.tasks import TASKS, get_task
from hpo.tasks.base import Task
from hpo.tasks.pixel import GREEN, RED, pixel_position

CPU = torch.device("cpu")


def test_box_square_is_where_the_target_says():
    task = TASKS["box"]
    s = task.settings({"n_train": 50, "n_val": 10, "image_size": 20, "square_size": 4})
    data = task.load(s, CPU)
    for img, (x, y) in zip(data.train.x, data.train.y, strict=True):
        rows = img[0].any(dim=1).nonzero().flatten()
        cols = img[0].any(dim=0).nonzero().flatten()
        assert len(rows) == len(cols) == 4  # one 4x4 square
        half = (20 - 4) / 2
        assert float(x) == pytest.approx((int(cols[0]) - half) / half)
        assert float(y) == pytest.approx((int(rows[0]) - half) / half)
    assert data.train.x.dtype == torch.uint8
    assert float(data.train.y.min()) >= -1 and float(data.train.y.max()) <= 1


def test_pixel_class_is_the_colour_of_one_pixel():
    task = TASKS["pixel"]
    s = task.settings({"n_train_per_class": 20, "n_val_per_class": 5, "image_size": 12})
    data = task.load(s, CPU)
    row, col = pixel_position(s)
    for img, label in zip(data.train.x, data.train.y, strict=True):
        assert tuple(img[:, row, col].tolist()) == (GREEN if label == 0 else RED)
    assert int((data.train.y == 0).sum()) == 20 and len(data.val) == 10


def test_data_is_deterministic_and_test_split_is_separate():
    task = TASKS["box"]
    s = task.settings({"n_train": 30, "n_val": 10, "n_test": 10, "image_size": 16})
    a, b = task.load(s, CPU), task.load(s, CPU)
    assert torch.equal(a.train.x, b.train.x)
    test = task.load_test(s, CPU)
    assert not torch.equal(test.y, a.val.y)  # its own stream, not a copy of validation
    assert not torch.equal(test.y, a.train.y[:10])
    assert not hasattr(a, "test")  # the search path has no handle on the test split


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown data setting"):
        TASKS["box"].settings({"size": 3})
    with pytest.raises(ValueError, match="must be int"):
        TASKS["box"].settings({"image_size": "big"})


def test_unknown_task_lists_known_ones():
    with pytest.raises(Exception, match="known tasks: box, pixel"):
        get_task("nope")


def test_every_task_has_the_same_surface():
    for task in TASKS.values():
        assert isinstance(task, Task)
        assert task.direction in ("minimize", "maximize")
        assert task.metric.startswith("val_")


def test_baselines_solve_the_linear_tasks():
    box = TASKS["box"]
    data = box.load(box.settings({"n_train": 600, "n_val": 100, "image_size": 16}), CPU)
    assert run_baselines(box.baselines, data)["linear_regression"]["val_r2"] > 0.99
    pixel = TASKS["pixel"]
    s = pixel.settings({"n_train_per_class": 100, "n_val_per_class": 50, "image_size": 8})
    data = pixel.load(s, CPU)
    fitted = run_baselines(pixel.baselines, data)
    assert fitted["logistic_regression"]["val_accuracy"] > 0.95
    assert fitted["sparse_logistic_regression"]["val_accuracy"] > 0.95


def test_screening_scores_rank_the_class_pixel_first():
    """The sparse baseline's ANOVA F screening: the two colour channels that the label sets
    exactly score above every noise column (sklearn's float32 f_classif gives them < 0)."""
    from hpo.study.baselines import _f_scores
    from hpo.tasks.pixel import pixel_position

    pixel = TASKS["pixel"]
    s = pixel.settings({"n_train_per_class": 100, "n_val_per_class": 10, "image_size": 8})
    data = pixel.load(s, CPU)
    scores = _f_scores(data.train.x.reshape(200, -1), data.train.y)
    row, col = pixel_position(s)
    red, green = row * 8 + col, 64 + row * 8 + col  # channel-major (C, H, W) flattening
    assert set(scores.argsort()[-2:]) == {red, green}
    assert (scores >= 0).all()
