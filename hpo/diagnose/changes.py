"""The changes an ablation tries: the values of a search-space parameter worth trying, the
single changes from the original (the user's knobs first), and the reverse, from the best
config back toward the original. What a knob is, and when it does anything, comes from the one
table of knobs (hpo.search.space)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hpo.search.space import BY_NAME, fields_of, knob_updates, knob_value
from hpo.search.spec import Param
from hpo.train.config import Config

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


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        sep = "/" if value and isinstance(value[0], str) else "x"
        return sep.join(str(v) for v in value) if value else "()"
    return str(value)


def relevant(config: Config, name: str) -> bool:
    """Whether knob (or Config field) `name` does anything in `config`: the knob's condition in
    hpo.search.space.KNOBS; of the fields no spec searches, max_norm needs a hidden dense layer
    and lr_decay the keras_decay schedule. The epoch budget is not a knob here."""
    if name in SKIPPED:
        return False
    if name in BY_NAME:
        return BY_NAME[name].relevant(fields_of(config))
    if name == "max_norm":
        return bool(config.dense_units)
    if name == "lr_decay":
        return config.schedule == "keras_decay"
    return True


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


def single_changes(
    original: Config, space: dict[str, Param], toward: Config | None = None
) -> list[Change]:
    """Every one-knob change of `original` within `space`, the user's knobs first; lr values
    nearest the original's first. With `toward` (the study's best config), its own value of
    each knob it sets otherwise comes first: the changes the search made are the likeliest
    fixes, so a screen that stops at the first fix reaches them early."""
    knobs = dict(space)
    for name, choices in EXTRA_KNOBS.items():
        knobs.setdefault(name, Param(name, choices=choices))
    order = [k for k in PRIORITY if k in knobs] + [k for k in knobs if k not in PRIORITY]
    target: dict[str, Any] = {}
    if toward is not None:
        for knob in order:
            if relevant(toward, knob) and knob_value(toward, knob) != knob_value(original, knob):
                target[knob] = knob_value(toward, knob)
    first: list[Change] = []  # toward's value of each knob it changed
    out: list[Change] = []
    for knob in order:
        if not relevant(original, knob):
            continue
        current = knob_value(original, knob)
        values = representative(knobs[knob])
        if knob == "lr":
            values.sort(key=lambda v: abs(math.log10(v / original.lr)))
        if knob in target and target[knob] not in values:
            values.insert(0, target[knob])
        for value in values:
            try:
                changed = original.replace(**knob_updates(original, knob, value))
            except ValueError:
                continue
            if changed == original or value == current:
                continue
            text = f"{_knob_label(knob, original)} {fmt(current)} -> {fmt(value)}"
            (first if knob in target and value == target[knob] else out).append(
                Change(knob, value, text)
            )
    return first + out


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
