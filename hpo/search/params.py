"""One dimension of a search space, as a spec's [space] writes it: a range (low/high, log,
step), a choice list, or a fixed value, checked against the kind of values its knob takes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """One search dimension: a range (low/high, log, step), a choice list, or a fixed value."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    value: Any = None  # fixed

    @property
    def fixed(self) -> bool:
        return self.low is None and self.choices is None


def param_of_kind(name: str, value: Any, kind: type, fail) -> Param:
    """A [space] entry of a knob whose values are `kind`s (hpo's knobs; a user's factory's)."""
    if isinstance(value, list):
        if not value:
            raise fail(f"[space] {name}: the choice list is empty")
        for item in value:
            if not is_kind(item, kind):
                raise fail(f"[space] {name}: choice {item!r} is not a {kind.__name__}")
        return Param(name, choices=tuple(value))
    if isinstance(value, dict):
        bad = sorted(set(value) - {"low", "high", "log", "step"})
        if bad or "low" not in value or "high" not in value:
            raise fail(
                f"[space] {name}: a range is {{ low = .., high = .., log = false, step = .. }}"
            )
        if kind not in (int, float):
            raise fail(f"[space] {name}: a {kind.__name__} parameter takes a list of choices")
        low, high, log = value["low"], value["high"], value.get("log", False)
        if not (is_kind(low, kind) and is_kind(high, kind)):
            raise fail(f"[space] {name}: low and high must be {kind.__name__}s")
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise fail(f"[space] {name}: low ({low}) must not exceed high ({high})")
        if log and low <= 0:
            raise fail(f"[space] {name}: a log range needs low > 0 (got {low})")
        if log and value.get("step") is not None:
            raise fail(f"[space] {name}: step and log cannot be combined")
        return Param(name, low=low, high=high, log=bool(log), step=value.get("step"))
    if not is_kind(value, kind):
        raise fail(f"[space] {name}: {value!r} is not a {kind.__name__}")
    return Param(name, value=value)


def is_kind(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind) and not isinstance(value, bool)
