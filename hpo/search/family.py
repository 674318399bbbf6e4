"""A user's own net as the searched family (`--model module:factory`) or as the original
(`--original-model`): where its factory is imported from, which knobs it declares, and the spec
that searches them beside hpo's training knobs.

A factory is `factory(input_shape, n_outputs, **params) -> nn.Module`: input_shape is (C, H, W)
of an image or (F,) of a feature vector, the module maps a batch of those (floats, pixels in
[0, 1]) to (batch, n_outputs). Its knobs are an attribute SPACE of the factory (or of its
module, for a file of one factory) in the format of a spec's [space] table, for example

    SPACE = {"width": {"low": 8, "high": 64, "log": True}, "dense": [64, 128, 256]}

and a factory that takes `dropout` has it searched in 0..0.5 unless SPACE says otherwise. The
knobs a factory does not take (its keyword defaults) stay at those defaults."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from hpo.search.space import ARCHITECTURE
from hpo.train.factory import load_factory
from hpo.util.errors import UserError

DROPOUT = {"low": 0.0, "high": 0.5}  # searched where the factory takes `dropout`


def takes(factory: Callable[..., Any]) -> dict[str, Any]:
    """The factory's keyword parameters after (input_shape, n_outputs), with their defaults
    (inspect.Parameter.empty where it has none); '**' where it takes any keyword."""
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return {"**": None}
    out: dict[str, Any] = {}
    for p in params[2:]:
        if p.kind is p.VAR_KEYWORD:
            out["**"] = None
        elif p.kind is not p.VAR_POSITIONAL:
            out[p.name] = p.default
    return out


def family_space(
    factory: Callable[..., Any],
    ref: str,
    extra: dict[str, Any] | None = None,
    flag: str = "--model",
) -> dict[str, Any]:
    """The factory's knobs as Params: its SPACE, `dropout` where it takes one, and `extra` (a
    spec's [space] entries for it) over both. Names must be parameters it takes and not hpo's
    training knobs or config fields (hpo's architecture knobs are not searched beside a
    user's net, so their names are free); one UserError says which is not."""
    from hpo.search.params import param_of_kind
    from hpo.search.spec import CONFIG_FIELDS, SPACE_KEYS, SpecError

    table = getattr(factory, "SPACE", None)
    if table is None:  # a file of one factory may keep it beside it, at the module's top
        table = getattr(sys.modules.get(getattr(factory, "__module__", "")), "SPACE", None)
    table = table or {}
    if not isinstance(table, dict):
        raise UserError(f"{flag} {ref}: SPACE must be a dict like a spec's [space] table")
    params = takes(factory)
    if "dropout" in params and "dropout" not in table:
        table = {**table, "dropout": DROPOUT}
    table = {**table, **(extra or {})}
    space = {}
    for name, value in table.items():
        if (name in SPACE_KEYS or name in CONFIG_FIELDS) and name not in ARCHITECTURE:
            raise UserError(
                f"{flag} {ref}: its knob {name!r} has the name of one of hpo's own; rename it"
            )
        if name not in params and "**" not in params:
            raise UserError(f"{flag} {ref}: SPACE names {name!r}, which the factory does not take")
        try:
            space[name] = param_of_kind(name, value, _kind(value), SpecError)
        except SpecError as e:
            raise UserError(f"{flag} {ref}: SPACE {e}") from None
    return space


def _kind(value: Any) -> type:
    """What a SPACE entry's values are: a range's numbers, a choice list's first item."""
    sample = value.get("low") if isinstance(value, dict) else value
    if isinstance(value, list) and value:
        sample = value[0]
    if isinstance(value, dict):
        both = (value.get("low"), value.get("high"))
        return int if all(isinstance(v, int) and not isinstance(v, bool) for v in both) else float
    for kind in (bool, int, float, str):
        if isinstance(sample, kind):
            return kind
    return type(sample)


def with_model(
    spec: Any, ref: str, extra: dict[str, Any] | None = None, flag: str = "--model"
) -> tuple[Any, str]:
    """(`spec` searching the user's family `ref` instead of hpo's nets, a line saying so): the
    factory's knobs in place of hpo's architecture knobs, the training knobs as they were."""
    from hpo.train.config import Config

    factory = load_factory(ref, flag)
    model_space = family_space(factory, ref, extra, flag)
    dropped = [name for name in spec.space if name in ARCHITECTURE]
    space = {k: v for k, v in spec.space.items() if k not in ARCHITECTURE}
    own = {f.name for f in fields(Config)} - set(ARCHITECTURE)
    base = {**{k: v for k, v in spec.base.items() if k in own}, "model": ref}
    searched = ", ".join(model_space) or "none (its defaults)"
    line = f"note: {flag} {ref}: its knobs ({searched}) are searched with hpo's training knobs" + (
        f"; hpo's architecture knobs ({', '.join(dropped)}) are not" if dropped else ""
    )
    return replace(spec, space=space, base=base, model_space=model_space), line


def source_digest(ref: str) -> str:
    """The SHA-256 of the file that defines `ref`'s module, so that a cached replay of a user's
    net is not reused once its code has changed ('' where it has no file)."""
    import hashlib

    module = sys.modules.get(getattr(load_factory(ref), "__module__", ""), None)
    path = getattr(module, "__file__", None)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""


def as_original(config: Any, ref: str) -> Any:
    """`config` (the task's original, or --original-config's) with the user's net `ref` at its
    default knobs in place of hpo's architecture fields: its optimiser settings stay."""
    from hpo.train.config import Config

    load_factory(ref, "--original-model")  # its one line now, not at the replay
    default = Config()
    arch = {f.name: getattr(default, f.name) for f in fields(Config) if f.name in ARCHITECTURE}
    return config.replace(**arch, model=ref, model_params=())


def describe_family(config: Any) -> str:
    """A user's net in a few words: 'box_net(width=16, dense=100)'."""
    knobs = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.model_params
    )
    return f"{config.model.rpartition(':')[2]}({knobs})"
