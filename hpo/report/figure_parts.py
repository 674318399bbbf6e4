"""What the study plots read from a study and share: the metric and its direction, each
trial's value, the reference lines (baselines, the replayed original), the log-axis rule and
the figure helpers. Used by hpo.report.figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import optuna
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from hpo.search import record
from hpo.util.values import finite, sign

TOP_PARAMS = 5  # parameter axes of the parallel-coordinate plot
TOP_IMPORTANCES = 10  # bars of the importance plot
TOP_TRIALS = 30  # trials drawn in the parallel-coordinate plot
TOP_CURVES = 5  # trials whose per-epoch curves are drawn in colour
LOG_SPAN = 100.0  # max / min of the positive values above which the metric axis is log
BASELINE_COLOURS = ("tab:green", "tab:olive", "tab:cyan", "tab:pink", "tab:gray")
BASELINE_DASHES = ("--", ":", (0, (6, 2, 1, 2)))  # two baselines at one value stay apart
TRIAL_COLOURS = ("tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown")
ORIGINAL_COLOUR = "black"


def lower_is_better(study: optuna.Study) -> Callable[[FrozenTrial], float] | None:
    """The importance target for the metric (the first objective): None where Optuna takes
    the direction from a single-objective study; else the metric, negated if maximised
    (PED-ANOVA, Optuna's default, ranks what leads to low target values)."""
    if len(study.directions) == 1:
        return None
    lower = -sign(study.directions[0])
    return lambda t: lower * t.values[0]


def metric_name(study: optuna.Study) -> str:
    """The metric as the task names it (e.g. val_mse), else 'objective value'."""
    return str(record.info(study).metric or "objective value")


def maximised(study: optuna.Study) -> bool:
    """Whether the metric (the first objective) is maximised."""
    return sign(study.directions[0]) > 0


def trial_value(trial: FrozenTrial) -> float | None:
    """The metric of a complete trial; of a pruned one, its last reported (epoch) value.
    None where there is no finite value."""
    if trial.state == TrialState.COMPLETE and trial.values:
        return finite(trial.values[0])
    if trial.state == TrialState.PRUNED:
        if trial.intermediate_values:
            return finite(trial.intermediate_values[max(trial.intermediate_values)])
        return finite(trial.value) if trial.values else None
    return None


def complete(study: optuna.Study) -> list[tuple[FrozenTrial, float]]:
    """(trial, metric) of the complete trials with a finite metric, by trial number."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pairs = [(t, trial_value(t)) for t in trials]
    return sorted(((t, v) for t, v in pairs if v is not None), key=lambda p: p[0].number)


def ranked(study: optuna.Study) -> list[tuple[FrozenTrial, float]]:
    """The complete trials, best metric first."""
    better = sign(study.directions[0])
    return sorted(complete(study), key=lambda p: (-better * p[1], p[0].number))


class Ref(NamedTuple):
    """A reference line: a baseline or the original."""

    label: str
    value: float | None
    colour: str
    original: bool = False
    dashes: Any = "--"


def references(study: optuna.Study) -> list[Ref]:
    """(label, metric value or None, colour) of the baselines and the original, as the study
    keeps them. A reference without a value (e.g. a diverged original) keeps its label, so the
    legend says why its line is missing."""
    metric = metric_name(study)
    out: list[Ref] = []
    baselines = record.baselines(study) or {}
    if isinstance(baselines, dict):
        for i, (name, metrics) in enumerate(baselines.items()):
            value = finite(metrics.get(metric)) if isinstance(metrics, dict) else None
            label = f"baseline {name}" + (f": {value:.3g}" if value is not None else ": no value")
            colour = BASELINE_COLOURS[i % len(BASELINE_COLOURS)]
            out.append(Ref(label, value, colour, dashes=BASELINE_DASHES[i % 3]))
    original = record.original(study)
    if original is not None:
        value = finite(original.metrics.get(metric))
        out.append(Ref(original_label(original, value), value, ORIGINAL_COLOUR, True))
    return out


def original_label(original: record.Replay, value: float | None) -> str:
    """'original (10/1000 epochs, collapsed_to_mean): 0.351' and the like."""
    notes = [f"{original.epochs}/{original.of_epochs} epochs"] if original.of_epochs else []
    status = original.status
    if status != "ok":
        notes.append(status)
    diagnosis = original.diagnosis
    if diagnosis and diagnosis not in ("ok", "healthy", status):
        notes.append(str(diagnosis))
    label = "original" + (f" ({', '.join(notes)})" if notes else "")
    if value is not None:
        return f"{label}: {value:.3g}"
    reason = str(original.reason or "")
    return f"{label}: no value" + (f" ({reason[:50]})" if reason else "")


def original_curve(
    study: optuna.Study, history: list[dict[str, float]] | None = None
) -> list[tuple[int, float]]:
    """(epoch, metric) of the replayed original, epochs counted from 1 as trials report them:
    from its `history` (each epoch's metrics), else from the study (where an older hpo kept
    the whole replay)."""
    if not history:
        original = record.original(study)
        history = original.history if original is not None else []
    metric = metric_name(study)
    points = []
    for epoch, row in enumerate(history, start=1):
        value = finite(row.get(metric)) if isinstance(row, dict) else None
        if value is not None:
            points.append((epoch, value))
    return points


def log_scale(values: list[float]) -> bool:
    """A log axis where every value is positive and they span more than two decades."""
    if not values or min(values) <= 0:
        return False
    return max(values) / min(values) > LOG_SPAN


def axis_label(study: optuna.Study, log: bool) -> str:
    better = "higher" if maximised(study) else "lower"
    return f"{metric_name(study)} ({'log scale, ' if log else ''}{better} is better)"


def reference_lines(ax: Axes, refs: list[Ref]) -> None:
    for ref in refs:
        if ref.value is None:  # a legend entry only, saying why the line is missing
            ax.plot([], [], linestyle="none", label=ref.label)
        else:
            style = "-." if ref.original else ref.dashes
            ax.axhline(
                ref.value, color=ref.colour, linestyle=style, linewidth=1.3, label=ref.label
            )


def new_figure(width: float = 10.0, height: float = 5.5) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), dpi=100)
    return figure, figure.add_subplot()


def legend(ax: Axes) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
