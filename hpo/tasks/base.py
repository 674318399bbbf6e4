"""The surface every task exposes: data, the user's original config, baselines, metric."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from hpo.train.config import Config
from hpo.train.data import Split, TaskData


@dataclass(frozen=True)
class Task:
    """One studied problem. Data settings are a plain dict of overridable sizes and seeds."""

    name: str
    summary: str  # one line for `hpo tasks`
    kind: str  # "regression" | "classification"
    n_outputs: int
    metric: str  # the objective, as named in the metrics dicts (e.g. "val_mse")
    direction: str  # "minimize" | "maximize"
    success: tuple[str, float]  # (metric, threshold) a run must reach to count as solved
    defaults: dict[str, Any]  # data settings and their defaults
    original: Config | None  # the user's configuration, replayed faithfully; None: none given
    original_note: str  # provenance of the original, shown in reports
    baselines: tuple[str, ...]  # names in hpo.study.baselines
    _load: Callable[[dict[str, Any]], tuple[Split, Split]] = field(repr=False)
    _load_test: Callable[[dict[str, Any]], Split] = field(repr=False)
    sizes: Callable[[dict[str, Any]], dict[str, int]] = field(repr=False)
    # images that a flip and a translation leave in their class: config.augment applies
    # (hpo.train.augment.flip_crop, its padding and flip mode from the config)
    augment: bool = False
    # the study spec of a task without a studies/<name>.toml: a dict in the TOML's shape
    # (hpo.search.spec.parse_spec validates it); a data set's is derived from its shape
    spec: dict[str, Any] | None = field(default=None, repr=False)
    source: str = "hpo"  # the package the task comes from (a plugin's distribution)
    # what MLflow's dataset input says of the data (name, digest, source, shapes, classes);
    # None: the task's data is generated, or the task says nothing of it
    dataset: dict[str, Any] | None = field(default=None, repr=False)
    # what the task's data was found to be, in one line (a data set: kind, shape, splits)
    found: str = ""

    def with_source(self, source: str) -> Task:
        return replace(self, source=source)

    def settings(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by `overrides`, type-checked against the defaults."""
        out = dict(self.defaults)
        for key, value in (overrides or {}).items():
            if key not in out:
                known = ", ".join(sorted(out))
                raise ValueError(f"unknown data setting {key!r} for task {self.name} ({known})")
            default = out[key]
            try:
                out[key] = type(default)(value) if default is not None else value
            except (TypeError, ValueError):
                raise ValueError(f"data setting {key} must be {type(default).__name__}") from None
            if isinstance(default, int | float) and not isinstance(default, bool):
                if out[key] < 0:
                    raise ValueError(f"data setting {key} must not be negative")
        return out

    def load(self, settings: dict[str, Any], device: torch.device) -> TaskData:
        """Train and validation splits on `device`. The test split is not reachable from here."""
        train, val = self._load(settings)
        return TaskData(train, val, self.kind, self.n_outputs).to(device)

    def load_test(self, settings: dict[str, Any], device: torch.device) -> Split:
        """The held-out test split: only final evaluation of a selected model reads it."""
        return self._load_test(settings).to(device)

    def solved(self, metrics: dict[str, float]) -> bool:
        name, threshold = self.success
        value = metrics.get(name)
        return value is not None and value >= threshold
