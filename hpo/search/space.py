"""The search space, written once: KNOBS, one row per knob a spec's [space] may search (its kind,
the condition under which it does anything, its help line), in the order a trial suggests them.
The table drives the spec's validation (hpo.search.spec), `suggest` (trial -> Config, below),
the ablation's single changes (hpo.diagnose.changes) and `hpo study --help`.

Adding a knob is one row here plus the code that uses it (a Config field and the training code
that reads it). A knob is a Config field of the same name, except the structural ones: `depth`
and `dense_layers` (how many conv blocks and hidden dense layers), the per-block knobs
(`conv_channels_0`, `conv_kernel_1`, `dense_units_0`, ...: one parameter per block that exists)
and `width` (a multiplier on every block's channels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from hpo.train.config import Config, model_params

Values = dict[str, Any]  # a config's fields while it is being built (tuples as lists)


def _always(values: Values) -> bool:
    return True


def _convs(values: Values) -> bool:
    return bool(values["conv_channels"])


def _hidden(values: Values) -> bool:
    return bool(values["dense_units"])


def _is(name: str, value: Any) -> Callable[[Values], bool]:
    return lambda values: values[name] == value


def _has_layers(values: Values) -> bool:  # a net with no hidden layer (linear) has neither
    return bool(values["conv_channels"] or values["dense_units"])


@dataclass(frozen=True)
class Knob:
    """One row: a searchable knob."""

    name: str  # the [space] key; a trial's parameter name (per block: name_0, name_1, ...)
    kind: type  # what [space] values must be: bool, int, float or str
    help: str  # one line for --help
    when: Callable[[Values], bool] = _always  # searched only where it does something
    block: str | None = None  # "conv" | "dense": one parameter per block of that part
    matters: Callable[[Values], bool] | None = None  # the ablation's test, where not `when`

    def relevant(self, values: Values) -> bool:
        """Whether changing this knob can change what trains (the ablation asks)."""
        return (self.matters or self.when)(values)


KNOBS: tuple[Knob, ...] = (
    # the conv trunk
    Knob("depth", int, "conv blocks; 0 = dense-only"),
    Knob("conv_channels", int, "output channels of each conv block", _convs, "conv"),
    Knob("conv_kernel", int, "kernel size of each conv block", _convs, "conv"),
    Knob("width", float, "multiplier on every block's channels", _convs),
    Knob("convs_per_block", int, "conv layers per block", _convs),
    Knob("downsample", str, "per block: stride, pool, pool_first or none", _convs),
    Knob("residual", bool, "a residual 3x3 pair after each block", _convs),
    Knob("conv_dropout", float, "dropout after each conv block", _convs),
    Knob("global_pool", str, "none, avg or max over all positions", _convs),
    # the dense head
    Knob("dense_layers", int, "hidden dense layers"),
    Knob("dense_units", int, "units of each hidden dense layer", _hidden, "dense"),
    Knob("dense_dropout", float, "dropout after each hidden dense layer", _hidden),
    # optimisation
    Knob("optimizer", str, "sgd, adam or adadelta"),
    Knob("lr", float, "peak learning rate"),
    Knob("momentum", float, "SGD momentum", _is("optimizer", "sgd")),
    Knob("nesterov", bool, "SGD Nesterov momentum", _is("optimizer", "sgd")),
    Knob("weight_decay", float, "L2 weight decay"),
    Knob("l1", float, "decoupled L1 (a proximal step after each update), relative to lr"),
    Knob("grad_clip", float, "clip the gradients' global norm to this; 0 = off"),
    Knob("schedule", str, "constant, cosine, onecycle or keras_decay"),
    Knob(
        "warmup_epochs", float, "linear warm-up of the cosine schedule", _is("schedule", "cosine")
    ),
    Knob("lr_start", float, "onecycle: lr at the start, x lr", _is("schedule", "onecycle")),
    Knob(
        "lr_peak_at",
        float,
        "onecycle: where lr peaks, share of steps",
        _is("schedule", "onecycle"),
    ),
    Knob("lr_end", float, "onecycle: lr at the end, x lr", _is("schedule", "onecycle")),
    Knob("batch_norm", bool, "batch norm after every conv and hidden layer", matters=_has_layers),
    Knob("bn_scale", bool, "learn batch norm's scale (else shift only)", _is("batch_norm", True)),
    Knob("bn_momentum", float, "batch norm's running-statistics weight", _is("batch_norm", True)),
    Knob("bn_lr_scale", float, "lr multiplier of batch norm parameters", _is("batch_norm", True)),
    Knob("augment", bool, "random crop + horizontal flip (tasks that allow it)"),
    Knob("aug_pad", int, "crop translation in pixels", _is("augment", True)),
    Knob("aug_flip", str, "random or alternating flips", _is("augment", True)),
    # everything else
    Knob("input_norm", str, "unit ([0, 1]) or centred ([-1, 1]) pixels"),
    Knob("stem", str, "none or whiten (a frozen patch-whitening first conv)"),
    Knob("init", str, "torch, glorot or dirac weights"),
    Knob("activation", str, "relu, gelu, sigmoid or tanh", matters=_has_layers),
    Knob("logit_scale", float, "outputs x this"),
    Knob("label_smoothing", float, "classification targets smoothed by this"),
    Knob("batch_size", int, "images per step"),
    Knob("epochs", int, "epochs per trial"),
    Knob("lookahead", bool, "averaged weights (airbench's lookahead)"),
    Knob("tta", int, "test-time augmentation: 0, 1 (mirror) or 2 (+ translations)"),
)
BY_NAME = {knob.name: knob for knob in KNOBS}
# hpo's own architecture knobs and fields: they shape hpo's net, which a user's own net
# (hpo.search.family) replaces, so beside one they are not searched
ARCHITECTURE = (
    "depth", "conv_channels", "conv_kernel", "conv_padding", "width", "convs_per_block",
    "downsample", "residual", "conv_dropout", "global_pool", "dense_layers", "dense_units",
    "dense_dropout", "max_norm", "batch_norm", "bn_scale", "bn_momentum", "bn_lr_scale", "stem",
    "init", "activation", "logit_scale",
)  # fmt: skip
PER_BLOCK = tuple(knob.name for knob in KNOBS if knob.block)  # suggested as name_i
# the structural knobs: a count of blocks, or a multiplier; every other knob is a Config field
COUNTS = {"depth": "conv_channels", "dense_layers": "dense_units"}
BLOCK_DEFAULTS = {"conv_channels": 32, "conv_kernel": 3, "dense_units": 128}  # a new block's
if {k.name for k in KNOBS} - set(COUNTS) - {"width"} - {f.name for f in fields(Config)}:
    raise ImportError("a knob of hpo.search.space.KNOBS names no Config field")


def help_lines() -> list[str]:
    """`name (kind): help` for each knob, for --help."""
    return [f"{k.name} ({k.kind.__name__}): {k.help}" for k in KNOBS]


def suggest(trial: Any, spec: Any, base: Config) -> Config:
    """The Config for `trial`: the knobs of `spec.space` suggested in KNOBS' order, everything
    else from `base` (epochs: the spec's). Only suggest_* calls on `trial`, so optuna's
    FixedTrial works for tests. A knob is suggested only where it does something (its
    condition), and a per-block knob once for each block that exists."""
    values = fields_of(base)
    values["epochs"] = spec.epochs
    drawn: set[str] = set()
    for knob in KNOBS:
        if knob.block:
            if knob.block not in drawn and knob.when(values):
                _suggest_blocks(trial, spec, base, values, knob.block)
            drawn.add(knob.block)
            continue
        param = spec.space.get(knob.name)
        if param is None or not knob.when(values):
            continue
        _set(values, base, knob.name, _draw(trial, param, knob.name, knob.kind))
    family = getattr(spec, "model_space", None)
    if family:  # a user's net: its own knobs, under their own names (hpo.search.family)
        drawn_params = {**dict(base.model_params)}
        for name, param in family.items():
            drawn_params[name] = _draw(trial, param, name, int)  # int: ranges of ints give ints
        values["model_params"] = model_params(drawn_params)
    return base.replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _draw(trial: Any, param: Any, label: str, kind: type) -> Any:
    """One value of a spec's Param: fixed, a choice, or from its range (an integer range
    gives integers, except width's)."""
    if param.fixed:
        return param.value
    if param.choices is not None:
        return trial.suggest_categorical(label, list(param.choices))
    whole = isinstance(param.low, int) and isinstance(param.high, int)
    if whole and not (label == "width" and kind is float):  # hpo's width multiplies
        return trial.suggest_int(label, param.low, param.high, step=param.step or 1, log=param.log)
    return trial.suggest_float(label, param.low, param.high, step=param.step, log=param.log)


def _set(values: Values, base: Config, name: str, value: Any) -> None:
    """Set knob `name` to `value` in the fields being built."""
    if name in COUNTS:  # n blocks: the base's first n, then new ones with the defaults
        field = COUNTS[name]
        for part in (field, "conv_kernel") if field == "conv_channels" else (field,):
            old = list(getattr(base, part))
            values[part] = [old[i] if i < len(old) else BLOCK_DEFAULTS[part] for i in range(value)]
        if field == "conv_channels" and value != len(base.conv_channels):
            values["conv_padding"] = []  # the base's padding was per block of its own depth
    elif name == "width":
        values["conv_channels"] = [max(1, round(c * value)) for c in values["conv_channels"]]
    else:
        values[name] = value


def _suggest_blocks(trial: Any, spec: Any, base: Config, values: Values, block: str) -> None:
    """The per-block knobs of one part, block by block (conv_channels_0, conv_kernel_0,
    conv_channels_1, ...)."""
    members = [k for k in KNOBS if k.block == block]
    for i in range(len(values[members[0].name])):
        for knob in members:
            param = spec.space.get(knob.name)
            if param is not None:
                values[knob.name][i] = _draw(trial, param, f"{knob.name}_{i}", knob.kind)


def knob_value(config: Config, name: str) -> Any:
    """The value of knob `name` in `config` (per block: one value where all blocks agree)."""
    if name in COUNTS:
        return len(getattr(config, COUNTS[name]))
    if name == "width":
        return 1.0
    value = getattr(config, name)
    if name in PER_BLOCK and len(set(value)) == 1:
        return value[0]
    return value


def knob_updates(config: Config, name: str, value: Any) -> dict[str, Any]:
    """The Config fields that set knob `name` to `value` in `config`: a per-block knob in every
    block; a count drops blocks or adds copies of the last."""
    if name == "depth":
        old, extend = config.conv_channels, value - len(config.conv_channels)
        channels = old[:value] + (old[-1] if old else BLOCK_DEFAULTS["conv_channels"],) * max(
            extend, 0
        )
        kernels = config.conv_kernel[:value] + ((config.conv_kernel or (3,))[-1],) * max(extend, 0)
        padding = config.conv_padding[:value] + ("same",) * max(extend, 0)
        return {
            "conv_channels": channels,
            "conv_kernel": kernels if config.conv_kernel or value else (),
            "conv_padding": padding if config.conv_padding else (),
        }
    if name == "dense_layers":
        old = config.dense_units
        last = old[-1] if old else BLOCK_DEFAULTS["dense_units"]
        return {"dense_units": old[:value] + (last,) * max(value - len(old), 0)}
    if name in PER_BLOCK:
        blocks = config.dense_units if name == "dense_units" else config.conv_channels
        return {name: (value,) * len(blocks)}
    if name == "width":
        return {"conv_channels": tuple(max(1, round(c * value)) for c in config.conv_channels)}
    return {name: value}


def fields_of(config: Config) -> Values:
    """`config`'s fields as a knob's condition reads them."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(config).items()}
