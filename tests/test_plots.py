"""The study plots (hpo/plots.py), drawn from small studies built in memory with the user
attributes hpo sets: no training."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hpo import report as plots
from hpo.report import figure_parts as plots_common

optuna.logging.set_verbosity(optuna.logging.WARNING)

ORIGINAL = {
    "metrics": {"val_mse": 0.35, "val_r2": -0.001},
    "history": [{"val_mse": 0.36, "train_loss": 30.0}, {"val_mse": 0.35, "train_loss": 0.3}],
    "epochs": 2,
    "of_epochs": 1000,
    "status": "ok",
    "reason": "",
    "params": {"lr": 0.01},
    "diagnosis": "collapsed_to_mean",
}
BASELINES = {"ridge": {"val_mse": 7e-5, "val_r2": 0.9998}}
DISTS = {
    "lr": FloatDistribution(1e-5, 1.0, log=True),
    "depth": IntDistribution(0, 3),
    "optimizer": CategoricalDistribution(["sgd", "adam"]),
}


def study_of(
    values: list[float],
    pruned: int = 0,
    metric: str = "val_mse",
    direction: str = "minimize",
    references: bool = True,
    n_params: int = 3,
) -> optuna.Study:
    """Complete trials with these final values (3 epochs each, ending at the value), then
    `pruned` pruned trials with 1 epoch and no value of their own, as Optuna stores them."""
    study = optuna.create_study(direction=direction)
    study.set_user_attr("task", "box")
    study.set_user_attr("metric", metric)
    if references:
        study.set_user_attr("baselines", BASELINES)
        study.set_user_attr("original", ORIGINAL)
    dists = dict(DISTS) | {
        f"extra_{i}": FloatDistribution(0.0, 1.0) for i in range(max(0, n_params - 3))
    }
    for i, value in enumerate(values):
        params = {
            "lr": 10 ** -(1 + i % 4),
            "depth": i % 4,
            "optimizer": ("sgd", "adam")[i % 2],
        } | {k: (i * 0.37 + j * 0.11) % 1.0 for j, k in enumerate(list(dists)[3:])}
        study.add_trial(
            create_trial(
                value=value,
                params=params,
                distributions=dists,
                intermediate_values={1: value * 4, 2: value * 2, 3: value},
            )
        )
    for i in range(pruned):
        study.add_trial(
            create_trial(
                state=TrialState.PRUNED,
                params={"lr": 0.5, "depth": 1, "optimizer": "sgd"},
                distributions=DISTS,
                intermediate_values={1: 0.2 + i / 100},
            )
        )
    return study


def labels(figure) -> list[str]:
    legend = figure.axes[0].get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_all_four_files_are_written(tmp_path: Path) -> None:
    paths = plots.plots(study_of([0.35, 0.02, 7e-4, 1e-4], pruned=2), str(tmp_path))
    names = sorted(Path(p).name for p in paths)
    assert names == [
        "curves.png",
        "optimization_history.png",
        "parallel_coordinate.png",
        "param_importances.png",
    ]
    assert all(Path(p).stat().st_size > 10_000 for p in paths)


def test_history_is_log_when_values_span_decades() -> None:
    figure = plots.history_figure(study_of([0.35, 0.02, 7e-4, 1e-4]))
    assert figure is not None
    ax = figure.axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_ylabel().startswith("val_mse")
    close = plots.history_figure(study_of([0.35, 0.30, 0.2], references=False))
    assert close is not None and close.axes[0].get_yscale() == "linear"


def test_accuracy_stays_linear_and_says_higher_is_better() -> None:
    study = study_of([0.5, 0.9, 0.99], metric="val_accuracy", direction="maximize")
    study.set_user_attr("baselines", {"logistic_regression": {"val_accuracy": 0.998}})
    study.set_user_attr("original", ORIGINAL | {"metrics": {"val_accuracy": 0.8}})
    figure = plots.history_figure(study)
    assert figure is not None
    assert figure.axes[0].get_yscale() == "linear"
    assert "higher is better" in figure.axes[0].get_ylabel()
    assert any("best: trial 2, 0.99" in label for label in labels(figure))


def test_baseline_and_original_are_labelled_lines() -> None:
    figure = plots.history_figure(study_of([0.35, 0.02, 7e-4]))
    assert figure is not None
    found = labels(figure)
    assert "baseline ridge: 7e-05" in found
    assert any(f.startswith("original (2/1000 epochs, collapsed_to_mean): 0.35") for f in found)
    heights = {line.get_label(): line.get_ydata()[0] for line in figure.axes[0].get_lines()}
    assert heights["baseline ridge: 7e-05"] == pytest.approx(7e-5)


def test_an_original_without_a_value_says_why() -> None:
    study = study_of([0.35, 0.02])
    study.set_user_attr(
        "original",
        ORIGINAL | {"metrics": {}, "history": [], "status": "diverged", "reason": "loss nan"},
    )
    figure = plots.history_figure(study)
    assert figure is not None
    assert any("diverged" in f and "no value (loss nan)" in f for f in labels(figure))


def test_pruned_trials_appear_at_their_last_epoch() -> None:
    figure = plots.history_figure(study_of([0.35, 0.02, 7e-4], pruned=3))
    assert figure is not None
    points = {c.get_label(): c.get_offsets() for c in figure.axes[0].collections}
    key = next(k for k in points if k.startswith("pruned (3)"))
    assert [x for x, _ in points[key]] == [3, 4, 5]
    assert [y for _, y in points[key]] == pytest.approx([0.2, 0.21, 0.22])
    assert len(points["complete (3)"]) == 3


def test_failed_trials_are_counted_and_odd_attributes_do_not_stop_the_plots(
    tmp_path: Path,
) -> None:
    study = study_of([0.35, 0.02, 7e-4], pruned=1)
    study.add_trial(create_trial(state=TrialState.FAIL))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"outcome": "surplus"}))
    study.set_user_attr("baselines", {"ridge": "not a dict", "lasso": {"val_r2": 0.5}})
    study.set_user_attr("original", {"history": [None, {"val_mse": "nan"}, {"val_mse": 0.3}]})
    figure = plots.history_figure(study)
    assert figure is not None
    found = labels(figure)
    assert "failed (1): no value" in found
    assert "baseline ridge: no value" in found and "baseline lasso: no value" in found
    assert plots_common.original_curve(study) == [(3, 0.3)]
    assert len(plots.plots(study, str(tmp_path))) == 4


def test_parallel_coordinates_show_few_parameters_and_the_best_trials() -> None:
    values = [10 ** -(i % 5) for i in range(60)]
    figure = plots.parallel_figure(
        study_of(values, n_params=25), plots.importances(study_of(values, n_params=25))
    )
    assert figure is not None
    ax = figure.axes[0]
    axes = [t.get_text() for t in ax.get_xticklabels()]
    assert axes[0].startswith("val_mse")
    assert 2 <= len(axes) - 1 <= plots.TOP_PARAMS
    assert "best 30 of 60" in ax.get_title()
    assert len(ax.get_lines()) - len(axes) == plots.TOP_TRIALS  # trials, then the axes


def test_importances_are_capped() -> None:
    study = study_of([10 ** -(i % 5) for i in range(40)], n_params=25)
    figure = plots.importance_figure(study, plots.importances(study))
    assert figure is not None
    assert len(figure.axes[0].patches) == plots.TOP_IMPORTANCES
    assert "top 10 of" in figure.axes[0].get_title()


def test_curves_show_the_best_trials_and_the_original() -> None:
    figure = plots.curves_figure(study_of([0.35, 0.02, 7e-4, 3e-4, 2e-4, 1e-4, 5e-5], pruned=2))
    assert figure is not None
    ax = figure.axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "epoch"
    found = labels(figure)
    trials = [f for f in found if f.startswith("trial ")]
    assert trials[0] == "trial 6: 5e-05" and len(trials) == plots.TOP_CURVES
    assert any(f.startswith("other trials (4,") for f in found)  # 2 complete, 2 pruned
    original = next(line for line in ax.get_lines() if line.get_label().startswith("original"))
    assert list(original.get_xdata()) == [1, 2]
    assert list(original.get_ydata()) == [0.36, 0.35]
    assert "baseline ridge: 7e-05" in found


@pytest.mark.parametrize("complete", [0, 1])
def test_too_few_complete_trials_write_nothing(tmp_path: Path, complete: int) -> None:
    study = study_of([0.1] * complete, pruned=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing reaches the terminal either
        assert plots.plots(study, str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []


def test_multi_objective_plots_the_metric() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"])
    study.set_user_attr("metric", "val_mse")
    for i, (mse, seconds) in enumerate([(0.3, 5.0), (1e-3, 50.0), (1e-4, 500.0)]):
        study.add_trial(
            create_trial(
                values=[mse, seconds],
                params={"lr": 10.0**-i, "depth": i, "optimizer": "sgd"},
                distributions=DISTS,
            )
        )
    figure = plots.history_figure(study)
    assert figure is not None
    ax = figure.axes[0]
    assert "first of 2 objectives" in ax.get_title()
    complete = next(c for c in ax.collections if c.get_label().startswith("complete"))
    assert [y for _, y in complete.get_offsets()] == pytest.approx([0.3, 1e-3, 1e-4])
    assert ax.get_yscale() == "log"
    assert plots.curves_figure(study) is None  # no per-epoch reports in such a study


def test_log_scale_rule() -> None:
    assert plots_common.log_scale([1e-4, 0.35])
    assert not plots_common.log_scale([0.5, 1.0])
    assert not plots_common.log_scale([0.0, 1e-4, 0.35])  # zero has no place on a log axis
    assert not plots_common.log_scale([])
    assert math.isclose(plots_common.LOG_SPAN, 100.0)


TAB = {"blue": (0.12, 0.47, 0.71), "green": (0.17, 0.63, 0.17), "red": (0.84, 0.15, 0.16)}


def pixels_of(image, colour: tuple[float, float, float], tolerance: float = 0.06):
    """A boolean mask of the pixels of `colour` (RGB in [0, 1])."""
    import numpy as np

    return np.abs(image[..., :3] - np.array(colour)).max(axis=-1) < tolerance


def test_the_history_png_shows_what_it_promises(tmp_path: Path) -> None:
    """The PNG itself, decoded: the MSE axis is logarithmic (the trials' values 0.35, 0.02,
    7e-4 and 1e-4 spread over the height, where a linear axis puts the last three within a few
    pixels), the baseline is a green line across the plot, the original a black dash-dot one,
    and the best trial (the lowest, last point) carries a red star."""
    import numpy as np
    from matplotlib.image import imread
    from scipy import ndimage

    paths = plots.plots(study_of([0.35, 0.02, 7e-4, 1e-4]), str(tmp_path))
    image = imread(next(p for p in paths if p.endswith("optimization_history.png")))
    black = pixels_of(image, (0.0, 0.0, 0.0), 0.15)
    cols = np.flatnonzero(black.sum(axis=0) > 0.6 * black.sum(axis=0).max())  # the spines
    rows = np.flatnonzero(black.sum(axis=1) > 0.6 * black.sum(axis=1).max())
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    inside = np.zeros(black.shape, bool)
    inside[top + 2 : bottom - 1, left + 2 : right - 1] = True  # the plot, not the legend
    width = right - left

    def blobs(colour, tolerance=0.06):
        labels, n = ndimage.label(pixels_of(image, colour, tolerance) & inside)
        sizes = ndimage.sum(labels > 0, labels, range(1, n + 1))
        return [(size, ndimage.center_of_mass(labels == i + 1)) for i, size in enumerate(sizes)]

    dots = sorted(c for size, c in blobs(TAB["blue"]) if size > 20)  # by row: top first
    star = max(blobs(TAB["red"]))[1]  # the largest red shape; the step line is thin
    assert len(dots) == 3, dots  # trial 3's dot is under the star
    (r0, _), (r1, _), (r2, c2) = dots
    assert star[0] > r2 and star[1] > c2  # the lowest value, the last trial: the best
    assert (r2 - r1) / (star[0] - r0) > 0.25  # 0.02 to 7e-4 is 0.41 of the height on a log axis
    green = (pixels_of(image, TAB["green"], 0.1) & inside).sum(axis=1)
    assert green.max() > 0.3 * width  # a dashed line across the plot
    dash_dot = (black & inside).sum(axis=1)
    assert ((dash_dot > 0.2 * width) & (dash_dot < 0.9 * width)).any()  # the original's
