"""`hpo diagnose`: what happened to the user's original config, over seeds, beside the best
config of the study and the baseline, and which parameters differ most between them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from hpo.config import Config
from hpo.data import resolve_device
from hpo.diagnose import diagnose
from hpo.errors import UserError
from hpo.report import load
from hpo.seeds import aggregate, seed_list
from hpo.study import best_trial as best_trial_of
from hpo.tasks import get_task

Echo = Callable[[str], None]
PHRASES = {
    "collapsed_to_mean": "collapsed to the mean",
    "stuck_at_chance": "stuck at chance",
    "diverged": "diverged",
    "overfitting": "overfitted",
    "ok": "trained normally",
    "failed": "failed",
}


def replay(config: Config, task, data, device, seeds: list[int], echo: Echo) -> dict[str, Any]:
    """Train `config` once per seed; per-seed final metrics and labels, and the aggregate."""
    from hpo.train import TrainingError, train

    runs = []
    for seed in seeds:
        try:
            result = train(config, data, device=device, seed=seed, augment=task.augment)
            history, reason = result.history, ""
        except TrainingError as e:
            history, reason = getattr(e, "history", []), str(e)
        label = diagnose(history, reason)
        metrics = history[-1] if history else {}
        runs.append({"seed": seed, "label": label, "metrics": metrics, "reason": reason})
        shown = f"{task.metric} {metrics[task.metric]:.4g}" if metrics else reason
        echo(f"  seed {seed}: {shown} ({label})")
    finished = [r["metrics"] for r in runs if r["metrics"]]
    agg = aggregate(finished, task.metric, task.direction, task.solved) if finished else {}
    agg["success_rate"] = sum(task.solved(r["metrics"]) for r in runs) / len(runs)
    return {"runs": runs, "aggregate": agg, "labels": Counter(r["label"] for r in runs)}


def differences(original: Config, best: Config, importances: dict[str, float]) -> list[dict]:
    """Parameters whose values differ, ranked by the study's importance (then by name)."""
    a, b = original.params(), best.params()
    rows = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            rows.append(
                {
                    "param": key,
                    "original": a.get(key),
                    "best": b.get(key),
                    "importance": importances.get(key, 0.0),
                }
            )
    rows.sort(key=lambda r: (-r["importance"], r["param"]))
    return rows


def original_epochs_of(study: Any, task_name: str) -> int | None:
    """The original's replay budget the study was created with (its spec's original_epochs,
    `--spec` included); for a study from before hpo recorded it, the shipped spec's."""
    if "original_epochs" in study.user_attrs:
        return study.user_attrs["original_epochs"]
    return _spec_original_epochs(task_name)


def _spec_original_epochs(task_name: str) -> int | None:
    """original_epochs of the task's shipped spec (box: 10 of the user's 1,000), if any."""
    from hpo.spec import SpecError, default_spec_path, load_spec

    try:
        return load_spec(default_spec_path(task_name)).original_epochs
    except SpecError:
        return None


def run(
    task_name: str,
    *,
    seeds: int,
    study_name: str | None,
    storage: str | None,
    epochs: int | None,
    device: str,
    base_seed: int,
    echo: Echo,
) -> dict[str, Any]:
    """Replay the original and the study's best over the same seeds; the answer as a dict."""
    import optuna

    task = get_task(task_name)
    study = load(study_name or task_name, storage)
    try:
        best_trial = best_trial_of(study)
    except ValueError:
        raise UserError(f"study {study.study_name!r} has no complete trial yet") from None
    best = Config.from_dict(best_trial.user_attrs["config"])
    if epochs is None:  # the same budget as the study's replay: its spec's original_epochs
        epochs = original_epochs_of(study, task_name)
    original = task.original.replace(
        epochs=min(epochs or task.original.epochs, task.original.epochs)
    )
    try:
        dev = resolve_device(device)
        settings = task.settings(study.user_attrs.get("data") or {})
    except ValueError as e:
        raise UserError(str(e)) from None
    data = task.load(settings, dev)
    chosen = seed_list(base_seed, seeds)
    echo(f"original config ({task.original_note}), {original.epochs} epochs, {seeds} seeds:")
    orig = replay(original, task, data, dev, chosen, echo)
    echo(f"best config of study {study.study_name!r} (trial {best_trial.number}), {seeds} seeds:")
    found = replay(best, task, data, dev, chosen, echo)
    import warnings

    warnings.filterwarnings("ignore", message="Some regimes for parameter")
    try:
        importances = dict(
            optuna.importance.get_param_importances(study, target=lambda t: t.values[0])
        )
    except (ValueError, RuntimeError):  # too few trials for importances
        importances = {}
    return {
        "task": task.name,
        "metric": task.metric,
        "seeds": chosen,
        "original_epochs": original.epochs,
        "of_epochs": task.original.epochs,
        "original": orig,
        "best": found | {"trial": best_trial.number},
        "baselines": study.user_attrs.get("baselines", {}),
        "differences": differences(original, best, importances),
        "data": settings,
    }


def render(answer: dict[str, Any], fmt: str = "text") -> str:
    """The answer as plain text or Markdown, ready to paste."""
    metric, k = answer["metric"], len(answer["seeds"])
    md = fmt == "markdown"

    def verdict(part: dict) -> str:
        labels = part["labels"]
        main, count = labels.most_common(1)[0]
        agg = part["aggregate"]
        text = f"{PHRASES.get(main, main)} in {count}/{k} seeds"
        if metric in agg:
            text += f"; {metric} mean {agg[metric]:.4g}, worst {agg[f'{metric}_worst']:.4g}"
        return text + f"; success rate {agg['success_rate']:.0%}"

    lines = []
    head = f"{answer['task']}: what happened and what fixed it"
    lines += [f"### {head}" if md else head, ""]
    lines.append(
        f"- Your original config ({answer['original_epochs']} of its {answer['of_epochs']} "
        f"epochs): {verdict(answer['original'])}."
    )
    lines.append(
        f"- The best config found (trial {answer['best']['trial']}): {verdict(answer['best'])}."
    )
    for name, metrics in answer["baselines"].items():
        shown = ", ".join(f"{m} {v:.4g}" for m, v in metrics.items() if m.startswith("val_"))
        lines.append(f"- Baseline `{name}`: {shown}." if md else f"- Baseline {name}: {shown}.")
    diffs = answer["differences"][:8]
    if diffs:
        lines += ["", "What differs most (by the study's parameter importance):", ""]
        if md:
            lines += ["| parameter | original | best | importance |", "| --- | --- | --- | --- |"]
            lines += [
                f"| `{d['param']}` | {_fmt(d['original'])} | {_fmt(d['best'])} "
                f"| {d['importance']:.2f} |"
                for d in diffs
            ]
        else:
            lines += [
                f"  {d['param']:<18} {_fmt(d['original']):>12} -> {_fmt(d['best']):<12} "
                f"(importance {d['importance']:.2f})"
                for d in diffs
            ]
    lines += ["", f"(seeds {answer['seeds']}, data {answer['data']})"]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
