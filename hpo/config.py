"""The training configuration: one frozen dataclass that a trial, an original or a file fills."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("relu", "gelu", "sigmoid", "tanh")
OPTIMIZERS = ("sgd", "adam", "adadelta")
SCHEDULES = ("constant", "cosine", "onecycle", "keras_decay")
DOWNSAMPLES = ("stride", "pool", "none")
GLOBAL_POOLS = ("none", "avg", "max")  # max: "is the feature anywhere?" (pixel)
INITS = ("torch", "glorot")  # glorot = Keras' glorot_uniform weights + zero biases
INPUT_NORMS = ("unit", "centred")  # pixels / 255 in [0, 1], or centred on 0 in [-1, 1]
_COUNT_NAMES = {"conv_channels": "depth", "dense_units": "dense_layers"}  # same names as space


@dataclass(frozen=True)
class Config:
    """Everything that defines one training run, each field with its unit or reason."""

    # input: what the net sees of a uint8 pixel. "unit" = p / 255 in [0, 1] (SEEDS.md §1, every
    # original); "centred" = 2 p / 255 - 1 in [-1, 1]. Zero-mean inputs keep a layer's weight
    # gradients from all sharing one sign, which is what lets SGD move on 150k noisy inputs.
    input_norm: str = "unit"
    # conv trunk: one entry per block; () means dense-only (SEEDS.md §1: box is linear)
    conv_channels: tuple[int, ...] = ()  # output channels of each block
    conv_kernel: tuple[int, ...] = ()  # kernel size of each block (square)
    conv_padding: tuple[str, ...] = ()  # "same" | "valid" per block; () = all "same"
    convs_per_block: int = 1  # conv layers per block (cifar10 original: 2)
    downsample: str = "stride"  # per block: stride-2 conv, 2x2 max-pool, or none
    residual: bool = False  # add a residual 3x3 pair after each block (ResNet-like)
    conv_dropout: float = 0.0  # dropout after each block (fraction)
    global_pool: str = "none"  # "avg" | "max": pool over all positions instead of flatten
    # dense head
    dense_units: tuple[int, ...] = ()  # hidden dense layers before the output layer
    dense_dropout: float = 0.0  # dropout after each hidden dense layer (fraction)
    max_norm: float = 0.0  # Keras max-norm constraint on hidden dense weights; 0 = off
    out_units: int = 0  # output units; 0 = the task's natural number
    activation: str = "relu"
    batch_norm: bool = False  # after every conv and hidden dense layer
    init: str = "torch"
    # optimisation
    optimizer: str = "adam"
    lr: float = 1e-3  # peak learning rate
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = 0.0  # L2 (SGD, Adadelta) / decoupled for none: torch semantics
    # Decoupled L1 (proximal step, lasso-style feature selection): after every optimizer step
    # each conv/dense weight w <- sign(w) * max(|w| - lr * l1, 0) (Adadelta: l1 times its own
    # per-weight step, see train.l1_thresholds). With Adam a weight survives only while its
    # gradient keeps one sign (|Adam step| ~ lr > lr * l1 for l1 < 1): pixel's one informative
    # pixel stays, the noise weights a dense net would memorise go to zero.
    l1: float = 0.0
    schedule: str = "constant"
    warmup_epochs: float = 0.0  # linear warm-up (cosine); onecycle sets its own
    lr_decay: float = 0.0  # keras_decay: lr / (1 + lr_decay * step), Keras' `decay`
    label_smoothing: float = 0.0  # classification only
    batch_size: int = 128
    epochs: int = 10
    augment: bool = False  # random crop (reflect pad 4) + horizontal flip, per batch

    def params(self) -> dict[str, Any]:
        """Flat, stable snake_case params (conv_channels_0, ...) for MLflow and reports."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, tuple):
                if field.name in _COUNT_NAMES:
                    out[_COUNT_NAMES[field.name]] = len(value)
                for i, item in enumerate(value):
                    out[f"{field.name}_{i}"] = item
            else:
                out[field.name] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists) for JSON and the study's trial attributes."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of to_dict; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        ).checked()

    def checked(self) -> Config:
        """Return self after validating values; raises ValueError with one clear line."""
        n = len(self.conv_channels)
        if self.conv_kernel and len(self.conv_kernel) != n:
            raise ValueError("conv_kernel needs one entry per conv block")
        if self.conv_padding and len(self.conv_padding) != n:
            raise ValueError("conv_padding needs one entry per conv block")
        for name, value, allowed in [
            ("activation", self.activation, ACTIVATIONS),
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("schedule", self.schedule, SCHEDULES),
            ("downsample", self.downsample, DOWNSAMPLES),
            ("init", self.init, INITS),
            ("input_norm", self.input_norm, INPUT_NORMS),
            ("global_pool", self.global_pool, GLOBAL_POOLS),
        ]:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if any(p not in ("same", "valid") for p in self.conv_padding):
            raise ValueError("conv_padding entries must be 'same' or 'valid'")
        if not (self.lr > 0 and self.batch_size > 0 and self.epochs > 0):
            raise ValueError("lr, batch_size and epochs must be positive")
        if not self.l1 >= 0.0:
            raise ValueError("l1 must be >= 0")
        for name in ("conv_dropout", "dense_dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")
        return self

    def replace(self, **changes: Any) -> Config:
        """dataclasses.replace, validated."""
        return dataclasses.replace(self, **changes).checked()
