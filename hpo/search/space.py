"""trial -> Config: the search space as a plain function of an Optuna trial and a Spec."""

from __future__ import annotations

from typing import Any

from hpo.search.spec import Spec
from hpo.train.config import Config


def suggest(trial: Any, spec: Spec, base: Config) -> Config:
    """The Config for `trial`: spec.space knobs suggested, everything else from `base`.

    Only suggest_* calls on `trial`, so optuna's FixedTrial works for tests. Parameter names
    are stable snake_case and per-block ones exist only when their block does.
    """
    space = spec.space

    def get(name: str, default: Any, trial_name: str | None = None) -> Any:
        param = space.get(name)
        if param is None:
            return default
        if param.fixed:
            return param.value
        label = trial_name or name
        if param.choices is not None:
            return trial.suggest_categorical(label, list(param.choices))
        if isinstance(param.low, int) and isinstance(param.high, int) and name != "width":
            return trial.suggest_int(
                label, param.low, param.high, step=param.step or 1, log=param.log
            )
        return trial.suggest_float(label, param.low, param.high, step=param.step, log=param.log)

    # conv trunk
    depth = get("depth", len(base.conv_channels))
    same_shape = depth == len(base.conv_channels)
    channels, kernels = [], []
    for i in range(depth):
        channels.append(get("conv_channels", _at(base.conv_channels, i, 32), f"conv_channels_{i}"))
        kernels.append(get("conv_kernel", _at(base.conv_kernel, i, 3), f"conv_kernel_{i}"))
    width = get("width", 1.0) if depth else 1.0
    channels = [max(1, round(c * width)) for c in channels]
    trunk: dict[str, Any] = {
        "conv_channels": tuple(channels),
        "conv_kernel": tuple(kernels),
        "conv_padding": base.conv_padding if same_shape else (),
    }
    if depth:
        trunk |= {
            "convs_per_block": get("convs_per_block", base.convs_per_block),
            "downsample": get("downsample", base.downsample),
            "residual": get("residual", base.residual),
            "conv_dropout": get("conv_dropout", base.conv_dropout),
            "global_pool": get("global_pool", base.global_pool),
        }
    # dense head
    layers = get("dense_layers", len(base.dense_units))
    units = [
        get("dense_units", _at(base.dense_units, i, 128), f"dense_units_{i}")
        for i in range(layers)
    ]
    head: dict[str, Any] = {"dense_units": tuple(units)}
    if layers:
        head["dense_dropout"] = get("dense_dropout", base.dense_dropout)
    # optimisation
    optimizer = get("optimizer", base.optimizer)
    opt: dict[str, Any] = {"optimizer": optimizer, "lr": get("lr", base.lr)}
    if optimizer == "sgd":
        opt |= {
            "momentum": get("momentum", base.momentum),
            "nesterov": get("nesterov", base.nesterov),
        }
    opt["weight_decay"] = get("weight_decay", base.weight_decay)
    opt["l1"] = get("l1", base.l1)
    schedule = get("schedule", base.schedule)
    opt["schedule"] = schedule
    if schedule == "cosine":
        opt["warmup_epochs"] = get("warmup_epochs", base.warmup_epochs)
    if schedule == "onecycle":
        for name in ("lr_start", "lr_peak_at", "lr_end"):
            opt[name] = get(name, getattr(base, name))
    batch_norm = get("batch_norm", base.batch_norm)
    norm: dict[str, Any] = {"batch_norm": batch_norm}
    if batch_norm:
        for name in ("bn_scale", "bn_momentum", "bn_lr_scale"):
            norm[name] = get(name, getattr(base, name))
    augment = get("augment", base.augment)
    aug: dict[str, Any] = {"augment": augment}
    if augment:
        aug |= {
            "aug_pad": get("aug_pad", base.aug_pad),
            "aug_flip": get("aug_flip", base.aug_flip),
        }
    return base.replace(
        input_norm=get("input_norm", base.input_norm),
        **trunk,
        **head,
        **opt,
        stem=get("stem", base.stem),
        init=get("init", base.init),
        activation=get("activation", base.activation),
        **norm,
        logit_scale=get("logit_scale", base.logit_scale),
        label_smoothing=get("label_smoothing", base.label_smoothing),
        batch_size=get("batch_size", base.batch_size),
        epochs=get("epochs", spec.epochs),
        **aug,
        lookahead=get("lookahead", base.lookahead),
        tta=get("tta", base.tta),
    )


def _at(values: tuple, i: int, default: Any) -> Any:
    return values[i] if i < len(values) else default
