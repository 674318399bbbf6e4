"""Study plots as PNG files: what `hpo report --plots DIR` writes and what each study logs to
its MLflow parent run. Reads the study only; imports nothing of hpo's study machinery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial


def lower_is_better(study: optuna.Study) -> Callable[[FrozenTrial], float] | None:
    """The importance target for the metric (the first objective): None where Optuna takes
    the direction from a single-objective study; else the metric, negated if maximised
    (Optuna's default evaluator ranks what leads to low target values)."""
    if len(study.directions) == 1:
        return None
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return lambda t: sign * t.values[0]


def plots(study: optuna.Study, out_dir: str) -> list[str]:
    """Optimisation history, parameter importances and parallel coordinates as PNG files
    (optuna's matplotlib visualisation). A plot that cannot be drawn yet is skipped."""
    import warnings
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # "fewer than 2 trials in a regime": expected early in a study, and the plot still helps
    warnings.filterwarnings("ignore", message="Some regimes for parameter")
    drawers = {
        "optimization_history": vis.plot_optimization_history,
        "param_importances": vis.plot_param_importances,
        "parallel_coordinate": vis.plot_parallel_coordinate,
    }
    kwargs: dict[str, Any] = {}
    if len(study.directions) > 1:  # one plot per objective would double them: the metric
        metric = study.user_attrs.get("metric") or "metric"
        kwargs = {"target": lambda t: t.values[0], "target_name": metric}
    written = []
    for name, draw in drawers.items():
        try:
            if name == "param_importances" and kwargs:  # what makes the metric good
                axes = draw(study, **kwargs | {"target": lower_is_better(study)})
            else:
                axes = draw(study, **kwargs)
        except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. < 2 complete trials
            continue
        figure = getattr(axes, "figure", None) or plt.gcf()
        path = Path(out_dir) / f"{name}.png"
        figure.set_size_inches(10, 6)
        figure.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(figure)
        written.append(str(path))
    return written
