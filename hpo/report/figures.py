"""Study plots as PNG files: what `hpo report --plots DIR` writes and what each study logs to
its MLflow parent run. Reads the study only; imports nothing of hpo's study machinery.

Every plot is about the metric (the first objective of a multi-objective study), named as the
task names it, on a log axis where its values span more than two decades, with the
scikit-learn baselines and the replayed original as labelled reference lines where present."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
from optuna.trial import FrozenTrial, TrialState

from hpo.report.figure_parts import (
    ORIGINAL_COLOUR,
    TOP_CURVES,
    TOP_IMPORTANCES,
    TOP_PARAMS,
    TOP_TRIALS,
    TRIAL_COLOURS,
    axis_label,
    complete,
    legend,
    log_scale,
    lower_is_better,
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
    label = f"best so far (best: trial {top.number}, {value:.3g})"
    ax.step(steps + [last], best + best[-1:], where="post", color="tab:red", label=label)
    ax.scatter(
        [t.number for t, _ in done],
        [v for _, v in done],
        color="tab:blue",
        s=28,
        zorder=3,
        label=f"complete ({len(done)})",
    )
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
        t.user_attrs.get("outcome") != Outcome.SURPLUS
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    )
    if failed:  # a legend entry only: they have no value to draw
        ax.plot([], [], linestyle="none", label=f"failed ({failed}): no value")
    _axes(ax, study, refs, log, "trial")
    task = study.user_attrs.get("task")
    first = (
        f" (the first of {len(study.directions)} objectives)" if len(study.directions) > 1 else ""
    )
    ax.set_title(f"{task + ': ' if task else ''}{metric_name(study)}{first} of every trial")
    ax.grid(True, which="major", alpha=0.3)
    legend(ax)
    return figure


def importances(study: optuna.Study) -> dict[str, float]:
    """Parameter importances for the metric (PED-ANOVA: what sets the best trials apart), most
    important first; {} where they cannot be computed (e.g. too few complete trials)."""
    if len(complete(study)) < 2:
        return {}
    try:
        found = get_param_importances(
            study, evaluator=PedAnovaImportanceEvaluator(), target=lower_is_better(study)
        )
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}
    found = {k: v for k, v in found.items() if math.isfinite(v)}
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


def importance_figure(study: optuna.Study, found: dict[str, float]) -> Figure | None:
    """The most important parameters as horizontal bars; None without importances."""
    if not found:
        return None
    top = list(found.items())[:TOP_IMPORTANCES]
    figure, ax = new_figure(9.0, 0.9 + 0.45 * len(top))
    names = [k for k, _ in reversed(top)]
    shares = [v for _, v in reversed(top)]
    bars = ax.barh(names, shares, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2g}" for v in shares], padding=3, fontsize=9)
    ax.set_xlim(0, max(shares) * 1.15 or 1.0)
    ax.set_xlabel(
        f"importance for {metric_name(study)} (PED-ANOVA: what sets the best trials apart; "
        "all parameters sum to 1)"
    )
    shown = f"top {len(top)} of {len(found)}" if len(found) > len(top) else f"all {len(found)}"
    ax.set_title(f"What moves {metric_name(study)}: {shown} parameters")
    ax.grid(True, axis="x", alpha=0.3)
    return figure


UNSET = -0.12  # where a trial without the parameter (a conditional one) meets its axis


def _unit(values: list[Any], distribution: Any) -> tuple[list[float], list[tuple[float, str]]]:
    """Values (None: not set) mapped onto [0, 1] along one axis, and its (position, text)
    ticks; a trial without the parameter sits at UNSET, below the axis."""
    known = [v for v in values if v is not None]
    unset = [(UNSET, "(not set)")] if len(known) < len(values) else []
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in known)
    if isinstance(distribution, CategoricalDistribution) or not numeric:
        choices = list(getattr(distribution, "choices", None) or dict.fromkeys(known))
        seen = [c for c in choices if c in known]
        where = {c: (i / (len(seen) - 1) if len(seen) > 1 else 0.5) for i, c in enumerate(seen)}
        unit = [UNSET if v is None else where[v] for v in values]
        return unit, [(where[c], str(c)) for c in seen] + unset
    log = bool(getattr(distribution, "log", False)) and min(known) > 0
    unit, ticks = _scaled([float(v) for v in known], log)
    if isinstance(distribution, IntDistribution) and len(set(known)) <= 6:
        ticks = sorted({(u, str(int(v))) for u, v in zip(unit, known, strict=True)})
    positions = iter(unit)
    return [UNSET if v is None else next(positions) for v in values], ticks + unset


def _scaled(values: list[float], log: bool) -> tuple[list[float], list[tuple[float, str]]]:
    """Values mapped onto [0, 1] (by their logarithm if log) and five ticks."""
    f = math.log10 if log else float
    low, high = f(min(values)), f(max(values))
    if high == low:
        return [0.5] * len(values), [(0.5, f"{values[0]:.3g}")]
    ticks = [low + (high - low) * i / 4 for i in range(5)]
    back = (lambda x: 10**x) if log else float
    unit = [(f(v) - low) / (high - low) for v in values]
    return unit, [((t - low) / (high - low), f"{back(t):.3g}") for t in ticks]


def _wrap(name: str, width: int = 14) -> str:
    """A parameter name on lines of about width characters, broken after underscores."""
    lines = [""]
    for part in name.split("_"):
        piece = part if not lines[-1] else "_" + part
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines[-1] += "_"
            lines.append(part)
        else:
            lines[-1] += piece
    return "\n".join(lines)


def parallel_figure(study: optuna.Study, found: dict[str, float]) -> Figure | None:
    """The best trials across the metric and the TOP_PARAMS most important parameters (else
    the best trial's first ones); None with fewer than 2 complete trials."""
    trials = ranked(study)
    if len(trials) < 2:
        return None
    shown = trials[:TOP_TRIALS]
    present = {k: t.distributions[k] for t, _ in shown for k in t.params}
    names = [k for k in found if k in present][:TOP_PARAMS]
    if not names:  # no importances
        names = list(present)[:TOP_PARAMS]
    if not names:
        return None
    metric = [v for _, v in shown]
    columns = [_scaled(metric, log_scale(metric))]
    for name in names:
        columns.append(_unit([t.params.get(name) for t, _ in shown], present[name]))
    figure, ax = new_figure(11.0, 5.5)
    cmap = colormaps["viridis"]
    xs = list(range(len(columns)))
    for i in reversed(range(len(shown))):  # the best drawn last, on top
        ys = [column[0][i] for column in columns]
        colour = "tab:red" if i == 0 else cmap(i / max(len(shown) - 1, 1))
        width, alpha = (2.5, 1.0) if i == 0 else (1.0, 0.7)
        label = f"best: trial {shown[0][0].number}" if i == 0 else None
        ax.plot(xs, ys, color=colour, linewidth=width, alpha=alpha, label=label)
    box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5}
    for x, (_, ticks) in zip(xs, columns, strict=True):
        ax.axvline(x, ymin=0.0, color="0.3", linewidth=1.0)
        for y, text in ticks:
            ax.text(x + 0.03, y, text, fontsize=8, va="center", ha="left", bbox=box)
    better = "higher" if maximised(study) else "lower"
    labels = [f"{metric_name(study)}\n({better} is better)", *map(_wrap, names)]
    ax.set_xticks(xs, labels, fontsize=9)
    ax.set_xlim(-0.2, len(xs) - 0.6)
    ax.set_ylim(UNSET - 0.05, 1.05)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    of = f"best {len(shown)} of {len(trials)}" if len(trials) > len(shown) else f"all {len(shown)}"
    which = "most important" if found else "first"
    ax.set_title(
        f"{of} complete trials over the {len(names)} {which} parameters "
        "(colour: rank, dark = better)"
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
    return figure


def curves_figure(study: optuna.Study) -> Figure | None:
    """The metric per epoch of the best complete trials and of the original, the other trials
    in grey; None with fewer than 2 complete trials or none with per-epoch values."""
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
    original = original_curve(study)
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
        label = original_label(study.user_attrs["original"], ys[-1])
        style = {"linestyle": "-.", "marker": "s", "markersize": 3, "linewidth": 1.6}
        ax.plot(xs, ys, color=ORIGINAL_COLOUR, label=label, zorder=1.9, **style)  # under trials
    _axes(ax, study, refs, log, "epoch")
    also = " and the original" if original else ""
    ax.set_title(f"{metric_name(study)} per epoch: the best {len(top)} trials{also}")
    ax.grid(True, which="major", alpha=0.3)
    legend(ax)
    return figure


def plots(study: optuna.Study, out_dir: str) -> list[str]:
    """optimization_history, param_importances, parallel_coordinate and curves as PNG files
    in out_dir; the paths written. A plot that cannot be drawn yet is skipped."""
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
                "curves": lambda: curves_figure(study),
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
