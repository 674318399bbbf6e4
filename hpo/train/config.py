"""The training configuration: one frozen dataclass that a trial, an original or a file fills."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("relu", "gelu", "sigmoid", "tanh")
OPTIMIZERS = ("sgd", "adam", "adadelta")
SCHEDULES = ("constant", "cosine", "onecycle", "keras_decay")
# pool_first: max-pool right after a block's first conv, before its norm and activation, so
# those and the block's later convs run on a quarter of the pixels (airbench's conv groups)
DOWNSAMPLES = ("stride", "pool", "pool_first", "none")
GLOBAL_POOLS = ("none", "avg", "max")  # max: "is the feature anywhere?" (pixel)
# glorot = Keras' glorot_uniform weights + zero biases; dirac = torch's, then each conv starts
# as the identity on its first min(in, out) channels (airbench), so a deep stack starts shallow
INITS = ("torch", "glorot", "dirac")
STEMS = ("none", "whiten")
FLIPS = ("random", "alternating")
INPUT_NORMS = ("unit", "centred")  # pixels / 255 in [0, 1], or centred on 0 in [-1, 1]
_COUNT_NAMES = {"conv_channels": "depth", "dense_units": "dense_layers"}  # same names as space


@dataclass(frozen=True)
class Config:
    """Everything that defines one training run, each field with its unit or reason."""

    # input: what the net sees of a uint8 pixel. "unit" = p / 255 in [0, 1] (every original,
    # docs/scenarios.md §1); "centred" = 2 p / 255 - 1 in [-1, 1]. Zero-mean inputs keep a
    # layer's weight gradients from all sharing one sign, which is what lets SGD move on 150k
    # noisy inputs.
    input_norm: str = "unit"
    # "whiten": a first 2x2 conv (no padding) whose 24 filters are the +/- eigenvectors of the
    # training images' 2x2 patch covariance, scaled to unit variance: fitted from data before
    # training, then frozen (its bias trains for stem_bias_epochs). Decorrelated inputs make the
    # first epochs count (airbench; Page's "How to train your ResNet" part 7).
    stem: str = "none"
    stem_bias_epochs: int = 3  # epochs the whitening bias trains before it is frozen
    # conv trunk: one entry per block; () means dense-only (docs/scenarios.md §1: box is linear)
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
    bn_scale: bool = True  # learn batch norm's per-channel scale; False = shift only (airbench)
    bn_momentum: float = 0.1  # running-statistics update weight (torch semantics; airbench 0.4)
    logit_scale: float = 1.0  # outputs x this (airbench: 1/9, a softer softmax early on)
    init: str = "torch"
    # optimisation
    optimizer: str = "adam"
    lr: float = 1e-3  # peak learning rate
    # lr multiplier for batch norm parameters, whose weight decay is divided by it so that their
    # decay per step stays that of the other weights (airbench: 64 on its BN biases)
    bn_lr_scale: float = 1.0
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = 0.0  # L2 (SGD, Adadelta) / decoupled for none: torch semantics
    # Decoupled L1 (proximal step, lasso-style feature selection): after every optimizer step
    # each conv/dense weight w <- sign(w) * max(|w| - lr * l1, 0) (Adadelta: l1 times its own
    # per-weight step, see train.l1_thresholds). With Adam a weight survives only while its
    # gradient keeps one sign (|Adam step| ~ lr > lr * l1 for l1 < 1): pixel's one informative
    # pixel stays, the noise weights a dense net would memorise go to zero.
    l1: float = 0.0
    # Before each step the gradients' global (L2) norm is scaled down to at most this: one bad
    # batch cannot throw a net far (Pascanu et al. 2013, exploding gradients); 0 = off.
    grad_clip: float = 0.0
    schedule: str = "constant"
    warmup_epochs: float = 0.0  # linear warm-up (cosine); onecycle sets its own
    # onecycle: linear from lr_start x lr to lr at lr_peak_at of all steps, then linear down to
    # lr_end x lr (Page: 0, 0.25 (here; 5 of 24 epochs there), 0; airbench: 0.2, 0.23, 0.07)
    lr_start: float = 0.0
    lr_peak_at: float = 0.25
    lr_end: float = 0.0
    lr_decay: float = 0.0  # keras_decay: lr / (1 + lr_decay * step), Keras' `decay`
    label_smoothing: float = 0.0  # classification only
    batch_size: int = 128
    # Small data (--subset on a CPU): when an epoch would have fewer steps than this, the batch
    # is halved until it has them (down to 16), and SGD's lr scaled with it (linear scaling;
    # Adam's and Adadelta's lr stay), so a recipe tuned for 45,000 images keeps its number of
    # updates on 4,500. 0 = off. See scaled_to.
    min_steps_per_epoch: int = 0
    epochs: int = 10
    augment: bool = False  # random crop (reflect pad aug_pad) + horizontal flip, per batch
    aug_pad: int = 4  # crop translation in pixels (Page: 4; airbench: 2)
    # "alternating": each image gets a random flip once, then every other epoch flips all of
    # them, so consecutive epochs always see both mirror images (airbench)
    aug_flip: str = "random"
    # Averaged weights: every 5 steps the weights move to an average of themselves and their
    # past, with a weight that grows from 0 to 0.77 as the cubed progress (airbench's lookahead)
    lookahead: bool = False
    # test-time augmentation at evaluation: 0 none; 1 average the logits of the image and its
    # mirror; 2 also of 1-pixel translations (airbench's levels)
    tta: int = 0
    # A user's own net in place of the fields of the trunk and head above: "module:factory" or
    # "path/file.py:factory", called as factory(input_shape, n_outputs, **model_params) and
    # returning an nn.Module (hpo.train.family); "" = hpo's own net from those fields.
    model: str = ""
    model_params: tuple[tuple[str, Any], ...] = ()  # the factory's keyword arguments, sorted

    def params(self) -> dict[str, Any]:
        """Flat, stable snake_case params (conv_channels_0, ...) for MLflow and reports."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "model_params":  # the factory's own names (hpo.search.family)
                out.update(value)
            elif isinstance(value, tuple):
                if field.name in _COUNT_NAMES:
                    out[_COUNT_NAMES[field.name]] = len(value)
                for i, item in enumerate(value):
                    out[f"{field.name}_{i}"] = item
            else:
                out[field.name] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists) for JSON and the study's trial attributes."""
        out = {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }
        out["model_params"] = dict(self.model_params)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of to_dict; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        data = dict(data)
        if isinstance(data.get("model_params"), dict):
            data["model_params"] = model_params(data["model_params"])
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
            ("stem", self.stem, STEMS),
            ("aug_flip", self.aug_flip, FLIPS),
            ("global_pool", self.global_pool, GLOBAL_POOLS),
        ]:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.model and ":" not in self.model:
            raise ValueError(f"model must be 'module:factory', got {self.model!r}")
        if any(p not in ("same", "valid") for p in self.conv_padding):
            raise ValueError("conv_padding entries must be 'same' or 'valid'")
        if not (self.lr > 0 and self.batch_size > 0 and self.epochs > 0):
            raise ValueError("lr, batch_size and epochs must be positive")
        if not self.l1 >= 0.0:
            raise ValueError("l1 must be >= 0")
        if not self.grad_clip >= 0.0:
            raise ValueError("grad_clip must be >= 0")
        if self.tta not in (0, 1, 2):
            raise ValueError(f"tta must be 0, 1 or 2, got {self.tta!r}")
        if not (self.logit_scale > 0 and self.bn_lr_scale > 0):
            raise ValueError("logit_scale and bn_lr_scale must be positive")
        if not 0.0 < self.bn_momentum <= 1.0:
            raise ValueError("bn_momentum must be in (0, 1]")
        if not (0.0 < self.lr_peak_at <= 1.0 and self.lr_start >= 0 and self.lr_end >= 0):
            raise ValueError("lr_peak_at must be in (0, 1], lr_start and lr_end >= 0")
        if self.aug_pad < 0 or self.stem_bias_epochs < 0 or self.min_steps_per_epoch < 0:
            raise ValueError("aug_pad, stem_bias_epochs and min_steps_per_epoch must be >= 0")
        for name in ("conv_dropout", "dense_dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")
        return self

    def scaled_to(self, n_train: int) -> Config:
        """This config for `n_train` training images (min_steps_per_epoch; else itself)."""
        batch = self.batch_size
        while (
            self.min_steps_per_epoch
            and batch > 16
            and -(-n_train // batch) < (self.min_steps_per_epoch)
        ):
            batch //= 2
        if batch == self.batch_size:
            return self
        lr = self.lr * batch / self.batch_size if self.optimizer == "sgd" else self.lr
        return self.replace(batch_size=batch, lr=lr)

    def replace(self, **changes: Any) -> Config:
        """dataclasses.replace, validated."""
        return dataclasses.replace(self, **changes).checked()


def model_params(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A factory's keyword arguments as Config.model_params holds them: sorted (name, value)
    pairs, lists as tuples, so that a config stays hashable and compares by value."""
    return tuple(
        (name, tuple(v) if isinstance(v, list) else v) for name, v in sorted(params.items())
    )
