"""Leaderboards from a study's storage: a pandas table, CSV, or the JSON contract."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import optuna
import pandas as pd

from hpo.final.scores import kept
from hpo.search import record
from hpo.search.space import KNOBS
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


WIDTH = 120  # characters: the table fits a terminal of this width
PER_SEED = ("_std", "_worst")  # a config's spread over its seeds: nothing with one seed
DIAGNOSTIC = ("_pred_spread", "_over_chance", "_loss")  # inputs of the labels, not results
NOTE = 30  # characters of a trial's note (its diagnosis, or why it stopped)


def leaderboard(data: dict[str, Any], top: int | None = None):
    """A pandas DataFrame of everything: trials ranked by the metric, then the reference rows
    (the baselines, the original); every metric and every param."""
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
                **t["params"],
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


def compact(data: dict[str, Any], frame: pd.DataFrame, width: int = WIDTH) -> tuple[str, int]:
    """The leaderboard as text at most `width` wide, and how many params it left out: rank,
    trial, state, the metric and the other results that say something, seconds, a short note,
    then the params that differ among the rows shown, as many as fit."""
    if frame.empty:
        return "(no trials yet)", 0
    trials = frame["state"] != "REFERENCE"
    out = pd.DataFrame({"rank": [i + 1 if t else None for i, t in enumerate(trials)]})
    # a reference's kind in the trial column, its name in the note: the table stays narrow
    out["trial"] = [str(t).partition(":")[0] for t in frame["trial"]]
    out["state"] = frame["state"]
    for column in _results(data, frame):
        out[column] = frame[column]
    out["seconds"] = frame.get("seconds")
    out["note"] = [str(r["trial"]).partition(":")[2] or _note(r) for _, r in frame.iterrows()]
    out = out.dropna(axis=1, how="all")
    varying = [c for c in _params(frame) if frame.loc[trials, c].astype(str).nunique() > 1]
    shown, left = out, 0
    for i, column in enumerate(varying):
        wider = pd.concat([shown, frame[[column]]], axis=1)
        if _width(wider) > width:
            left = len(varying) - i
            break
        shown = wider
    return _text(shown), left


def _results(data: dict[str, Any], frame: pd.DataFrame) -> list[str]:
    """The metric, then the other validation results that say something here: not the inputs
    of the labels, nor the statistics over seeds of a study whose configs ran one seed (a
    std of 0 and a worst equal to the mean)."""
    std = f"{data['metric']}_std"
    several = any(t["metrics"].get(std) for t in data["trials"])
    out = [data["metric"]]
    for column in frame.columns:
        if not column.startswith("val_") or column == data["metric"]:
            continue
        if column.endswith(DIAGNOSTIC) or (column.endswith(PER_SEED) and not several):
            continue
        out.append(column)
    return out


def _params(frame: pd.DataFrame) -> list[str]:
    """The param columns, in the order of the knobs' table (hpo.search.space.KNOBS)."""
    known = {"trial", "state", "seconds", "diagnosis", "reason", "success_rate"}
    params = [c for c in frame.columns if c not in known and not c.startswith("val_")]
    order = {knob.name: i for i, knob in enumerate(KNOBS)}
    return sorted(params, key=lambda c: (order.get(re.sub(r"_\d+$", "", c), len(order)), c))


SHORT = (  # a trial's reason as its note
    (re.compile(r"pruned by (\w+) at epoch (\d+)"), r"\1 at epoch \2"),
    (re.compile(r"(trial_timeout [\d.]+ s|--timeout [\d.]+ s).*epoch (\d+)"), r"\1, epoch \2"),
    (re.compile(r"dead at epoch (\d+).*"), r"dead at epoch \1"),
)


def _note(row: pd.Series) -> str:
    """A row's diagnosis where it is not ok, else why it stopped, in a few words (NOTE
    characters at most)."""
    diagnosis = row.get("diagnosis")
    text = diagnosis if isinstance(diagnosis, str) and diagnosis != "ok" else ""
    reason = row.get("reason")
    if isinstance(reason, str) and reason and row.get("state") != "COMPLETE":
        text = reason
        for pattern, short in SHORT:
            if pattern.search(reason):
                text = pattern.sub(short, reason)
                break
    return text if len(text) <= NOTE else text[: NOTE - 1] + "…"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _text(frame: pd.DataFrame) -> str:
    """One space between columns, text to the left, numbers to the right, '-' for none."""
    columns = []
    for name in frame.columns:
        cells = [_cell(v) for v in frame[name]]
        if name == "seconds":
            cells = [
                c if c == "-" else f"{v:.1f}" for c, v in zip(cells, frame[name], strict=True)
            ]
        width = max(len(name), *map(len, cells))
        pad = str.rjust if _numbers(frame[name]) else str.ljust
        columns.append([pad(name, width), *(pad(c, width) for c in cells)])
    return "\n".join(" ".join(row).rstrip() for row in zip(*columns, strict=True))


def _numbers(column: pd.Series) -> bool:
    values = [v for v in column if v is not None and v == v]
    numeric = [isinstance(v, int | float) and not isinstance(v, bool) for v in values]
    return bool(values) and all(numeric)


def _width(frame: pd.DataFrame) -> int:
    return max(len(line) for line in _text(frame).splitlines())


def render(
    data: dict[str, Any], fmt: str, top: int | None = None, all_columns: bool = False
) -> str:
    """The report as text: 'table' (WIDTH characters wide, or every column), 'csv' (every
    column) or 'json'."""
    if fmt == "json":
        return json.dumps(_clean(data), indent=2)
    frame = leaderboard(data, top)
    if fmt == "csv":
        return frame.to_csv(index=False)
    states = [t["state"] for t in data["trials"]]
    words = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
    counts = ", ".join(f"{states.count(s)} {w}" for s, w in words.items() if s in states)
    head = (
        f"study {data['study']} - task {data['task']} - {data['metric']} ({data['direction']})"
        f" - {states.count('COMPLETE') + states.count('PRUNED')} finished ({counts})"
    )
    if all_columns:
        with pd.option_context("display.max_columns", None, "display.width", None):
            table = frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        left = 0
    else:
        table, left = compact(data, frame)
    lines = [head, table]
    if left:
        lines.append(f"({left} more param(s) differ; --all-columns shows every column)")
    extra = [part for part in (_front(data), _finalists(data)) if part]
    return "\n".join([*lines, *extra])


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
