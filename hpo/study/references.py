"""The study's reference points, computed once and cached: baselines and the original config.

The pixel original costs hours on a CPU, so its replay is cached per (task, data settings,
config, epochs, device type) on disk and reused by every later study on this machine.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from hpo.search import record
from hpo.search.family import source_digest
from hpo.search.record import Replay
from hpo.study.baselines import run_baselines
from hpo.tasks import get_task
from hpo.tasks.base import Task
from hpo.train.config import Config
from hpo.train.data import TaskData
from hpo.train.labels import dead, diagnose
from hpo.train.loop import train
from hpo.util.errors import UserError
from hpo.util.outcomes import Diverged, Outcome, TrainingError
from hpo.util.paths import cache_dir

if TYPE_CHECKING:  # the study's MLflow log (mlflow is imported only where it is used)
    from hpo.track.study_log import StudyLog

Echo = Callable[[str], None]


def key_of(**parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached(kind: str, key: str, compute: Callable[[], dict[str, Any]]) -> tuple[dict, bool]:
    """(result, was_cached) for the JSON-able result of compute(), stored under cache_dir()."""
    path = cache_dir() / kind / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_suffix(".lock")):
        if path.exists():
            try:
                return json.loads(path.read_text()), True
            except (OSError, json.JSONDecodeError):
                pass  # a damaged entry is recomputed
        result = compute()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)
        return result, False


ORIGINALS_VERSION = 2  # bump when what a cached replay holds changes (2: its outcome)


def original_key(task: Task, settings: dict, config: Config, device: str, seed: int) -> str:
    """The cache key of one replay of the original (also read by `hpo diagnose`)."""
    return key_of(
        version=ORIGINALS_VERSION,
        task=task.name,
        data=settings,
        config=config.to_dict(),
        device=device,
        seed=seed,
        **({"code": source_digest(config.model)} if config.model else {}),
    )


def original_config(task: Task, epochs: int | None) -> Config:
    """The user's config with the replay's epoch budget (its own epochs unless capped)."""
    return task.original.replace(epochs=min(epochs or task.original.epochs, task.original.epochs))


def replay_original(
    task: Task,
    settings: dict[str, Any],
    data: TaskData,
    device: Any,
    epochs: int | None,
    echo: Echo,
    seed: int = 0,
) -> Replay:
    """Train the original config, or take its replay from the cache; its history included."""
    config = original_config(task, epochs)
    key = original_key(task, settings, config, device.type, seed)

    def compute() -> dict[str, Any]:
        echo(
            f"replaying the original {task.name} config ({task.original_note}) for "
            f"{config.epochs} of its {task.original.epochs} epochs on {device.type}; the result "
            "is cached for later studies (--no-original skips it)"
        )
        return _replay(task, config, data, device, seed, echo)

    result, was_cached = cached("originals", key, compute)
    if was_cached:
        echo(f"original {task.name} config: cached replay ({result['epochs']} epochs)")
    replay = Replay.of(result)
    replay.diagnosis = diagnose(replay.history, replay.outcome)
    return replay


class Collapsed(Exception):
    """The replay's net is dead: its later epochs cannot differ from this one."""


def _replay(
    task: Task, config: Config, data: TaskData, device: Any, seed: int, echo: Echo
) -> dict[str, Any]:
    """Train the original, an epoch line each; what the cache keeps of it."""
    t0 = time.monotonic()

    history: list[dict[str, float]] = []

    def report(epoch: int, metrics: dict[str, float]) -> None:
        history.append(metrics)
        seconds = metrics["epoch_seconds"]
        left = (config.epochs - epoch) * seconds
        value = metrics[task.metric]
        echo(
            f"  original epoch {epoch}/{config.epochs}: {task.metric} {value:.4g}"
            f" ({seconds:.1f} s/epoch, ~{left / 60:.1f} min left)"
        )
        if dead(metrics) and epoch < config.epochs:  # its other epochs would be alike
            raise Collapsed(f"dead at epoch {epoch}")

    status, reason, outcome = "ok", "", Outcome.COMPLETE
    try:
        train(config, data, device=device, seed=seed, report=report, augment=task.augment)
    except Collapsed as e:
        status, reason, outcome = "stopped", str(e), Outcome.PRUNED
    except Diverged as e:
        status, reason, outcome = "diverged", str(e), e.outcome
    except (TrainingError, ValueError) as e:  # e.g. the net does not fit the image size
        status, reason, outcome = "error", str(e), Outcome.FAILED
    return {
        "metrics": dict(history[-1]) if history else {},
        "history": history,
        "epochs": len(history),
        "of_epochs": task.original.epochs,
        "status": status,
        "outcome": outcome.value,
        "reason": reason,
        "seconds": time.monotonic() - t0,
        "params": config.params(),
        "device": device.type,
        "seed": seed,
    }


def baselines(task: Task, settings: dict[str, Any], data: TaskData, echo: Echo) -> dict[str, Any]:
    """{name: metrics} of the task's scikit-learn baselines on the same splits (cached)."""
    key = key_of(task=task.name, data=settings, baselines=task.baselines)

    def compute() -> dict[str, Any]:
        echo(f"fitting baseline(s) {', '.join(task.baselines)} on the same train/validation split")
        return run_baselines(task.baselines, data)

    result, _ = cached("baselines", key, compute)
    return result


Load = Callable[[], TaskData]  # the task's data, loaded when first needed


def ensure_baselines(
    study: Any, task: Task, settings: dict, load: Load, log: StudyLog, echo: Echo, fit: bool
) -> dict[str, dict[str, float]]:
    """The study's baselines: fitted (or taken from the cache), kept in the study and logged
    once, where `fit` and they are not there yet; {} without them."""
    found = record.baselines(study)
    if fit and found is None:
        found = baselines(task, settings, load(), echo)
        record.set_baselines(study, found)
        for name, metrics in found.items():
            log.reference("baseline", name, metrics)
    return found or {}


def ensure_original(
    study: Any,
    task: Task,
    settings: dict,
    load: Load,
    device: Any,
    epochs: int | None,
    log: StudyLog,
    echo: Echo,
    may_train: bool = True,
) -> Replay | None:
    """The original's replay, kept in the study (a summary) with its MLflow run (its curve),
    replayed or taken from the cache where the study has none yet; without `train` (the
    time is up: `may_train` false), only from the cache."""
    kept = record.original(study)
    if kept is not None:
        return kept
    config = original_config(task, epochs)
    key = original_key(task, settings, config, device.type, 0)
    if not may_train and not (cache_dir() / "originals" / f"{key}.json").exists():
        echo("original: not replayed, the time is up (the next run replays it, once)")
        return None
    replay = replay_original(task, settings, load(), device, epochs, echo)
    replay.run_id = log.reference(
        "original",
        task.name,
        replay.metrics,
        config.params(),
        {"diagnosis": replay.diagnosis},
        history=replay.history,
    )
    record.set_original(study, replay)
    return replay


def original_history(study: Any) -> list[dict[str, float]]:
    """The per-epoch metrics of the study's original replay: kept by an older hpo in the study,
    else in this machine's cache of the replay; [] where neither has them."""
    kept = record.original(study)
    if kept is None or kept.history:
        return kept.history if kept is not None else []
    info = record.info(study)
    try:
        task = get_task(info.task or "")
        settings = task.settings(info.data or {})
    except (UserError, ValueError):
        return []
    config = original_config(task, info.original_epochs)
    path = (
        cache_dir() / "originals" / f"{original_key(task, settings, config, kept.device, 0)}.json"
    )
    try:
        return list(json.loads(path.read_text()).get("history") or [])
    except (OSError, json.JSONDecodeError):
        return []
