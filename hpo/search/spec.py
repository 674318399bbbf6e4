"""Study specs: studies/<task>.toml loaded and validated into a frozen Spec."""

from __future__ import annotations

import importlib.resources
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hpo.search.params import Param, param_of_kind
from hpo.search.space import ARCHITECTURE, KNOBS, PER_BLOCK
from hpo.train.config import Config
from hpo.util.errors import UserError

# The registry of sampler and pruner names: the CLI choices, the spec validation and the
# factories (hpo.study.create) are all drawn from it.
SAMPLERS = ("tpe", "random", "cmaes", "gp")
PRUNERS = ("hyperband", "median", "none")
OBJECTIVES = ("mean", "worst")

# Searchable knobs: name -> kind of value, from the one table (hpo.search.space.KNOBS).
SPACE_KEYS: dict[str, type] = {knob.name: knob.kind for knob in KNOBS}
CONFIG_FIELDS = {f.name for f in fields(Config)}
STUDY_KEYS = {
    "sampler",
    "pruner",
    "epochs",
    "trial_timeout",
    "original_epochs",
    "seeds",
    "objective",
    "n_startup_trials",
    "local_moves",  # the share of trials that change 1-3 knobs of the best trial so far
    "prune_local_moves",  # whether the pruner may stop a local move (default: no)
    "random_share",  # the share of trials drawn at random from the whole space
    "enqueue",  # a spec (path relative to this one) whose fixed [space] values are trial 0
    "trial_timeout_device",  # "any" | "cuda": where trial_timeout applies
}


class SpecError(UserError):
    """A spec file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Spec:
    """A validated study spec."""

    task: str  # the task's name; "" where the spec names a data set instead
    path: str | None = None
    dataset: str | None = None  # a data set's path (`data = "PATH"`), in place of a task
    sampler: str = "tpe"
    pruner: str = "hyperband"
    epochs: int = 10  # epochs per trial, the pruner's maximum resource
    # seconds; a longer trial is stopped and pruned (on a GPU: hpo.train.loop.TimeLimit)
    trial_timeout: float | None = None
    # "cuda": trial_timeout was sized for a GPU and is not applied on a CPU (there a trial takes
    # 100x longer; --trial-timeout still sets one); "any": it applies everywhere
    trial_timeout_device: str = "any"
    original_epochs: int | None = None  # replay budget for the original; None = its own
    seeds: int = 1  # seeds each config is trained under
    objective: str = "mean"  # over seeds: "mean" or "worst"
    n_startup_trials: int = 10  # random trials before TPE / GP model the space
    # the share of trials that are local moves around the best trial so far (hpo.search.samplers)
    local_moves: float = 0.0
    # A local move is 1-3 knobs away from the best trial and is after differences of tenths of
    # a point, which its early epochs cannot show: the pruner does not stop it unless this is set
    prune_local_moves: bool = False
    # the share of trials drawn at random from the whole space, beside the sampler's model
    # (hpo.search.samplers.RandomShare)
    random_share: float = 0.0
    # params of a first trial that every new study of this spec runs (from [study] enqueue)
    enqueue: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)  # task data setting overrides
    space: dict[str, Param] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)  # Config fields fixed for every trial
    # the knobs of a user's own net ([base] model = "module:factory"; hpo.search.family),
    # searched beside hpo's training knobs and given to the factory as keyword arguments
    model_space: dict[str, Param] = field(default_factory=dict)
    # the [space] entries for that net, read once its factory is imported (hpo.search.family)
    model_table: dict[str, Any] = field(default_factory=dict)


def default_spec_path(task: str) -> Path:
    """studies/<task>.toml in the working directory if there is one (a user's own), else the
    spec shipped inside the package (hpo.studies, from the repository's studies/ folder)."""
    local = Path("studies") / f"{task}.toml"
    if local.exists():
        return local
    shipped = importlib.resources.files("hpo.studies") / f"{task}.toml"
    return Path(str(shipped)) if shipped.is_file() else local


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file; every problem is a SpecError of one line."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read spec file {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    return parse_spec(raw, str(path))


def enqueued_params(spec: Spec, other: Spec, where: str) -> dict[str, Any]:
    """The values of `other` (a spec whose knobs are fixed) for every knob that `spec`
    searches, checked to lie in `spec`'s space, so that they make one trial of it."""
    out: dict[str, Any] = {}
    for name, param in spec.space.items():
        mine = other.space.get(name)
        if param.fixed or name in PER_BLOCK or mine is None:
            continue
        if not mine.fixed:
            raise SpecError(f"{where}: [study] enqueue: {name} is searched there, not fixed")
        value = mine.value
        inside = (
            value in param.choices
            if param.choices is not None
            else param.low <= value <= param.high  # type: ignore[operator]
        )
        if not inside:
            raise SpecError(f"{where}: [study] enqueue: {name} = {value!r} is outside [space]")
        out[name] = value
    return out


def parse_spec(raw: dict[str, Any], where: str = "spec") -> Spec:
    """Validate a spec given as a dict (the parsed TOML)."""

    def fail(msg: str) -> SpecError:
        return SpecError(f"{where}: {msg}")

    unknown = sorted(set(raw) - {"task", "study", "data", "space", "base"})
    if unknown:
        raise fail(f"unknown top-level key(s): {', '.join(unknown)}")
    raw = dict(raw)
    dataset = raw.get("data")
    if isinstance(dataset, dict) and "path" in dataset:  # [data] path = "PATH", settings
        dataset = dict(dataset)
        raw["data"], dataset = dataset, dataset.pop("path")
    elif isinstance(dataset, str):  # data = "PATH"
        raw["data"] = {}
    else:
        dataset = None
    task = raw.get("task", "" if dataset else None)
    if not isinstance(task, str):
        raise fail("'task' must be given (a task's name), or 'data' (a data set's path)")
    if dataset is not None and not (isinstance(dataset, str) and dataset):
        raise fail("'data' must be the path of a data set")
    study = _table(raw, "study", fail)
    bad = sorted(set(study) - STUDY_KEYS)
    if bad:
        raise fail(
            f"[study] unknown key(s): {', '.join(bad)}; known: {', '.join(sorted(STUDY_KEYS))}"
        )
    kw: dict[str, Any] = {}
    for key, value in study.items():
        kw[key] = _study_value(key, value, fail)
    base = _table(raw, "base", fail)
    space, theirs = _space(_table(raw, "space", fail), base, fail)

    try:
        Config.from_dict(base)
    except (TypeError, ValueError) as e:
        raise fail(f"[base] {e}") from None
    enqueue = kw.pop("enqueue", None)
    spec = Spec(
        task=task,
        path=where,
        dataset=dataset,
        data=_table(raw, "data", fail),
        space=space,
        base=base,
        model_table=theirs,
        **kw,
    )
    if enqueue is None:
        return spec
    other = load_spec(Path(where).parent / enqueue)
    if other.task != task:
        raise fail(f"[study] enqueue: {enqueue} is a spec of task {other.task!r}")
    return replace(spec, enqueue=enqueued_params(spec, other, where))


def _space(raw: dict[str, Any], base: dict[str, Any], fail) -> tuple[dict[str, Param], dict]:
    """([space] as Params, the entries left for a user's net): beside one ([base] model), the
    keys that are not hpo's training knobs are its own, read with its factory."""
    model = base.get("model") if isinstance(base.get("model"), str) else None
    theirs = {k: v for k, v in raw.items() if model and (k not in SPACE_KEYS or k in ARCHITECTURE)}
    space = {name: _param(name, value, fail) for name, value in raw.items() if name not in theirs}
    for param in space.values():
        _check_values(param, fail)
    return space, theirs


def _check_values(param: Param, fail) -> None:
    """Every value a knob of the config itself may take must be one the config accepts: a
    named choice that exists (optimizer, activation, ...), a range inside the field's domain
    (a dropout below 1, a positive lr). Structural knobs (depth, width, ...) have no field."""
    if param.name not in CONFIG_FIELDS or param.name in PER_BLOCK:
        return
    if param.choices is not None:
        values = param.choices
    elif param.fixed:
        values = (param.value,)
    else:
        values = (param.low, param.high)
    for value in values:
        try:
            Config().replace(**{param.name: value})
        except ValueError as e:
            raise fail(f"[space] {e}") from None


def _table(raw: dict[str, Any], key: str, fail) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise fail(f"[{key}] must be a table")
    return value


def _study_value(key: str, value: Any, fail) -> Any:
    if key == "sampler" and value not in SAMPLERS:
        raise fail(f"[study] sampler must be one of {', '.join(SAMPLERS)}, got {value!r}")
    if key == "pruner" and value not in PRUNERS:
        raise fail(f"[study] pruner must be one of {', '.join(PRUNERS)}, got {value!r}")
    if key == "objective" and value not in OBJECTIVES:
        raise fail(f"[study] objective must be one of {', '.join(OBJECTIVES)}, got {value!r}")
    if key in ("epochs", "original_epochs", "seeds", "n_startup_trials"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise fail(f"[study] {key} must be a positive integer, got {value!r}")
    if key in ("local_moves", "random_share") and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1
    ):
        raise fail(f"[study] {key} must be a share between 0 and 1, got {value!r}")
    if key == "prune_local_moves" and not isinstance(value, bool):
        raise fail(f"[study] prune_local_moves must be true or false, got {value!r}")
    if key == "trial_timeout_device" and value not in ("any", "cuda"):
        raise fail(f"[study] trial_timeout_device must be 'any' or 'cuda', got {value!r}")
    if key == "enqueue" and not (isinstance(value, str) and value):
        raise fail(f"[study] enqueue must be the path of a spec file, got {value!r}")
    if key == "trial_timeout":
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise fail(
                f"[study] trial_timeout must be a positive number of seconds, got {value!r}"
            )
    return value


def _param(name: str, value: Any, fail) -> Param:
    kind = SPACE_KEYS.get(name)
    if kind is None:
        raise fail(f"[space] unknown parameter {name!r}; known: {', '.join(SPACE_KEYS)}")
    return param_of_kind(name, value, kind, fail)
