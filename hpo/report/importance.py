"""What moves the metric: parameter importances (PED-ANOVA) as bars, and the best trials over the
most important parameters as parallel coordinates."""

from __future__ import annotations

import math
from typing import Any

import optuna
from matplotlib import colormaps
from matplotlib.figure import Figure
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

from hpo.report.figure_parts import (
    TOP_IMPORTANCES,
    TOP_PARAMS,
    TOP_TRIALS,
    complete,
    log_scale,
    lower_is_better,
    maximised,
    metric_name,
    new_figure,
    ranked,
)


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
