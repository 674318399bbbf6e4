"""Build a PyTorch network from a Config: conv blocks, optional residuals, a dense head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hpo.train.config import Config

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


class Whiten(nn.Module):
    """A frozen 2x2 'valid' conv that whitens image patches, fitted from training images.

    Its 2 x 12 filters are the eigenvectors of the (centred) 2x2x3 patch covariance divided by
    sqrt(eigenvalue + eps), and their negatives, so that the activation after it keeps both
    signs of every decorrelated component (airbench's whitening layer). The bias starts at the
    value that centres the patches and is the only part that trains.
    """

    kernel = 2

    def __init__(self, channels: int, eps: float = 5e-4) -> None:
        super().__init__()
        k = self.kernel
        self.eps = eps  # on the eigenvalues of standardised patches (airbench: 5e-4)
        self.conv = nn.Conv2d(channels, 2 * channels * k * k, k, padding=0, bias=True)
        self.conv.weight.requires_grad_(False)
        self.out_channels = self.conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set the filters from float images `x` (N, C, H, W) as the net sees them."""
        x = x.float().contiguous()
        c, k = x.shape[1], self.kernel
        # per-channel standardisation first, so eps means the same for any input scale
        mean_c = x.mean(dim=(0, 2, 3))
        std_c = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
        z = (x - mean_c.view(1, c, 1, 1)) / std_c.view(1, c, 1, 1)
        patches = z.unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
        flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
        centred = flat - flat.mean(dim=0)
        cov = centred.T @ centred / flat.shape[0]
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
        filters = (eigenvectors.T / (eigenvalues + self.eps).sqrt().view(-1, 1)).flip(0)
        filters = filters.view(-1, c, k, k) / std_c.double().view(1, c, 1, 1)  # on raw x
        weight = torch.cat([filters, -filters]).to(self.conv.weight.dtype)
        self.conv.weight.copy_(weight)
        # bias: minus the filter response to the mean patch (per-channel mean, in raw units)
        mean_patch = mean_c.double().view(1, c, 1, 1).expand(1, c, k, k)
        self.conv.bias.copy_(-(weight.double() * mean_patch).sum(dim=(1, 2, 3)).float())


class Scale(nn.Module):
    """Multiply by a constant (the logit scale)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class Net(nn.Module):
    """Conv trunk -> flatten (or global pool) -> dense head; knows its max-norm layers.

    In eval mode with `tta` > 0 the output is the mean over test-time views of each image
    (1: itself and its mirror; 2: also shifted by one pixel up-left and down-right, each with
    its mirror, weighted as airbench does), so a saved model predicts as it was evaluated.
    """

    def __init__(
        self, trunk: nn.Sequential, head: nn.Sequential, max_norm: float, tta: int = 0
    ) -> None:
        super().__init__()
        self.trunk, self.head, self.max_norm, self.tta = trunk, head, max_norm, tta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.tta == 0:
            return self._logits(x)
        mirrored = self._mirrored(x)
        if self.tta == 1:
            return mirrored
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        h, w = x.shape[-2:]
        shifted = [padded[..., :h, :w], padded[..., 2 : h + 2, 2 : w + 2]]
        translated = torch.stack([self._mirrored(s) for s in shifted]).mean(0)
        return 0.5 * mirrored + 0.5 * translated

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))

    def _mirrored(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self._logits(x) + 0.5 * self._logits(x.flip(-1))

    def stem(self) -> Whiten | None:
        """The whitening stem, if the net has one (it is fitted from data before training)."""
        return next((m for m in self.trunk if isinstance(m, Whiten)), None)

    def l1_weights(self) -> list[tuple[torch.Tensor, bool]]:
        """The weights a decoupled L1 step shrinks (every conv and dense kernel, no biases),
        each with whether batch norm follows it (then only the weights' direction matters)."""
        modules = list(self.modules())
        return [
            (m.weight, isinstance(after, nn.BatchNorm1d | nn.BatchNorm2d))
            for m, after in zip(modules, [*modules[1:], None], strict=True)
            if isinstance(m, nn.Conv2d | nn.Linear) and m.weight.requires_grad
        ]

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Keras MaxNorm(max_norm) on hidden dense layers: each unit's incoming weights."""
        if self.max_norm <= 0:
            return
        hidden = [m for m in self.head if isinstance(m, nn.Linear)][:-1]
        for layer in hidden:
            layer.weight.copy_(torch.renorm(layer.weight, 2, 0, self.max_norm))


def _conv(
    cin: int, cout: int, k: int, stride: int, padding: str, config: Config, pool: bool = False
) -> list:
    """conv [-> 2x2 max-pool when `pool`] [-> batch norm] -> activation."""
    pad = k // 2 if padding == "same" else 0
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=not config.batch_norm)
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    if config.batch_norm:
        layers.append(_norm(nn.BatchNorm2d, cout, config))
    layers.append(_ACTIVATIONS[config.activation]())
    return layers


def _norm(kind: type, features: int, config: Config) -> nn.Module:
    norm = kind(features, momentum=config.bn_momentum)
    norm.weight.requires_grad_(config.bn_scale)  # False: stays at 1, only the shift learns
    return norm


def build_model(config: Config, in_shape: tuple[int, int, int], out_units: int) -> Net:
    """The network for `config` on inputs of shape (C, H, W) with `out_units` outputs (a
    user's own, where config.model names its factory: hpo.train.family)."""
    if config.model:
        return _family_net(config, in_shape, out_units)
    trunk: list[nn.Module] = [Centre()] if config.input_norm == "centred" else []
    channels = in_shape[0]
    if config.stem == "whiten":
        stem = Whiten(channels)
        trunk += [stem, _ACTIVATIONS[config.activation]()]
        channels = stem.out_channels
    for i, width in enumerate(config.conv_channels):
        k = config.conv_kernel[i] if config.conv_kernel else 3
        padding = config.conv_padding[i] if config.conv_padding else "same"
        for j in range(config.convs_per_block):
            last = j == config.convs_per_block - 1
            stride = 2 if last and config.downsample == "stride" else 1
            pool = j == 0 and config.downsample == "pool_first"
            trunk += _conv(channels, width, k, stride, padding, config, pool)
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
            head.append(_norm(nn.BatchNorm1d, units, config))
        head.append(_ACTIVATIONS[config.activation]())
        if config.dense_dropout > 0:
            head.append(nn.Dropout(config.dense_dropout))
        width = units
    head.append(nn.Linear(width, config.out_units or out_units))
    if config.logit_scale != 1.0:
        head.append(Scale(config.logit_scale))
    net = Net(trunk_seq, nn.Sequential(*head), config.max_norm, config.tta)
    if config.init == "glorot":
        _glorot(net)
    elif config.init == "dirac":
        _dirac(net)
    return net


def _family_net(config: Config, in_shape: tuple[int, ...], out_units: int) -> Net:
    """A user's own module (hpo.train.family) inside hpo's Net: the input scaling of
    input_norm in front of it, no head of hpo's after it."""
    from hpo.train.family import build_family

    module = build_family(config, in_shape, out_units)
    trunk = nn.Sequential(*([Centre()] if config.input_norm == "centred" else []), module)
    return Net(trunk, nn.Sequential(), max_norm=0.0, tta=config.tta)


def _dirac(net: nn.Module) -> None:
    """Each trainable conv passes its first min(in, out) channels through unchanged at the
    start (on top of torch's random init of the rest), as airbench initialises its convs."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d) and module.weight.requires_grad:
            w = module.weight.data
            nn.init.dirac_(w[: w.shape[1]])


def _glorot(net: nn.Module) -> None:
    """Keras defaults, for faithful replays: glorot_uniform kernels, zero biases."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.Linear) and module.weight.requires_grad:
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
