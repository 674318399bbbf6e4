"""`hpo diagnose`: what happened to the user's original config over seeds, whether that is the
failure the user reported, and what fixed it, measured by ablation (hpo.ablation): single
changes from the original, a smallest set of changes that succeeds in K of K seeds, and the
reverse from the study's best config."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from hpo import ablation
from hpo.ablation import display
from hpo.config import Config
from hpo.data import TaskData, resolve_device
from hpo.errors import UserError
from hpo.report import load
from hpo.seeds import seed_list
from hpo.spec import PER_BLOCK, Param
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


def study_space(study: Any, task_name: str) -> dict[str, Param]:
    """The search space the study sampled (from its trials' distributions, `--spec` included);
    the shipped spec's when it has no trial."""
    from optuna.distributions import CategoricalDistribution

    out: dict[str, Param] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, dist in trial.distributions.items():
            stem = name.rsplit("_", 1)[0]
            knob = stem if stem in PER_BLOCK and re.search(r"_\d+$", name) else name
            if knob in out:
                continue
            if isinstance(dist, CategoricalDistribution):
                out[knob] = Param(knob, choices=tuple(dist.choices))
            else:
                step = None if dist.log or dist.step in (None, 1) else dist.step
                out[knob] = Param(knob, low=dist.low, high=dist.high, log=dist.log, step=step)
    if out:
        return out
    from hpo.spec import SpecError, default_spec_path, load_spec

    try:
        return load_spec(default_spec_path(task_name)).space
    except SpecError:
        return {}


def epoch_seconds(config: Config, data: TaskData, device: Any, task: Any) -> float | None:
    """Seconds one epoch of `config` takes here, timed on 3 batches (None if it cannot run)."""
    from hpo.train import Trainer

    n = min(len(data.train), 3 * config.batch_size)
    small = TaskData(data.train.take(n), data.val.take(n), data.kind, data.n_outputs)
    try:
        trainer = Trainer(
            config.replace(epochs=1), small, device=device, augment=task.augment, validate=False
        )
        t0 = time.monotonic()
        trainer.run_epoch()
    except (ValueError, RuntimeError):
        return None
    per_image = (time.monotonic() - t0) / n
    return per_image * (len(data.train) + len(data.val) / 3)  # evaluation: ~1/3 of a step


def _cached_original(task, settings, config: Config, device, seed: int) -> dict | None:
    """The study's replay of the original for this seed (hpo.references' cache), if any, as
    an ablation run (its full budget: it was not stopped early)."""
    from hpo import references
    from hpo.diagnose import diagnose

    key = references._key(
        task=task.name, data=settings, config=config.to_dict(), device=device.type, seed=seed
    )
    path = references.cache_dir() / "originals" / f"{key}.json"
    if not path.exists():
        return None
    try:
        found = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    history = found.get("history") or []
    return {
        "seed": seed,
        "epochs": len(history),
        "metrics": dict(history[-1]) if history else {},
        "solved": bool(history) and task.solved(history[-1]),
        "label": diagnose(history, found.get("reason", "")),
        "stopped": "budget" if found.get("status") == "ok" else "error",
        "reason": found.get("reason", ""),
        "seconds": found.get("seconds", 0.0),
    }


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
    data: dict[str, Any] | None = None,
    screen_all: bool = False,
    full_budget: bool = False,
    reverse: bool = True,
) -> dict[str, Any]:
    """Replay the original, ablate it, and reverse-ablate the study's best; the answer."""
    t_start = time.monotonic()
    task = get_task(task_name)
    study = load(study_name or task_name, storage)
    try:
        best_trial = best_trial_of(study)
    except ValueError:
        raise UserError(f"study {study.study_name!r} has no complete trial yet") from None
    best = Config.from_dict(best_trial.user_attrs["config"])
    if epochs is None:  # the same budget as the study's replay: its spec's original_epochs
        epochs = original_epochs_of(study, task_name)
    budget = min(epochs or task.original.epochs, task.original.epochs)
    original = task.original.replace(epochs=budget)
    try:
        dev = resolve_device(device)
        settings = task.settings((study.user_attrs.get("data") or {}) | (data or {}))
    except ValueError as e:
        raise UserError(str(e)) from None
    loaded = task.load(settings, dev)
    chosen = seed_list(base_seed, seeds)
    space = study_space(study, task.name)
    changes = ablation.single_changes(original, space)

    # the cost, first
    per_epoch = epoch_seconds(original, loaded, dev, task)
    runs_worst = seeds * (2 + len(changes)) + len(ablation.reverse_changes(best, original))
    if per_epoch is not None:
        echo(
            f"cost: ~{per_epoch:.0f} s an epoch of the original here (timed on 3 batches); "
            f"the original and the best config on {seeds} seeds, {len(changes)} single changes "
            f"screened on 1 seed{'' if screen_all else ' until one succeeds on all seeds'}, "
            f"each run <= {budget} epochs: at most ~{runs_worst * budget * per_epoch / 60:.0f} "
            "min, usually far less (runs stop once solved or hopeless; --epochs and "
            "--data KEY=VALUE shrink it)"
        )
    runner = ablation.Runner(task, loaded, settings, dev, budget, echo, full_budget=full_budget)
    echo(f"original config ({task.original_note}), {budget} epochs, {seeds} seeds:")
    orig_runs = []
    for s in chosen:
        found = _cached_original(task, settings, original, dev, s)
        if found is not None:
            echo(f"  original seed {s}: {ablation.describe(found, task)} (study's replay)")
        orig_runs.append(found or runner.run(original, s, "original"))
    orig = ablation.summarise(orig_runs, task, seeds)
    repro = ablation.reproduced(task.name, orig_runs)

    fixes: dict[str, Any]
    if ablation.confirmed(orig):
        echo("the original succeeds on every seed here: nothing to ablate")
        fixes = {"singles": [], "screened": 0, "of": len(changes), "smallest": None}
    else:
        echo(f"single changes from the original ({len(changes)}), screened on seed {chosen[0]}:")
        fixes = ablation.forward(
            runner, original, changes, chosen, screen_all, orig["success_value"]
        )
    echo(f"best config of study {study.study_name!r} (trial {best_trial.number}), {seeds} seeds:")
    found_best = ablation.summarise([runner.run(best, s, "best") for s in chosen], task, seeds)
    back = []
    if reverse:
        echo("from the best config, one original value put back at a time:")
        solved_first = found_best["runs"][0]["solved"]
        back = ablation.backward(runner, best, original, chosen, confirm=solved_first)
    return {
        "task": task.name,
        "study": study.study_name,
        "metric": task.metric,
        "success": {"metric": task.success[0], "threshold": task.success[1]},
        "seeds": chosen,
        "budget_epochs": budget,
        "of_epochs": task.original.epochs,
        "stops": "at the budget" if full_budget else "once solved, or once hopeless",
        "original": orig,
        "reported_failure": repro,
        "ablation": fixes,
        "best": found_best | {"trial": best_trial.number, "config": best.params()},
        "reverse": back,
        "baselines": study.user_attrs.get("baselines", {}),
        "data": settings,
        "device": dev.type,
        "runs_trained": runner.runs,
        "seconds": time.monotonic() - t_start,
    }


def sentence(answer: dict[str, Any]) -> str:
    """The answer in one sentence."""
    k = len(answer["seeds"])
    orig, fixes = answer["original"], answer["ablation"]
    name = display(answer["success"]["metric"])
    if ablation.confirmed(orig):
        return f"The original already succeeds in {k}/{k} seeds here: there is nothing to fix."
    smallest = fixes.get("smallest")
    if not smallest:
        tried = f"{fixes['screened']} single changes"
        if fixes.get("greedy"):
            tried += f" and a greedy set of up to {len(fixes['greedy'])}"
        return f"None of the {tried} succeeded in {k}/{k} seeds."
    result = smallest["result"]
    texts = [c["change"] for c in smallest["changes"]]
    what = f"{texts[0]} alone fixes it" if len(texts) == 1 else f"{' + '.join(texts)} fix it"
    value = result["success_value"]
    epochs = max(result["epochs"])
    return (
        f"{what}: {result['solved']}/{k} seeds, {name} {value:.3f}"
        f" (by epoch {epochs} of {answer['budget_epochs']})."
    )


def render(answer: dict[str, Any], fmt_name: str = "text") -> str:
    """The answer as plain text, Markdown ready to paste, or JSON for scripts."""
    if fmt_name == "json":
        return json.dumps(answer, indent=1, default=str)
    md = fmt_name == "markdown"
    k = len(answer["seeds"])
    sname = answer["success"]["metric"]
    metric = answer["metric"]

    def verdict(part: dict) -> str:
        labels = part["labels"]
        main = max(labels, key=labels.get)
        text = f"{PHRASES.get(main, main)} in {labels[main]}/{part['seeds_run']} seeds"
        if part["success_value"] is not None:
            text += f"; {display(sname)} mean {part['success_value']:.4g}"
        return text + f"; solved in {part['solved']}/{part['seeds_run']}"

    lines: list[str] = []
    head = f"{answer['task']}: what happened and what fixed it"
    lines += [f"### {head}" if md else head, "", sentence(answer), ""]
    lines.append(
        f"- Your original config ({answer['budget_epochs']} of its {answer['of_epochs']} "
        f"epochs): {verdict(answer['original'])}."
    )
    repro = answer["reported_failure"]
    if repro:
        if repro["seeds"]:
            lines.append(
                f'- The reported failure ("{repro["reported"]}") is reproduced in '
                f"{repro['seeds']}/{repro['of']} seeds."
            )
        else:
            m = answer["original"]
            shown = (
                f"{display(sname)} {m['success_value']:.4g}"
                if m["success_value"] is not None
                else "no finished epoch"
            )
            lines.append(
                f'- The reported failure ("{repro["reported"]}") is NOT reproduced: the '
                f"replayed original reaches {shown} (mean of {repro['of']} seeds) after "
                f"{max(m['epochs'])} of its {answer['of_epochs']} epochs, in PyTorch, on "
                f"{answer['device']}, with data {answer['data']}."
            )
    lines.append(
        f"- The best config found (trial {answer['best']['trial']}): {verdict(answer['best'])}."
    )
    for name, metrics in answer["baselines"].items():
        shown = ", ".join(f"{m} {v:.4g}" for m, v in metrics.items() if m.startswith("val_"))
        lines.append(f"- Baseline `{name}`: {shown}." if md else f"- Baseline {name}: {shown}.")

    fixes = answer["ablation"]
    if fixes["singles"]:
        note = (
            ""
            if fixes["screened"] == fixes["of"]
            else (f"; stopped at the first that succeeds in {k}/{k}, --all screens the rest")
        )
        lines += [
            "",
            f"Single changes from the original ({fixes['screened']} of {fixes['of']} run, "
            f"screened on 1 seed, confirmed on {k} when solved there{note}):",
            "",
        ]
        lines += _table(fixes["singles"], sname, metric, md)
    if fixes.get("greedy"):
        lines += [
            "",
            "No single change succeeds on every seed. Greedy set: the best change of each knob "
            "added in the order of its screened effect, kept only if it helps:",
            "",
        ]
        greedy = [
            s | {"change": ("+ " if s["kept"] else "(left out) + ") + s["added"]}
            for s in fixes["greedy"]
        ]
        lines += _table(greedy, sname, metric, md)
    if answer["reverse"]:
        how = (
            f"a put-back that breaks it is necessary; run on {k} seeds when it fails on the first"
            if answer["best"]["runs"][0]["solved"]
            else "the best config fails on the first seed itself, so each is screened on it only"
        )
        lines += ["", f"From the best config, one original value put back ({how}):", ""]
        lines += _table(answer["reverse"], sname, metric, md)
    lines += [
        "",
        f"(every run at the original's budget of {answer['budget_epochs']} epochs, stopped "
        f"{answer['stops']}; seeds {answer['seeds']}; data {answer['data']}; "
        f"{answer['runs_trained']} runs trained, {answer['seconds'] / 60:.1f} min)",
    ]
    return "\n".join(lines)


def _table(rows: list[dict[str, Any]], sname: str, metric: str, md: bool) -> list[str]:
    def cells(r: dict[str, Any]) -> list[str]:
        sv, mv = r["success_value"], r["metric_value"]
        return [
            r["change"],
            f"{r['solved']}/{r['seeds_run']}",
            "-" if sv is None else f"{sv:.4f}",
            "-" if mv is None else f"{mv:.4g}",
            ",".join(str(e) for e in r["epochs"]),
            ", ".join(f"{PHRASES.get(k, k)} {v}" for k, v in r["labels"].items()),
        ]

    head = ["change", "solved", display(sname), metric, "epochs", "outcome"]
    if md:
        out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        return out + ["| " + " | ".join(cells(r)) + " |" for r in rows]
    width = max(len(r["change"]) for r in rows)
    out = [f"  {head[0]:<{width}}  {head[1]:>6}  {head[2]:>12}  {head[3]:>9}  {head[4]:<8}"]
    for r in rows:
        c = cells(r)
        out.append(f"  {c[0]:<{width}}  {c[1]:>6}  {c[2]:>12}  {c[3]:>9}  {c[4]:<8}  {c[5]}")
    return out


def log_to_mlflow(answer: dict[str, Any], storage: str | None, tracking_uri: str | None) -> str:
    """The answer as an MLflow run of the study's experiment (kind=diagnosis, under the
    study's run) with one nested run per variant (kind=ablation), comparable in the UI."""
    import tempfile
    from pathlib import Path

    from hpo.tracking import Tracker

    study = load(answer["study"], storage)
    tracker = Tracker(tracking_uri, study.study_name)
    parent = study.user_attrs.get("mlflow_parent_run_id")
    run_id = tracker.start_run(parent, "diagnose", {"kind": "diagnosis", "task": answer["task"]})
    tracker.log_params(
        run_id,
        {
            "seeds": answer["seeds"],
            "budget_epochs": answer["budget_epochs"],
            "stops": answer["stops"],
            "data": answer["data"],
        },
    )
    tracker.set_tags(run_id, {"answer": sentence(answer)[:5000]})
    orig = answer["original"]
    tracker.log_metrics(
        run_id,
        {
            "original_solved": orig["solved"],
            "best_solved": answer["best"]["solved"],
            "seconds": answer["seconds"],
        },
    )
    rows = [("forward", r) for r in answer["ablation"]["singles"]]
    rows += [
        ("greedy", r | {"change": " + ".join(c["change"] for c in r["changes"])})
        for r in answer["ablation"].get("greedy") or []
    ]
    rows += [("reverse", r) for r in answer["reverse"]]
    rows += [
        ("original", orig | {"change": "original"}),
        ("best", answer["best"] | {"change": "best"}),
    ]
    for direction, r in rows:
        metrics = {
            "solved": r["solved"],
            "seeds_run": r["seeds_run"],
            "success_rate": r["solved"] / r["seeds_run"],
            "epochs_run": sum(r["epochs"]) / len(r["epochs"]),
        }
        if r["success_value"] is not None:
            metrics[r["success_metric"]] = r["success_value"]
        if r["metric_value"] is not None:
            metrics[r["metric"]] = r["metric_value"]
        tracker.log_reference(
            run_id,
            "ablation",
            r["change"][:200],
            metrics,
            params={"direction": direction, "change": r["change"][:500], "knob": r.get("knob")},
            tags={"direction": direction},
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "diagnosis.md"
        path.write_text(render(answer, "markdown"))
        (Path(tmp) / "diagnosis.json").write_text(render(answer, "json"))
        tracker.log_files(run_id, [str(path), str(Path(tmp) / "diagnosis.json")], "diagnosis")
    tracker.end_run(run_id, "COMPLETE")
    return run_id
