"""Study plots as PNG files: what `hpo report --plots DIR` writes and what each study logs to
its MLflow parent run. Reads the study only; imports nothing of hpo's study machinery.

Every plot is about the metric (the first objective of a multi-objective study), named as the
task names it, on a log axis where its values span more than two decades, with the
scikit-learn baselines and the replayed original as labelled reference lines where present."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState

from hpo.report.figure_parts import (
    ORIGINAL_COLOUR,
    TOP_CURVES,
    TRIAL_COLOURS,
    axis_label,
    complete,
    legend,
    log_scale,
    maximised,
    metric_name,
    new_figure,
    original_curve,
    original_label,
    ranked,
    reference_lines,
    references,
    trial_value,
)
from hpo.report.importance import importance_figure, importances, parallel_figure
from hpo.search import record
from hpo.study.references import original_history
from hpo.util.outcomes import Outcome
from hpo.util.values import finite


def _axes(ax: Axes, study: optuna.Study, refs: list, log: bool, xlabel: str) -> None:
    """The reference lines, the metric axis (log or linear) and integer x ticks."""
    reference_lines(ax, refs)
    if log:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(axis_label(study, log))


def history_figure(study: optuna.Study) -> Figure | None:
    """Every trial's metric (pruned ones at their last epoch), the best so far and the
    references; None with fewer than 2 complete trials."""
    done = complete(study)
    if len(done) < 2:
        return None
    pruned = [
        (t.number, v)
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if (v := trial_value(t)) is not None
    ]
    refs = references(study)
    values = [v for _, v in done] + [v for _, v in pruned]
    values += [r.value for r in refs if r.value is not None]
    log = log_scale(values)
    pick = max if maximised(study) else min
    best, steps = [], []
    for trial, value in done:
        steps.append(trial.number)
        best.append(value if not best else pick(best[-1], value))
    last = max([t.number for t, _ in done] + [n for n, _ in pruned])

    figure, ax = new_figure()
    top, value = ranked(study)[0]
    ax.step(steps + [last], best + best[-1:], where="post", color="tab:red", label="best so far")
    ax.scatter(
        [t.number for t, _ in done],
        [v for _, v in done],
        color="tab:blue",
        s=28,
        zorder=3,
        label=f"complete ({len(done)})",
    )
    ax.scatter(  # the best trial itself, marked on top of its point
        [top.number], [value], marker="*", s=220, color="tab:red", zorder=4,
        label=f"best: trial {top.number}, {value:.3g}",
    )  # fmt: skip
    _stopped(ax, study, pruned)
    _axes(ax, study, refs, log, "trial")
    task = record.info(study).task
    first = (
        f" (the first of {len(study.directions)} objectives)" if len(study.directions) > 1 else ""
    )
    ax.set_title(f"{task + ': ' if task else ''}{metric_name(study)}{first} of every trial")
    ax.grid(True, which="major", alpha=0.3)
    legend(ax)
    return figure


def _stopped(ax: Axes, study: optuna.Study, pruned: list[tuple[int, float]]) -> None:
    """The pruned trials at the value of their last epoch, and a legend entry for the failed
    ones (they have no value to draw)."""
    if pruned:
        ax.scatter(
            [n for n, _ in pruned],
            [v for _, v in pruned],
            marker="x",
            color="tab:orange",
            s=28,
            zorder=3,
            label=f"pruned ({len(pruned)}): value at its last epoch",
        )
    failed = sum(  # surplus trials (the budget was already taken) were never trained
        record.TrialRecord.of(t).outcome != Outcome.SURPLUS
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    )
    if failed:
        ax.plot([], [], linestyle="none", label=f"failed ({failed}): no value")


def curves_figure(
    study: optuna.Study, original_history: list[dict[str, float]] | None = None
) -> Figure | None:
    """The metric per epoch of the best complete trials and of the original (its
    `original_history`, else the study's), the other trials in grey; None with fewer than 2
    complete trials or none with per-epoch values."""
    if len(complete(study)) < 2:
        return None

    def points(t: FrozenTrial) -> list[tuple[int, float]]:  # step = epoch, from 1
        steps = sorted(t.intermediate_values.items())
        return [(s, v) for s, v in steps if finite(v) is not None]

    top = [t for t, _ in ranked(study) if points(t)][:TOP_CURVES]
    if not top:  # e.g. a multi-objective study: Optuna takes no per-epoch reports there
        return None
    numbers = {t.number for t in top}
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    others = [
        t
        for t in study.get_trials(deepcopy=False, states=states)
        if t.number not in numbers and points(t)
    ]
    original = original_curve(study, original_history)
    refs = [r for r in references(study) if not r.original and r.value is not None]
    values = [v for t in top + others for _, v in points(t)] + [v for _, v in original]
    log = log_scale(values + [r.value for r in refs if r.value is not None])

    figure, ax = new_figure()
    for i, t in enumerate(others):
        xs, ys = zip(*points(t), strict=True)
        label = f"other trials ({len(others)}, pruned ones included)" if i == 0 else None
        ax.plot(xs, ys, color="0.6", linewidth=0.8, alpha=0.5, label=label)
    for t, colour in zip(top, TRIAL_COLOURS, strict=False):
        xs, ys = zip(*points(t), strict=True)
        value = trial_value(t)
        label = f"trial {t.number}" + (f": {value:.3g}" if value is not None else "")
        ax.plot(xs, ys, color=colour, marker="o", markersize=3, linewidth=1.6, label=label)
    if original:
        xs, ys = zip(*original, strict=True)
        kept = record.original(study)
        label = original_label(kept, ys[-1]) if kept else f"original: {ys[-1]:.3g}"
        style = {"linestyle": "-.", "marker": "s", "markersize": 3, "linewidth": 1.6}
        ax.plot(xs, ys, color=ORIGINAL_COLOUR, label=label, zorder=1.9, **style)  # under trials
    _axes(ax, study, refs, log, "epoch")
    also = " and the original" if original else ""
    ax.set_title(f"{metric_name(study)} per epoch: the best {len(top)} trials{also}")
    ax.grid(True, which="major", alpha=0.3)
    legend(ax)
    return figure


def plots(
    study: optuna.Study, out_dir: str, original_history: list[dict[str, float]] | None = None
) -> list[str]:
    """optimization_history, param_importances, parallel_coordinate and curves as PNG files
    in out_dir (the original's curve from `original_history`, else the study's); the paths
    written. A plot that cannot be drawn yet is skipped."""
    optuna_logger = logging.getLogger("optuna")
    level = optuna_logger.level
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matplotlib's and optuna's; the terminal stays clean
        optuna_logger.setLevel(logging.ERROR)
        try:
            try:
                found = importances(study)
            except Exception:  # the two plots that need them fall back or are skipped
                found = {}
            drawers: dict[str, Callable[[], Figure | None]] = {
                "optimization_history": lambda: history_figure(study),
                "param_importances": lambda: importance_figure(study, found),
                "parallel_coordinate": lambda: parallel_figure(study, found),
                "curves": lambda: curves_figure(study, original_history),
            }
            for name, draw in drawers.items():
                try:
                    figure = draw()
                    if figure is None:
                        continue
                    path = Path(out_dir) / f"{name}.png"
                    figure.savefig(path, dpi=100, bbox_inches="tight")
                except Exception:  # a plot never stops the study or its report
                    continue
                written.append(str(path))
        finally:
            optuna_logger.setLevel(level)
    return written


def publish(study: optuna.Study, folder: str, tracking_uri: str | None) -> list[str]:
    """`hpo report --plots DIR`: the plots into `folder`, attached to the study's MLflow parent
    run where it has one. The original's curve comes from this machine's cache of its replay,
    else from its MLflow run."""
    history = original_history(study)
    parent, kept = record.parent_run(study), record.original(study)
    tracker = None
    if parent or (not history and kept is not None and kept.run_id):
        from hpo.track.client import Tracker

        tracker = Tracker(tracking_uri, study.study_name)
    if not history and tracker is not None and kept is not None and kept.run_id:
        history = tracker.history(kept.run_id, metric_name(study))
    paths = plots(study, folder, history)
    if parent and tracker is not None:
        tracker.log_files(parent, paths)
    return paths
