"""Numbers as hpo stores and shows them: finite or nothing, which way is better, durations."""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> float | None:
    """`value` as a float if it is a finite number, else None (NaN, inf, not a number)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def sign(direction: Any) -> int:
    """+1 where higher is better, -1 where lower is: "maximize" / "minimize", or Optuna's
    StudyDirection (whose name is MAXIMIZE / MINIMIZE). `sign * value` is then always "higher
    is better", for sorting and comparing."""
    name = getattr(direction, "name", direction)
    if str(name).lower() not in ("maximize", "minimize"):
        raise ValueError(f"not a direction: {direction!r}")
    return 1 if str(name).lower() == "maximize" else -1


def duration(seconds: float) -> str:
    """'45 s', '12 min', '3.5 h', '2.1 days': a duration as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def fmt(value: Any) -> str:
    """A value in a line of text: floats to 4 significant digits, the rest as they print."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
