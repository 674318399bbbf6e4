"""What `hpo study` was asked to do (validated once, here), the spec with the flags laid over it,
and the summary a run gives back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hpo.search.record import Replay
from hpo.search.spec import Param, Spec, default_spec_path, load_spec, parse_spec
from hpo.util.errors import UserError
from hpo.util.outcomes import Stop

if TYPE_CHECKING:  # the tasks import torch; options are built before workers start
    from hpo.tasks.base import Task

Echo = Callable[[str], None]
SECOND_OBJECTIVES = {"train_seconds": "minimize"}  # optional objectives after the metric


def parse_objectives(text: str) -> tuple[str, ...]:
    """'metric' or 'metric,train_seconds' -> names; a UserError names what is wrong."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    allowed = ", ".join(["metric", *(f"metric,{n}" for n in SECOND_OBJECTIVES)])
    if not names or names[0] != "metric" or any(n not in SECOND_OBJECTIVES for n in names[1:]):
        raise UserError(f"--objective must be one of {allowed}, got {text!r}")
    if len(set(names)) != len(names):
        raise UserError(f"--objective names an objective twice: {text!r}")
    return names


def directions_of(task: Task, objectives: tuple[str, ...]) -> list[str]:
    return [task.direction, *(SECOND_OBJECTIVES[n] for n in objectives[1:])]


def objective_names(task: Task, objectives: tuple[str, ...]) -> list[str]:
    """The objectives as shown and stored: 'metric' is the task's metric name."""
    return [task.metric, *objectives[1:]]


@dataclass
class Options:
    """What `hpo study` was asked to do; None means: take it from the spec or the environment."""

    trials: int = 20
    timeout: float | None = None  # seconds: no trial starts after them (see deadline)
    # time.time() after which no trial starts; `hpo study` sets it from --timeout at the start
    # of the command, so that one timeout bounds it and all of its --workers; None: from now
    deadline: float | None = None
    storage: str | None = None
    study_name: str | None = None
    tracking_uri: str | None = None
    sampler: str | None = None
    pruner: str | None = None
    epochs: int | None = None
    device: str = "auto"
    seed: int | None = None
    spec: str | None = None
    trial_timeout: float | None = None
    seeds: int | None = None  # seeds each config is trained under
    # ("metric", "train_seconds"): multi-objective; the text of --objective is parsed here
    objectives: tuple[str, ...] | str = ("metric",)
    original: bool = True
    baselines: bool = True
    tracking: bool = True
    data: dict[str, Any] = field(default_factory=dict)  # data setting overrides
    # a user's data set (hpo study PATH): its target columns, its kind where the data does not
    # say it, whether unreadable images are skipped; any task: the user's own net (a TOML file)
    target: tuple[str, ...] = ()
    kind: str | None = None
    skip_bad: bool = False
    original_config: str | None = None
    # a user's own nn.Module factory ("module:factory"): the searched family, or the original
    model: str | None = None
    original_model: str | None = None
    # a worker of `--workers K`: it trains; the parent process sums up (original, plots)
    worker: bool = False
    worker_index: int = 0  # 0..K-1 in a worker of --workers K: offsets the sampler's seed
    started: float | None = None  # time.time() when the command started (its time line)

    def __post_init__(self) -> None:
        """The one place the flags are checked: a UserError (one line, exit 2) names a bad one."""
        if self.trials < 1:
            raise UserError(f"--trials must be at least 1 (got {self.trials})")
        if isinstance(self.objectives, str):
            self.objectives = parse_objectives(self.objectives)
        if self.kind not in (None, "regression", "classification"):
            raise UserError(f"--kind must be regression or classification, got {self.kind!r}")
        self.target = tuple(self.target or ())


@dataclass
class Summary:
    """How the study stands after this run."""

    study_name: str
    task: str
    metric: str
    direction: str
    finished: int
    trials: int
    best: dict[str, Any] | None
    baselines: dict[str, Any]
    original: Replay | None
    stopped: str = ""  # why this run ended early, if it did, in words
    stop: Stop = Stop.NONE  # and as a type
    objectives: list[str] = field(default_factory=list)  # metric (+ train_seconds)
    pareto: list[dict[str, Any]] = field(default_factory=list)  # multi-objective front
    # the best trial the time budget stopped, where it had already beaten every complete one
    cut: dict[str, Any] | None = None
    seeds: int = 1  # seeds every config is trained under: per-seed statistics mean something
    timing: str = ""  # where this run's wall time went, in one line
    best_config: dict[str, Any] | None = None  # the best trial's whole config (Config.to_dict)


def resolve_spec(task: Task | str, options: Options, echo: Echo | None = None) -> Spec:
    """The spec file (default studies/<task>.toml; a task without one, such as a data set,
    brings its own: derived from the data) with CLI options laid over it. A flag wins over the
    spec, never in silence: where the spec's [space] fixes or searches `epochs`, --epochs
    replaces it and `echo` says so in one line."""
    if isinstance(task, str):  # a registered task's name
        from hpo.tasks import get_task

        task = get_task(task)
    path = options.spec or default_spec_path(task.name)
    if options.spec is None and not path.exists() and task.spec is not None:
        spec = parse_spec(task.spec, f"the spec derived from {task.source}")
    else:
        spec = load_spec(path)
    if spec.task and spec.task != task.name:
        raise UserError(f"spec {spec.path} is for task {spec.task!r}, not {task.name!r}")
    changes: dict[str, Any] = {}
    for name in ("sampler", "pruner", "epochs", "trial_timeout", "seeds"):
        if getattr(options, name) is not None:
            changes[name] = getattr(options, name)
    space = spec.space.get("epochs")
    if options.epochs is not None and space is not None:
        changes["space"] = {**spec.space, "epochs": Param("epochs", value=options.epochs)}
        if echo is not None:
            echo(
                f"note: --epochs {options.epochs} replaces the spec's [space] epochs "
                f"({_describe(space)}): every trial trains {options.epochs} epoch(s)"
            )
    spec = replace(spec, data={**spec.data, **options.data}, **changes)
    model = options.model or spec.base.get("model")
    if model:  # the user's family in place of hpo's nets (hpo.search.family)
        from hpo.search.family import with_model

        flag = "--model" if options.model else f"{spec.path}: [base] model ="
        spec, line = with_model(spec, model, spec.model_table, flag)
        if echo is not None and not options.worker:
            echo(line)
    return spec


def _describe(param: Param) -> str:
    if param.fixed:
        return f"= {param.value}"
    if param.choices is not None:
        return f"one of {', '.join(map(str, param.choices))}"
    return f"searched in {param.low:g}..{param.high:g}"
