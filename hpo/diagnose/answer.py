"""The answer of `hpo diagnose` (hpo.diagnose.diagnosis) in one sentence, as text, Markdown or
JSON, and as an MLflow run of the study with one nested run per variant (kind=ablation)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hpo.diagnose import ablation
from hpo.diagnose.ablation import display
from hpo.search import record
from hpo.study.queries import load
from hpo.track.client import Tracker


@dataclass
class Answer:
    """What `hpo diagnose` found: the original over seeds, the reported failure, the single
    changes (and a greedy set) from it, the best config and the reverse from it. The parts that
    are tables (a variant over its seeds: hpo.diagnose.ablation.summarise) stay rows."""

    task: str
    study: str
    metric: str
    success: dict[str, Any]  # {metric, threshold}
    seeds: list[int]
    budget_epochs: int
    of_epochs: int
    stops: str  # when a run stops: at the budget, or once solved or hopeless
    original: dict[str, Any]
    reported_failure: dict[str, Any] | None
    ablation: dict[str, Any]  # singles, screened, of, smallest (and greedy)
    best: dict[str, Any]
    reverse: list[dict[str, Any]]
    baselines: dict[str, dict[str, float]]
    data: dict[str, Any]
    device: str
    runs_trained: int
    seconds: float


PHRASES = {
    "collapsed_to_mean": "collapsed to the mean",
    "no_better_than_mean": "no better than predicting the mean",
    "stuck_at_chance": "stuck at chance",
    "diverged": "diverged",
    "overfitting": "overfitted",
    "ok": "trained normally",
    "failed": "failed",
}


def sentence(answer: Answer) -> str:
    """The answer in one sentence."""
    k = len(answer.seeds)
    orig, fixes = answer.original, answer.ablation
    name = display(answer.success["metric"])
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
        f" (by epoch {epochs} of {answer.budget_epochs})."
    )


def render(answer: Answer, fmt_name: str = "text") -> str:
    """The answer as plain text, Markdown ready to paste, or JSON for scripts."""
    if fmt_name == "json":
        return json.dumps(asdict(answer), indent=1, default=str)
    md = fmt_name == "markdown"
    head = f"{answer.task}: what happened and what fixed it"
    lines = [f"### {head}" if md else head, "", sentence(answer), ""]
    lines += _findings(answer, md) + _tables(answer, md)
    lines += [
        "",
        f"(every run at the original's budget of {answer.budget_epochs} epochs, stopped "
        f"{answer.stops}; seeds {answer.seeds}; data {answer.data}; "
        f"{answer.runs_trained} runs trained, {answer.seconds / 60:.1f} min)",
    ]
    return "\n".join(lines)


def _verdict(part: dict[str, Any], sname: str) -> str:
    """'collapsed to the mean in 3/3 seeds; R² mean 0.001; solved in 0/3'."""
    labels = part["labels"]
    main = max(labels, key=labels.get)
    text = f"{PHRASES.get(main, main)} in {labels[main]}/{part['seeds_run']} seeds"
    if part["success_value"] is not None:
        text += f"; {display(sname)} mean {part['success_value']:.4g}"
    return text + f"; solved in {part['solved']}/{part['seeds_run']}"


def _findings(answer: Answer, md: bool) -> list[str]:
    """The bullet points: the original, the reported failure, the best config, the baselines."""
    sname = answer.success["metric"]
    lines = [
        f"- Your original config ({answer.budget_epochs} of its {answer.of_epochs} "
        f"epochs): {_verdict(answer.original, sname)}."
    ]
    repro = answer.reported_failure
    if repro and repro["seeds"]:
        lines.append(
            f'- The reported failure ("{repro["reported"]}") is reproduced in '
            f"{repro['seeds']}/{repro['of']} seeds."
        )
    elif repro:
        m = answer.original
        shown = (
            f"{display(sname)} {m['success_value']:.4g}"
            if m["success_value"] is not None
            else "no finished epoch"
        )
        lines.append(
            f'- The reported failure ("{repro["reported"]}") is NOT reproduced: the '
            f"replayed original reaches {shown} (mean of {repro['of']} seeds) after "
            f"{max(m['epochs'])} of its {answer.of_epochs} epochs, in PyTorch, on "
            f"{answer.device}, with data {answer.data}."
        )
    lines.append(
        f"- The best config found (trial {answer.best['trial']}): {_verdict(answer.best, sname)}."
    )
    for name, metrics in answer.baselines.items():
        shown = ", ".join(f"{m} {v:.4g}" for m, v in metrics.items() if m.startswith("val_"))
        lines.append(f"- Baseline `{name}`: {shown}." if md else f"- Baseline {name}: {shown}.")
    return lines


def _tables(answer: Answer, md: bool) -> list[str]:
    """The measured variants: the single changes, a greedy set, the reverse."""
    k, sname, metric = len(answer.seeds), answer.success["metric"], answer.metric
    fixes, lines = answer.ablation, []
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
    if answer.reverse:
        how = (
            f"a put-back that breaks it is necessary; run on {k} seeds when it fails on the first"
            if answer.best["runs"][0].solved
            else "the best config fails on the first seed itself, so each is screened on it only"
        )
        lines += ["", f"From the best config, one original value put back ({how}):", ""]
        lines += _table(answer.reverse, sname, metric, md)
    return lines


def _table(rows: list[dict[str, Any]], sname: str, metric: str, md: bool) -> list[str]:
    both = sname != metric  # the task's metric as a column of its own, where it differs

    def cells(r: dict[str, Any]) -> list[str]:
        sv, mv = r["success_value"], r["metric_value"]
        return [
            r["change"],
            f"{r['solved']}/{r['seeds_run']}",
            "-" if sv is None else f"{sv:.4f}",
            *(["-" if mv is None else f"{mv:.4g}"] if both else []),
            ",".join(str(e) for e in r["epochs"]),
            ", ".join(f"{PHRASES.get(k, k)} {v}" for k, v in r["labels"].items()),
        ]

    head = ["change", "solved", display(sname), *([metric] if both else []), "epochs", "outcome"]
    if md:
        out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        return out + ["| " + " | ".join(cells(r)) + " |" for r in rows]
    width = max(len(r["change"]) for r in rows)
    shape = [f"<{width}", ">6", ">12", *([">9"] if both else []), "<8"]

    def line(values: list[str]) -> str:
        return "  " + "  ".join(f"{v:{f}}" for v, f in zip(values, shape, strict=False))

    out = [line(head).rstrip()]
    return out + [line(c) + "  " + c[-1] for c in map(cells, rows)]


def log_to_mlflow(answer: Answer, storage: str | None, tracking_uri: str | None) -> str:
    """The answer as an MLflow run of the study's experiment (kind=diagnosis, under the
    study's run) with one nested run per variant (kind=ablation), comparable in the UI."""
    study = load(answer.study, storage)
    tracker = Tracker(tracking_uri, study.study_name)
    parent = record.parent_run(study)
    run_id = tracker.start_run(parent, "diagnose", {"kind": "diagnosis", "task": answer.task})
    tracker.log_params(
        run_id,
        {
            "seeds": answer.seeds,
            "budget_epochs": answer.budget_epochs,
            "stops": answer.stops,
            "data": answer.data,
        },
    )
    tracker.set_tags(run_id, {"answer": sentence(answer)[:5000]})
    orig = answer.original
    tracker.log_metrics(
        run_id,
        {
            "original_solved": orig["solved"],
            "best_solved": answer.best["solved"],
            "seconds": answer.seconds,
        },
    )
    for direction, row in _variants(answer):
        _log_variant(tracker, run_id, direction, row)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "diagnosis.md"
        path.write_text(render(answer, "markdown"))
        (Path(tmp) / "diagnosis.json").write_text(render(answer, "json"))
        tracker.log_files(run_id, [str(path), str(Path(tmp) / "diagnosis.json")], "diagnosis")
    tracker.end_run(run_id, "COMPLETE")
    return run_id


def _variants(answer: Answer) -> list[tuple[str, dict[str, Any]]]:
    """(direction, row) of every variant measured: forward, greedy, reverse, original, best."""
    rows = [("forward", r) for r in answer.ablation["singles"]]
    rows += [
        ("greedy", r | {"change": " + ".join(c["change"] for c in r["changes"])})
        for r in answer.ablation.get("greedy") or []
    ]
    rows += [("reverse", r) for r in answer.reverse]
    return rows + [
        ("original", answer.original | {"change": "original"}),
        ("best", answer.best | {"change": "best"}),
    ]


def _log_variant(tracker: Tracker, parent: str, direction: str, r: dict[str, Any]) -> None:
    """One variant as a finished run under the diagnosis run (kind=ablation)."""
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
        parent,
        "ablation",
        r["change"][:200],
        metrics,
        params={"direction": direction, "change": r["change"][:500], "knob": r.get("knob")},
        tags={"direction": direction},
    )
