"""Build a PyTorch network from a Config: conv blocks, optional residuals, a dense head."""

from __future__ import annotations

import torch
from torch import nn

from hpo.config import Config

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class Residual(nn.Module):
    """x + f(x): two 3x3 convs at constant width (the ResNet-like unit of the fast CIFAR nets)."""

    def __init__(self, channels: int, config: Config) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(2):
            layers += _conv(channels, channels, 3, 1, "same", config)
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Centre(nn.Module):
    """[0, 1] -> [-1, 1], inside the net so a saved model takes the same inputs either way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 - 1.0


class Net(nn.Module):
    """Conv trunk -> flatten (or global pool) -> dense head; knows its max-norm layers."""

    def __init__(self, trunk: nn.Sequential, head: nn.Sequential, max_norm: float) -> None:
        super().__init__()
        self.trunk, self.head, self.max_norm = trunk, head, max_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))

    def l1_weights(self) -> list[tuple[torch.Tensor, bool]]:
        """The weights a decoupled L1 step shrinks (every conv and dense kernel, no biases),
        each with whether batch norm follows it (then only the weights' direction matters)."""
        modules = list(self.modules())
        return [
            (m.weight, isinstance(after, nn.BatchNorm1d | nn.BatchNorm2d))
            for m, after in zip(modules, [*modules[1:], None], strict=True)
            if isinstance(m, nn.Conv2d | nn.Linear)
        ]

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Keras MaxNorm(max_norm) on hidden dense layers: each unit's incoming weights."""
        if self.max_norm <= 0:
            return
        hidden = [m for m in self.head if isinstance(m, nn.Linear)][:-1]
        for layer in hidden:
            layer.weight.copy_(torch.renorm(layer.weight, 2, 0, self.max_norm))


def _conv(cin: int, cout: int, k: int, stride: int, padding: str, config: Config) -> list:
    pad = k // 2 if padding == "same" else 0
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=not config.batch_norm)
    ]
    if config.batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(_ACTIVATIONS[config.activation]())
    return layers


def build_model(config: Config, in_shape: tuple[int, int, int], out_units: int) -> Net:
    """The network for `config` on inputs of shape (C, H, W) with `out_units` outputs."""
    trunk: list[nn.Module] = [Centre()] if config.input_norm == "centred" else []
    channels = in_shape[0]
    for i, width in enumerate(config.conv_channels):
        k = config.conv_kernel[i] if config.conv_kernel else 3
        padding = config.conv_padding[i] if config.conv_padding else "same"
        for j in range(config.convs_per_block):
            last = j == config.convs_per_block - 1
            stride = 2 if last and config.downsample == "stride" else 1
            trunk += _conv(channels, width, k, stride, padding, config)
            channels = width
        if config.downsample == "pool":
            trunk.append(nn.MaxPool2d(2))
        if config.residual:
            trunk.append(Residual(channels, config))
        if config.conv_dropout > 0:
            trunk.append(nn.Dropout(config.conv_dropout))
    if config.global_pool != "none" and config.conv_channels:
        pool = nn.AdaptiveMaxPool2d(1) if config.global_pool == "max" else nn.AdaptiveAvgPool2d(1)
        trunk.append(pool)
    trunk.append(nn.Flatten())
    trunk_seq = nn.Sequential(*trunk)
    with torch.no_grad():  # one zero image gives the flattened width
        try:
            features = trunk_seq.eval()(torch.zeros(1, *in_shape)).shape[1]
        except RuntimeError as e:
            size = f"{in_shape[1]}x{in_shape[2]}"
            raise ValueError(f"the conv trunk does not fit a {size} image ({e})") from None
    trunk_seq.train()
    if features == 0:
        raise ValueError(f"the conv trunk reduces a {in_shape[1]}x{in_shape[2]} image to nothing")

    head: list[nn.Module] = []
    width = features
    for units in config.dense_units:
        head.append(nn.Linear(width, units, bias=not config.batch_norm))
        if config.batch_norm:
            head.append(nn.BatchNorm1d(units))
        head.append(_ACTIVATIONS[config.activation]())
        if config.dense_dropout > 0:
            head.append(nn.Dropout(config.dense_dropout))
        width = units
    head.append(nn.Linear(width, config.out_units or out_units))
    net = Net(trunk_seq, nn.Sequential(*head), config.max_norm)
    if config.init == "glorot":
        _glorot(net)
    return net


def _glorot(net: nn.Module) -> None:
    """Keras defaults, for faithful replays: glorot_uniform kernels, zero biases."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
