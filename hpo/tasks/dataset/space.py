"""The study spec of a data set hpo has never seen, derived from its shape: conv blocks and
dense layers for images, dense layers for feature vectors; widths, depth, batch sizes and epochs
scaled to the input and the number of examples. A plain dict in a spec file's shape, so that
`hpo init` writes it as TOML and hpo.search.spec validates it like any other."""

from __future__ import annotations

import math
from typing import Any

from hpo.tasks.dataset.found import Found

BATCHES = (16, 32, 64, 128, 256)
# examples a trial sees in all (epochs x train rows): ~20,000 gives 1,437 digits 14 epochs and
# 10,000 box images 2-3, between 3 and 30 epochs (ours; a first guess that `hpo init` exposes)
EXAMPLES_PER_TRIAL = 20_000


def epochs_for(n_train: int) -> int:
    return max(3, min(30, round(EXAMPLES_PER_TRIAL / max(n_train, 1))))


def batches_for(n_train: int) -> list[int]:
    """Batch sizes that give an epoch at least ~10 steps (at least two choices)."""
    fits = [b for b in BATCHES if b * 10 <= n_train]
    return fits if len(fits) >= 2 else list(BATCHES[:2])


def derived_spec(name: str, found: Found, n_train: int, cpu: bool = True) -> dict[str, Any]:
    """The spec (a dict shaped as the TOML) for data set `name`."""
    study: dict[str, Any] = {
        "sampler": "tpe",
        "pruner": "hyperband",
        "epochs": epochs_for(n_train),
        "n_startup_trials": 8,
    }
    training: dict[str, Any] = {
        "optimizer": ["sgd", "adam", "adadelta"],
        "lr": {"low": 1e-5, "high": 1.0, "log": True},  # box: SGD at 1 or Adam at 1e-3 fixed it
        "momentum": {"low": 0.0, "high": 0.99},
        "weight_decay": {"low": 1e-8, "high": 1e-3, "log": True},
        "batch_size": batches_for(n_train),
        "batch_norm": [False, True],
    }
    if found.images:
        space = _image_space(found, cpu)
        # seconds: a trial that needs more is stopped (pruned); a CPU conv net on thousands of
        # 64x64 images takes 10-20 s an epoch (box), so it is the bound for a first study
        study["trial_timeout"] = 60 if cpu else 300
    else:
        space = {
            "dense_layers": {"low": 0, "high": 3},  # 0: a linear model
            "dense_units": {"low": 16, "high": 256, "log": True},
            "activation": ["relu", "gelu", "tanh"],
            "dense_dropout": {"low": 0.0, "high": 0.5},
        }
    return {"task": name, "study": study, "space": {**space, **training}}


def _image_space(found: Found, cpu: bool) -> dict[str, Any]:
    side = min(found.x.shape[2:])
    depth = max(0, min(3, int(math.log2(max(side, 1) / 4))))  # each block halves the side
    space: dict[str, Any] = {"depth": {"low": 0, "high": depth}}  # 0: dense-only (box is linear)
    if depth:
        space |= {
            "conv_channels": {"low": 8, "high": 64 if cpu else 128, "log": True},
            "conv_kernel": [3, 5] if side >= 16 else [3],
            "downsample": ["stride", "pool"],
            "conv_dropout": {"low": 0.0, "high": 0.5},
        }
    return space | {
        "dense_layers": {"low": 0, "high": 2},
        "dense_units": {"low": 16, "high": 256, "log": True},
        "activation": ["relu", "gelu"],
        "dense_dropout": {"low": 0.0, "high": 0.5},
        "input_norm": ["unit", "centred"],  # zero-mean pixels let SGD move (pixel)
    }


def to_toml(spec: dict[str, Any], header: str = "") -> str:
    """The spec as a commented TOML file (`hpo init`)."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    top = {k: v for k, v in spec.items() if not isinstance(v, dict)}
    lines += [f"{k} = {_value(v)}" for k, v in top.items()]
    for table, body in spec.items():
        if isinstance(body, dict):
            lines += ["", f"[{table}]"] + [f"{k} = {_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return f"{v:g}" if ("e" in f"{v:g}" or "." in f"{v:g}") else f"{v:.1f}"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    return str(v)
