"""The end-of-study summary as the terminal shows it."""

from __future__ import annotations

from typing import Any

from hpo.report.table import front_lines
from hpo.study.options import Summary


def format_summary(s: Summary) -> str:
    """The end-of-study summary: best trial beside the baseline and the original config."""
    lines = [
        f"study {s.study_name}: {s.finished}/{s.trials} trials finished ({s.metric}, "
        f"{s.direction})"
    ]
    if s.best:
        label = _label(s.best.get("diagnosis"))
        lines.append(
            f"  best      trial {s.best['number']}: {_metrics(s.best['metrics'], s.seeds)}{label}"
        )
        params = ", ".join(f"{k}={fmt(v)}" for k, v in s.best["searched"].items())
        lines.append(f"            {params}")
        if s.best.get("local_move"):
            lines.append(f"            found by a local move: {s.best['local_move']}")
    else:
        lines.append("  best      no complete trial yet")
    if s.cut:
        c = s.cut
        lines.append(
            f"  cut short trial {c['number']}: {s.metric} {fmt(c['value'])} after {c['epochs']} "
            f"epoch(s), then pruned ({c['reason']})"
        )
        lines.append(
            "            it beat every complete trial: a larger --trial-timeout (or a GPU) "
            "lets such a trial finish"
        )
    if len(s.objectives) > 1:
        lines.append(f"  Pareto front ({', '.join(s.objectives)}), {len(s.pareto)} trial(s):")
        lines += [f"            {line}" for line in front_lines(s.objectives, s.pareto)]
    for name, metrics in s.baselines.items():
        lines.append(f"  baseline  {name}: {_metrics(metrics)}")
    if s.original:
        o = s.original
        how = f"{o.epochs}/{o.of_epochs} epochs" + (
            f", {o.status}: {o.reason}" if o.status != "ok" else ""
        )
        how += f", {o.diagnosis}" if o.diagnosis not in (None, "ok") else ""
        lines.append(f"  original  {_metrics(o.metrics)} ({how})")
    if s.timing:
        lines.append(f"  {s.timing}")
    return "\n".join(lines)


PER_SEED = ("_std", "_worst")  # with success_rate: statistics over a config's seeds
DIAGNOSTIC = ("_over_chance", "_pred_spread")  # inputs of the diagnosis label, shown as it


def _metrics(m: dict[str, float], seeds: int = 1) -> str:
    """The validation metrics of one line; the per-seed statistics only where the study
    trains every config under more than one seed (a single seed's success_rate 0, std 0 and
    worst = mean read as failures and tell nothing)."""
    keys = [k for k in m if k.startswith("val_") and k != "val_loss"] or list(m)
    keys = [k for k in keys if not k.endswith(DIAGNOSTIC)]
    if seeds > 1:
        keys += ["success_rate"] if "success_rate" in m else []
    else:
        keys = [k for k in keys if not k.endswith(PER_SEED) and k != "success_rate"]
    return ", ".join(f"{k} {fmt(m[k])}" for k in keys)


def _label(diagnosis: str | None) -> str:
    """The failure label of a run, where it failed ('' for ok)."""
    return f" ({diagnosis})" if diagnosis not in (None, "ok") else ""


def fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
