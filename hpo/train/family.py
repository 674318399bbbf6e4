"""A user's own nn.Module (Config.model, hpo.search.family) as a Net that hpo's training loop,
pruning, seeds, MLflow logging and `hpo train` use unchanged, and the check at the start that it
builds and gives (batch, n_outputs) on one batch of the data."""

from __future__ import annotations

import torch
from torch import nn

from hpo.train.config import Config
from hpo.train.factory import load_factory
from hpo.util.errors import UserError, first_line


def build_family(config: Config, in_shape: tuple[int, ...], out_units: int) -> nn.Module:
    """factory(in_shape, out_units, **config.model_params): the user's module itself
    (hpo.train.models puts it inside hpo's Net)."""
    factory = load_factory(config.model)
    module = factory(tuple(in_shape), out_units, **dict(config.model_params))
    if not isinstance(module, nn.Module):
        raise TypeError(f"{config.model} returned a {type(module).__name__}, not an nn.Module")
    return module


def check_family(config: Config, x: torch.Tensor, out_units: int, flag: str = "--model") -> None:
    """Build `config`'s user net and run it on the batch `x` (floats as the net sees them),
    before any trial: a factory that raises, returns no module or gives the wrong shape is one
    UserError naming it."""
    if not config.model:
        return
    try:
        net = build_family(config, tuple(x.shape[1:]), out_units)
    except UserError:
        raise
    except Exception as e:
        raise UserError(
            f"{flag} {config.model}: building it failed: {type(e).__name__}: {first_line(e)}"
        ) from None
    try:
        with torch.no_grad():
            out = net.eval()(x)  # the input scaling hpo's Net adds does not change a shape
    except Exception as e:
        shape = "x".join(map(str, x.shape[1:]))
        raise UserError(
            f"{flag} {config.model}: it fails on a batch of {shape} inputs: "
            f"{type(e).__name__}: {first_line(e)}"
        ) from None
    want = (x.shape[0], out_units)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(
            f"{flag} {config.model}: it gives {got} on a batch of {x.shape[0]}, not "
            f"{want} (batch, n_outputs)"
        )
