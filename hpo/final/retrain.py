"""`hpo train`: retrain a chosen config on train + validation, test it once, register it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from hpo.final.finalists import SEEDS, confirm_best, describe
from hpo.search import record
from hpo.study.progress import scaling_note
from hpo.study.queries import best_trial as best_trial_of
from hpo.study.queries import load, trial_numbered, use_data_dir
from hpo.study.task_of import study_of, task_of_study
from hpo.tasks.base import Task
from hpo.track.client import Tracker
from hpo.track.model import log_model
from hpo.train.config import Config
from hpo.train.data import Split, TaskData, resolve_device, to_float
from hpo.train.loop import evaluate, train
from hpo.util.errors import UserError

Echo = Callable[[str], None]


@dataclass
class Final:
    """What `hpo train` produced."""

    source: str  # "trial 12" or "original"
    test_metrics: dict[str, float]
    model_uri: str | None
    version: str | None
    run_id: str | None


def choose(study: Any, task: Task, trial: int | None, original: bool) -> tuple[Config, str]:
    """The Config to retrain: the best trial (default), trial N, or the task's original."""
    if original:
        if task.original is None:
            raise UserError(
                f"study {study.study_name!r} has no original config (hpo study "
                "--original-config FILE.toml gives one)"
            )
        return task.original, "original"
    if trial is None:
        try:
            frozen = best_trial_of(study)
        except ValueError:
            raise UserError(f"study {study.study_name!r} has no complete trial yet") from None
    else:
        try:
            frozen = trial_numbered(study, trial)
        except ValueError as e:
            raise UserError(str(e)) from None
    stored = record.TrialRecord.of(frozen).config
    if stored is None:
        raise UserError(f"trial {frozen.number} has no stored config (failed before training?)")
    return Config.from_dict(stored), f"trial {frozen.number}"


def retrain(
    task: Task,
    settings: dict[str, Any],
    data: TaskData,
    config: Config,
    device: torch.device,
    seed: int,
    source: str,
    echo: Echo,
) -> tuple[torch.nn.Module, dict[str, float], Split]:
    """`config` trained on train + validation under `seed`, then evaluated once on the test
    split: (model, test metrics with train_seconds, the test split)."""
    both = Split(torch.cat([data.train.x, data.val.x]), torch.cat([data.train.y, data.val.y]))
    full = TaskData(both, data.val, data.kind, data.n_outputs)
    echo(f"retraining {source} on train + validation ({len(both)} images, {config.epochs} epochs)")
    if (used := config.scaled_to(len(both))) != config:
        echo(scaling_note(config, used, len(both)))
    t0 = time.monotonic()
    result = train(
        config,
        full,
        device=device,
        seed=seed,
        augment=task.augment,
        keep_model=True,
        validate=False,
        report=lambda e, m: echo(f"  epoch {e}/{config.epochs}: train_loss {m['train_loss']:.4g}"),
    )
    test = task.load_test(settings, device)  # the only read of the test split
    metrics = evaluate(result.model, test, task.kind, config.batch_size, prefix="test")
    metrics["train_seconds"] = time.monotonic() - t0
    echo("test: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return result.model, metrics, test


def retrain_and_register(
    task_name: str,
    *,
    study_name: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    trial: int | None = None,
    original: bool = False,
    device: str = "auto",
    seed: int = 0,
    finalists: int | None = None,
    finalist_seeds: int = SEEDS,
    echo: Echo = print,
    data_dir: str | None = None,
) -> Final:
    """Retrain on train + validation, evaluate once on the test split, log and register.
    The best trial (neither `trial` nor `original`) is first confirmed among `finalists`
    (hpo.final.finalists; None: its default)."""
    name, data_path = study_of(task_name, study_name, data_dir)
    study = load(name, storage)
    task = task_of_study(study, task_name, data_path)
    use_data_dir(study, data_dir)
    config, source = choose(study, task, trial, original)
    try:
        dev = resolve_device(device)
    except ValueError as e:
        raise UserError(str(e)) from None
    settings = task.settings(record.info(study).data or {})
    data = task.load(settings, dev)
    tags: dict[str, str] = {}
    if trial is None and not original:
        found = confirm_best(study, task, data, dev, finalists, finalist_seeds, echo)
        if found is not None:
            won, chosen = found
            config, source = won.config, f"trial {won.number}"
            tags["finalists"] = "; ".join(f"trial {f.number}: {describe(f)}" for f in chosen)
    model, metrics, test = retrain(task, settings, data, config, dev, seed, source, echo)
    tracker = Tracker(tracking_uri, study.study_name)
    parent = record.parent_run(study)
    run_id = tracker.start_run(
        parent,
        f"final:{source.replace(' ', '-')}",
        {"kind": "final", "source": source, **tags},
    )
    tracker.log_params(run_id, config.params())
    tracker.log_metrics(run_id, metrics)
    example = to_float(test.x[:2]).cpu().numpy()
    uri, version = log_model(
        tracker, run_id, model, example, study.study_name, {"source": source, **metrics}
    )
    tracker.end_run(run_id, "COMPLETE")
    echo(f"registered {uri} ({task.metric.replace('val_', 'test_')} on the test split)")
    return Final(source, metrics, uri, version, run_id)
