"""What fixed the user's net, measured: change one knob of the original config at a time over the
values the search space allows, find a smallest set of changes that succeeds in K of K seeds,
and the reverse (from the best config, put back one original value at a time).

Affordable on a CPU: every change is screened on one seed and only a change that solves it
there is confirmed on the other seeds; a run stops once it is solved (unless full_budget) or
once its curve cannot succeed (`hopeless`); every run is cached in memory and on disk. Knows
neither Optuna nor MLflow.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hpo.config import Config
from hpo.diagnose import diagnose
from hpo.spec import Param

Echo = Callable[[str], None]
CACHE_VERSION = 1  # bump when what a cached ablation run means changes
DEAD_SPREAD = 1e-6  # regression outputs this constant over the validation set: a dead net
OPTIMISM = 2.0  # a curve is hopeless when even twice its best gain per epoch cannot reach it
# The user's knobs first (the order), then whatever else the task's space searches.
PRIORITY = (
    "lr",
    "optimizer",
    "batch_size",
    "depth",
    "conv_channels",
    "width",
    "dense_layers",
    "dense_units",
    "conv_dropout",
    "dense_dropout",
    "batch_norm",
    "init",
    "activation",
    "input_norm",
    "l1",
)
# knobs that are not in every space but are the user's: offered with these values
EXTRA_KNOBS = {"init": ("torch", "glorot"), "batch_norm": (False, True)}
SKIPPED = {"epochs"}  # the budget is the original's, not a knob
NAMES = {"val_r2": "R²", "val_accuracy": "val accuracy", "val_mse": "val MSE"}

# The failure each user reported (docs/scenarios.md), and how to tell that a replay shows it.
REPORTED: dict[str, dict[str, Any]] = {
    "box": {"text": "the network just predicts the mean", "label": "collapsed_to_mean"},
    "pixel": {
        "text": "sometimes it trains, sometimes it sits at 50 %",
        "label": "stuck_at_chance",
    },
    "cifar10": {
        "text": "validation accuracy stuck at ~60 %, validation loss rising after ~15 epochs",
        "at_most": ("val_accuracy", 0.65),
    },
}


def display(metric: str) -> str:
    return NAMES.get(metric, metric)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        sep = "/" if value and isinstance(value[0], str) else "x"
        return sep.join(str(v) for v in value) if value else "()"
    return str(value)


# knobs: a name from the search space (or a Config field) and its value in a config


def knob_value(config: Config, knob: str) -> Any:
    """The value of `knob` in `config` (per-block knobs: one value when all blocks agree)."""
    if knob == "depth":
        return len(config.conv_channels)
    if knob == "dense_layers":
        return len(config.dense_units)
    if knob in ("conv_channels", "conv_kernel", "dense_units"):
        values = getattr(config, knob)
        return values[0] if len(set(values)) == 1 else values
    if knob == "width":
        return 1.0
    return getattr(config, knob)


def relevant(config: Config, knob: str) -> bool:
    """Whether `knob` does anything in `config` (momentum without SGD does not)."""
    conv = {"conv_channels", "conv_kernel", "downsample", "residual", "conv_dropout", "width"}
    conv |= {"global_pool", "convs_per_block"}
    if knob in conv:
        return bool(config.conv_channels)
    if knob in ("dense_units", "dense_dropout", "max_norm"):
        return bool(config.dense_units)
    if knob in ("activation", "batch_norm") and not (config.conv_channels or config.dense_units):
        return False  # a net with no hidden layer (linear) has neither
    if knob in ("momentum", "nesterov"):
        return config.optimizer == "sgd"
    if knob.startswith("bn_"):
        return config.batch_norm
    if knob in ("lr_start", "lr_peak_at", "lr_end"):
        return config.schedule == "onecycle"
    if knob == "warmup_epochs":
        return config.schedule == "cosine"
    if knob == "lr_decay":
        return config.schedule == "keras_decay"
    if knob in ("aug_pad", "aug_flip"):
        return config.augment
    return knob not in SKIPPED


def knob_updates(config: Config, knob: str, value: Any) -> dict[str, Any]:
    """The Config fields that set `knob` to `value` in `config`."""
    if knob == "depth":
        n, old = value, config.conv_channels
        extend = n - len(old)
        channels = old[:n] + (old[-1] if old else 32,) * max(extend, 0)
        kernels = config.conv_kernel[:n] + ((config.conv_kernel or (3,))[-1],) * max(extend, 0)
        padding = config.conv_padding[:n] + ("same",) * max(extend, 0)
        return {
            "conv_channels": channels,
            "conv_kernel": kernels if config.conv_kernel or n else (),
            "conv_padding": padding if config.conv_padding else (),
        }
    if knob == "dense_layers":
        old = config.dense_units
        return {"dense_units": old[:value] + (old[-1] if old else 128,) * max(value - len(old), 0)}
    if knob in ("conv_channels", "conv_kernel", "dense_units"):
        n = len(config.dense_units if knob == "dense_units" else config.conv_channels)
        return {knob: (value,) * n}
    if knob == "width":
        return {"conv_channels": tuple(max(1, round(c * value)) for c in config.conv_channels)}
    return {knob: value}


def representative(param: Param) -> list[Any]:
    """A few values of a search dimension: every choice; decades of a log range (low, middle,
    high when that is more than 6 or fewer than 2); low, middle, high of a linear range."""
    if param.fixed:
        return [param.value]
    if param.choices is not None:
        return list(param.choices)
    low, high = param.low, param.high
    integer = isinstance(low, int) and isinstance(high, int)
    if integer and high - low <= 4:
        return list(range(low, high + 1))
    values: list[float]
    if param.log:
        first, last = math.ceil(math.log10(low) - 1e-9), math.floor(math.log10(high) + 1e-9)
        values = [10.0**e for e in range(first, last + 1)]
        if not 2 <= len(values) <= 6:
            values = [low, _round(math.sqrt(low * high)), high]
    else:
        values = [low, _round((low + high) / 2), high]
    if integer:
        return sorted({round(v) for v in values})
    return [float(f"{v:.3g}") for v in values]


def _round(value: float) -> float:
    return float(f"{value:.1g}")


@dataclass(frozen=True)
class Change:
    """One knob set to one value; `fields` (the reverse) sets those Config fields instead."""

    knob: str
    value: Any
    text: str
    fields: tuple[tuple[str, Any], ...] = ()

    def apply(self, config: Config) -> Config:
        if self.fields:
            return config.replace(**dict(self.fields))
        return config.replace(**knob_updates(config, self.knob, self.value))

    def record(self) -> dict[str, Any]:
        value = self.value if not isinstance(self.value, tuple) else list(self.value)
        return {"knob": self.knob, "value": value, "change": self.text}


def single_changes(original: Config, space: dict[str, Param]) -> list[Change]:
    """Every one-knob change of `original` within `space`, the user's knobs first; lr values
    nearest the original's first."""
    knobs = dict(space)
    for name, choices in EXTRA_KNOBS.items():
        knobs.setdefault(name, Param(name, choices=choices))
    order = [k for k in PRIORITY if k in knobs] + [k for k in knobs if k not in PRIORITY]
    out: list[Change] = []
    for knob in order:
        if not relevant(original, knob):
            continue
        current = knob_value(original, knob)
        values = representative(knobs[knob])
        if knob == "lr":
            values.sort(key=lambda v: abs(math.log10(v / original.lr)))
        for value in values:
            try:
                changed = original.replace(**knob_updates(original, knob, value))
            except ValueError:
                continue
            if changed == original or value == current:
                continue
            out.append(
                Change(
                    knob, value, f"{_knob_label(knob, original)} {fmt(current)} -> {fmt(value)}"
                )
            )
    return out


def _knob_label(knob: str, config: Config) -> str:
    if knob == "lr":
        return f"{config.optimizer.capitalize() if config.optimizer != 'sgd' else 'SGD'} lr"
    return knob


# groups of Config fields that the reverse puts back together
_GROUPS = {
    "conv trunk": (
        "conv_channels",
        "conv_kernel",
        "conv_padding",
        "convs_per_block",
        "downsample",
        "residual",
        "conv_dropout",
        "global_pool",
    ),
    "dense head": ("dense_units", "dense_dropout", "max_norm"),
    "optimizer": ("optimizer", "momentum", "nesterov"),
    "schedule": ("schedule", "lr_decay", "warmup_epochs", "lr_start", "lr_peak_at", "lr_end"),
    "batch_norm": ("batch_norm", "bn_scale", "bn_momentum", "bn_lr_scale"),
    "augment": ("augment", "aug_pad", "aug_flip"),
}


def reverse_changes(best: Config, original: Config) -> list[Change]:
    """From `best`, put back the original's value of each group of fields that differs."""
    a, b = original.to_dict(), best.to_dict()
    grouped = {f for fields in _GROUPS.values() for f in fields}
    groups = dict(_GROUPS)
    for name in a:
        if name not in grouped and name not in SKIPPED:
            groups[name] = (name,)
    out = []
    for name, fields in groups.items():
        try:  # what is put back must do something in the config it is put into
            changed = best.replace(**{f: getattr(original, f) for f in fields})
        except ValueError:
            continue
        structural = name in ("conv trunk", "dense head")
        differs = [
            f
            for f in fields
            if a[f] != b[f] and (structural or relevant(best, f) or relevant(changed, f))
        ]
        if not differs:
            continue
        if name == "conv trunk" and len(original.conv_channels) == len(best.conv_channels):
            pieces = [(f, (f,)) for f in differs]  # same depth: each field on its own
        elif name == "dense head" and len(original.dense_units) == len(best.dense_units):
            pieces = [(f, (f,)) for f in differs]
        else:
            pieces = [(name, fields)]
        for label, fs in pieces:
            values = tuple((f, getattr(original, f)) for f in fs)
            try:
                best.replace(**dict(values))
            except ValueError:
                continue
            shown = ", ".join(
                f"{f} {fmt(getattr(best, f))} -> {fmt(getattr(original, f))}"
                for f in fs
                if f in differs
            )
            out.append(Change(label, None, shown, values))
    return out


# running configs: one seed, then K


@dataclass
class Runner:
    """Trains configs at the original's budget, one cached run per (config, seed)."""

    task: Any
    data: Any
    settings: dict[str, Any]
    device: Any
    budget: int  # epochs: the original's replay budget
    echo: Echo
    full_budget: bool = False  # train to the budget even once solved
    disk_cache: bool = True
    runs: int = 0  # trained here (not cached)
    seconds: float = 0.0
    _memo: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(self, config: Config, seed: int, what: str = "") -> dict[str, Any]:
        """One seed of `config` (budget epochs); stops once solved or hopeless."""
        from hpo import references

        config = config.replace(epochs=self.budget)
        key = references._key(
            version=CACHE_VERSION,
            task=self.task.name,
            data=self.settings,
            config=config.to_dict(),
            device=self.device.type,
            seed=seed,
            full=self.full_budget,
        )
        if key in self._memo:
            return self._memo[key]
        if self.disk_cache:
            result, was_cached = references.cached(
                "ablation", key, lambda: self._train(config, seed, what)
            )
        else:
            result, was_cached = self._train(config, seed, what), False
        if was_cached:
            self.echo(f"  {what} seed {seed}: {describe(result, self.task)} (cached)")
        self._memo[key] = result
        return result

    def _train(self, config: Config, seed: int, what: str) -> dict[str, Any]:
        from hpo.train import TrainingError, train

        history: list[dict[str, float]] = []
        t0 = time.monotonic()
        name, threshold = self.task.success

        class Stop(Exception):
            pass

        def report(epoch: int, metrics: dict[str, float]) -> None:
            history.append(metrics)
            if metrics.get("epoch_seconds", 0) > 5:  # slow epochs: show progress
                self.echo(
                    f"    {what} seed {seed} epoch {epoch}/{self.budget}: "
                    f"{display(name)} {metrics.get(name, float('nan')):.4f} "
                    f"({metrics['epoch_seconds']:.0f} s)"
                )
            if epoch < self.budget:
                if not self.full_budget and self.task.solved(metrics):
                    raise Stop("solved")
                why = hopeless(history, self.budget, self.task.success)
                if why:
                    raise Stop(why)

        stopped, reason = "budget", ""
        try:
            train(
                config,
                self.data,
                device=self.device,
                seed=seed,
                report=report,
                augment=self.task.augment,
            )
        except Stop as e:
            stopped = "solved" if str(e) == "solved" else "hopeless"
            reason = "" if stopped == "solved" else str(e)
        except TrainingError as e:
            stopped, reason = "error", str(e)
            history = list(getattr(e, "history", history))
        except (ValueError, RuntimeError) as e:  # e.g. the net does not fit the image size
            stopped, reason = "error", str(e).splitlines()[0]
        seconds = time.monotonic() - t0
        self.runs += 1
        self.seconds += seconds
        result = {
            "seed": seed,
            "epochs": len(history),
            "metrics": dict(history[-1]) if history else {},
            "solved": bool(history) and self.task.solved(history[-1]) and stopped != "error",
            "label": diagnose(history, reason if stopped == "error" else ""),
            "stopped": stopped,
            "reason": reason,
            "seconds": seconds,
        }
        self.echo(f"  {what} seed {seed}: {describe(result, self.task)} ({seconds:.0f} s)")
        return result

    def over(self, config: Config, seeds: list[int], what: str, screen_only: bool = False):
        """`config` on seeds[0], then (unless screen_only, or it failed there) on the rest."""
        runs = [self.run(config, seeds[0], what)]
        if not screen_only and runs[0]["solved"]:
            runs += [self.run(config, s, what) for s in seeds[1:]]
        return summarise(runs, self.task, len(seeds))


def hopeless(history: list[dict[str, float]], budget: int, success: tuple[str, float]) -> str:
    """Why the curve so far cannot reach `success` by epoch `budget` (empty if it might).

    A regression net whose outputs are the same for every input is dead (ReLU units that are
    all off pass no gradient back). Otherwise, from half the budget on: the success metric
    plus twice its best gain per epoch so far, for every epoch left, stays below the target.
    """
    name, threshold = success
    last, epoch = history[-1], len(history)
    if last.get("val_pred_spread", 1.0) < DEAD_SPREAD:
        return f"its outputs are the same for every input at epoch {epoch} (a dead net)"
    if epoch < max(2, math.ceil(budget / 2)) or name not in last:
        return ""
    values = [h[name] for h in history]
    gain = max(b - a for a, b in zip(values, values[1:], strict=False))
    reach = values[-1] + OPTIMISM * max(gain, 0.0) * (budget - epoch)
    if reach < threshold:
        return (
            f"{display(name)} {values[-1]:.3g} at epoch {epoch}: at twice its best gain per "
            f"epoch it would reach {reach:.3g} < {threshold} by epoch {budget}"
        )
    return ""


def describe(run: dict[str, Any], task: Any) -> str:
    name = task.success[0]
    m = run["metrics"]
    shown = f"{display(name)} {m[name]:.4f}" if name in m else "no epoch finished"
    if run["stopped"] == "solved":
        return f"{shown}, solved at epoch {run['epochs']}"
    if run["stopped"] == "hopeless":
        return f"{shown}, stopped at epoch {run['epochs']}: {run['reason']}"
    if run["stopped"] == "error":
        return f"{shown}, {run['label']}: {run['reason']}"
    return f"{shown} after {run['epochs']} epochs ({'solved' if run['solved'] else run['label']})"


def summarise(runs: list[dict[str, Any]], task: Any, k: int) -> dict[str, Any]:
    """Success count over the seeds run, and the mean success metric and task metric."""
    name = task.success[0]
    finished = [r["metrics"] for r in runs if r["metrics"]]

    def mean(key: str) -> float | None:
        values = [m[key] for m in finished if key in m]
        return statistics.fmean(values) if values else None

    return {
        "seeds_run": len(runs),
        "of_seeds": k,
        "solved": sum(r["solved"] for r in runs),
        "success_metric": name,
        "success_value": mean(name),
        "metric": task.metric,
        "metric_value": mean(task.metric),
        "epochs": [r["epochs"] for r in runs],
        "labels": dict(Counter(r["label"] for r in runs)),
        "runs": runs,
    }


def confirmed(result: dict[str, Any]) -> bool:
    return result["seeds_run"] == result["of_seeds"] == result["solved"]


def forward(
    runner: Runner,
    original: Config,
    changes: list[Change],
    seeds: list[int],
    screen_all: bool,
    original_value: float | None,
) -> dict[str, Any]:
    """One-knob changes screened on one seed (confirmed on all when solved there); then, if no
    single change succeeds in K of K seeds, a greedy set: add the best change of each knob in
    the order of their screened effect until the set succeeds in K of K."""
    rows: list[dict[str, Any]] = []
    fix: dict[str, Any] | None = None
    for i, change in enumerate(changes, 1):
        what = f"[{i}/{len(changes)}] {change.text}"
        result = runner.over(change.apply(original), seeds, what)
        rows.append(change.record() | result)
        if confirmed(result) and fix is None:
            fix = {"changes": [change.record()], "result": result}
            if not screen_all:
                break
    if fix is not None:
        return {"singles": rows, "screened": len(rows), "of": len(changes), "smallest": fix}
    # greedy: the best value of each knob, knobs in the order of their screened effect
    best_per_knob: dict[str, tuple[float, Change]] = {}
    for change, row in zip(changes, rows, strict=False):
        value = row["success_value"]
        if value is None or (original_value is not None and value <= original_value):
            continue
        if change.knob not in best_per_knob or value > best_per_knob[change.knob][0]:
            best_per_knob[change.knob] = (value, change)
    ranked = sorted(best_per_knob.values(), key=lambda vc: -vc[0])
    chosen: list[Change] = []
    config, current = original, original_value
    steps = []
    for _, change in ranked:
        try:
            trial = change.apply(config)
        except ValueError:
            continue
        what = "[set] " + " + ".join(c.text for c in [*chosen, change])
        result = runner.over(trial, seeds, what)
        kept = current is None or (result["success_value"] or -math.inf) > current
        steps.append(
            {"changes": [c.record() for c in [*chosen, change]], "added": change.text}
            | result
            | {"kept": kept}
        )
        if not kept:  # it did not help on top of the others: leave it out
            continue
        chosen.append(change)
        config, current = trial, result["success_value"]
        if confirmed(result):
            fix = {"changes": [c.record() for c in chosen], "result": result}
            break
    return {
        "singles": rows,
        "screened": len(rows),
        "of": len(changes),
        "greedy": steps,
        "smallest": fix,
    }


def backward(
    runner: Runner, best: Config, original: Config, seeds: list[int], confirm: bool = True
):
    """From `best`, put back each original value (group of fields) in turn: screened on one
    seed; when `confirm` (the best config succeeds), a put-back that breaks it there is run on
    every seed (a necessary change)."""
    changes = reverse_changes(best, original)
    rows = []
    for i, change in enumerate(changes, 1):
        what = f"[back {i}/{len(changes)}] {change.text}"
        config = change.apply(best)
        result = runner.over(config, seeds, what, screen_only=True)
        if confirm and not result["solved"]:
            result = summarise(
                result["runs"] + [runner.run(config, s, what) for s in seeds[1:]],
                runner.task,
                len(seeds),
            )
        rows.append(change.record() | result)
    return rows


def reproduced(task_name: str, runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Whether the replayed original shows the failure its user reported, seed by seed."""
    reported = REPORTED.get(task_name)
    if reported is None:
        return None
    if "label" in reported:
        hits = sum(r["label"] == reported["label"] for r in runs)
    else:
        metric, most = reported["at_most"]
        hits = sum(r["metrics"].get(metric, 0.0) <= most for r in runs if r["metrics"])
    return {"reported": reported["text"], "seeds": hits, "of": len(runs)}
