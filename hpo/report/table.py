"""Leaderboards from a study's storage: a pandas table, CSV, or the JSON contract."""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
import pandas as pd

from hpo.final.scores import kept
from hpo.search import record
from hpo.study.queries import best_trial, pareto_front, trial_record


def build(study: optuna.Study) -> dict[str, Any]:
    """The JSON contract: study, task, metric, direction, trials, best, baselines, original,
    and `hpo train --best`'s finalists (null before it ran)."""
    info = record.info(study)
    trials = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    try:
        best = trial_record(best_trial(study))
    except ValueError:
        best = None
    original = record.original(study)
    return {
        "study": study.study_name,
        "task": info.task,
        "metric": info.metric,
        "direction": study.directions[0].name.lower(),
        # multi-objective studies: every objective with its direction, and the Pareto front
        "objectives": {
            name: d.name.lower()
            for name, d in zip(info.objectives or [info.metric], study.directions, strict=False)
        },
        "pareto_front": pareto_front(study),
        "trials": trials,
        "best": best,
        "finalists": kept(study),
        "baselines": record.baselines(study) or {},
        "original": original.metrics if original else None,
        "original_replay": (
            {
                "epochs": original.epochs,
                "of_epochs": original.of_epochs,
                "status": original.status,
                "reason": original.reason,
                "device": original.device,
                "diagnosis": original.diagnosis,
            }
            if original
            else None
        ),
    }


def leaderboard(data: dict[str, Any], top: int | None = None):
    """A pandas DataFrame: trials ranked by the metric, then the reference rows."""
    metric = data["metric"]
    rows = []
    for t in data["trials"]:
        rows.append(
            {
                "rank_key": t["value"],
                "trial": t["number"],
                "state": t["state"],
                metric: t["metrics"].get(metric, t["value"]),
                **{k: v for k, v in t["metrics"].items() if k.startswith("val_") and k != metric},
                "seconds": t["seconds"],
                "diagnosis": t.get("diagnosis"),
                "reason": t["reason"],
                **_short_params(t["params"]),
            }
        )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        ascending = data["direction"] == "minimize"
        frame = frame.sort_values("rank_key", ascending=ascending, na_position="last")
        frame = frame.drop(columns="rank_key")
        if top:
            frame = frame.head(top)
    refs = [
        {"trial": f"baseline:{name}", "state": "REFERENCE", **m}
        for name, m in data["baselines"].items()
    ]
    if data["original"]:
        diagnosis = (data.get("original_replay") or {}).get("diagnosis")
        refs.append(
            {"trial": "original", "state": "REFERENCE", "diagnosis": diagnosis, **data["original"]}
        )
    if refs:
        keep = [c for c in frame.columns] if not frame.empty else ["trial", "state", metric]
        ref_frame = pd.DataFrame(refs)
        ref_frame = ref_frame[[c for c in ref_frame.columns if c in keep]]
        frame = pd.concat([frame, ref_frame], ignore_index=True)
    return frame.reset_index(drop=True)


_SHOWN = (
    "depth",
    "conv_channels_0",
    "dense_layers",
    "dense_units_0",
    "activation",
    "batch_norm",
    "optimizer",
    "lr",
    "batch_size",
    "epochs",
)


def _short_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in _SHOWN if k in params}


def render(data: dict[str, Any], fmt: str, top: int | None = None) -> str:
    """The report as text: 'table', 'csv' or 'json'."""
    if fmt == "json":
        return json.dumps(_clean(data), indent=2)
    frame = leaderboard(data, top)
    if fmt == "csv":
        return frame.to_csv(index=False)
    with pd.option_context("display.max_columns", 30, "display.width", 160):
        head = (
            f"study {data['study']} - task {data['task']} - {data['metric']} ({data['direction']})"
            f" - {sum(t['state'] in ('COMPLETE', 'PRUNED') for t in data['trials'])} finished"
        )
        table = frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        extra = [part for part in (_front(data), _finalists(data)) if part]
        return "\n".join([head, table, *extra])


def _finalists(data: dict[str, Any]) -> str:
    """`hpo train --best`'s finalists: study value, fresh seeds, their score, and the pick."""
    kept_ = data.get("finalists")
    if not kept_:
        return ""
    show = lambda v: v if isinstance(v, str) else f"{v:.4g}"  # noqa: E731
    lines = [f"finalists of hpo train --best (fresh seeds, {kept_['objective']}):"]
    for f in kept_["trials"]:
        runs = ", ".join(f"seed {s} {show(v)}" for s, v in f["fresh"].items())
        score = "failed" if f["score"] is None else show(f["score"])
        mark = "  <- picked" if f["number"] == kept_["picked"] else ""
        study = show(f["study_value"])
        lines.append(f"  trial {f['number']}: study {study}; {runs} -> {score}{mark}")
    return "\n".join(lines)


def _front(data: dict[str, Any]) -> str:
    """Multi-objective studies: the Pareto front, cheapest first."""
    if not data.get("pareto_front"):
        return ""
    front = set(data["pareto_front"])
    rows = [t for t in data["trials"] if t["number"] in front]
    lines = [f"Pareto front ({', '.join(f'{n} {d}' for n, d in data['objectives'].items())}):"]
    lines += [f"  {line}" for line in front_lines(list(data["objectives"]), rows)]
    return "\n".join(lines)


def front_lines(names: list[str], trials: list[dict[str, Any]]) -> list[str]:
    """'trial N: metric v, train_seconds s' per Pareto-front trial record, cheapest first
    (shared by `hpo report` and the study summary)."""
    return [
        f"trial {t['number']}: "
        + ", ".join(f"{n} {v:.4g}" for n, v in zip(names, t["values"], strict=True))
        for t in sorted(trials, key=lambda t: t["values"][-1])
    ]


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null (the contract is strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
