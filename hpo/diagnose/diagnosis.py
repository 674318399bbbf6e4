"""`hpo diagnose`: what happened to the user's original config over seeds, whether that is the
failure the user reported, and what fixed it, measured by ablation (hpo.diagnose.ablation): single
changes from the original, a smallest set of changes that succeeds in K of K seeds, and the
reverse from the study's best config. The answer is written by hpo.diagnose.answer."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from optuna.distributions import CategoricalDistribution

from hpo.diagnose import ablation
from hpo.diagnose import changes as knobs
from hpo.diagnose.answer import Answer
from hpo.diagnose.runs import Run, Stopped
from hpo.search import record
from hpo.search.record import Replay
from hpo.search.spec import PER_BLOCK, Param, SpecError, default_spec_path, load_spec
from hpo.study import references
from hpo.study.queries import best_trial as best_trial_of
from hpo.study.queries import load, use_data_dir
from hpo.study.task_of import study_of, task_of_study
from hpo.train.config import Config
from hpo.train.cost import epoch_images, image_seconds
from hpo.train.data import resolve_device
from hpo.train.labels import diagnose
from hpo.train.seeds import seed_list
from hpo.util.errors import UserError

Echo = Callable[[str], None]


def original_epochs_of(study: Any, task_name: str) -> int | None:
    """The original's replay budget the study was created with (its spec's original_epochs,
    `--spec` included); for a study from before hpo recorded it, the shipped spec's."""
    if record.has_original_epochs(study):
        return record.info(study).original_epochs
    return _spec_original_epochs(task_name)


def _spec_original_epochs(task_name: str) -> int | None:
    """original_epochs of the task's shipped spec (box: 10 of the user's 1,000), if any."""
    try:
        return load_spec(default_spec_path(task_name)).original_epochs
    except SpecError:
        return None


def study_space(study: Any, task_name: str) -> dict[str, Param]:
    """The search space the study sampled (from its trials' distributions, `--spec` included);
    the shipped spec's when it has no trial."""
    out: dict[str, Param] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, dist in trial.distributions.items():
            stem = name.rsplit("_", 1)[0]
            knob = stem if stem in PER_BLOCK and re.search(r"_\d+$", name) else name
            if knob in out:
                continue
            if isinstance(dist, CategoricalDistribution):
                out[knob] = Param(knob, choices=tuple(dist.choices))
            else:
                step = None if dist.log or dist.step in (None, 1) else dist.step
                out[knob] = Param(knob, low=dist.low, high=dist.high, log=dist.log, step=step)
    if out:
        return out
    try:
        return load_spec(default_spec_path(task_name)).space
    except SpecError:
        return {}


def _cached_original(task, settings, config: Config, device, seed: int) -> Run | None:
    """The study's replay of the original for this seed (hpo.study.references' cache), if any, as
    an ablation run (its full budget: it was not stopped early)."""
    key = references.original_key(task, settings, config, device.type, seed)
    path = references.cache_dir() / "originals" / f"{key}.json"
    if not path.exists():
        return None
    try:
        found = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    replay = Replay.of(found)
    history = replay.history
    return Run(
        seed=seed,
        epochs=len(history),
        metrics=dict(history[-1]) if history else {},
        solved=bool(history) and task.solved(history[-1]),
        label=diagnose(history, replay.outcome),
        stopped={"ok": Stopped.BUDGET, "stopped": Stopped.HOPELESS}.get(
            replay.status, Stopped.ERROR
        ),
        reason=replay.reason,
        seconds=replay.seconds,
        outcome=replay.outcome,
    )


def cost_line(per_epoch: float, seeds: int, changes: list, reverse_runs: int, budget: int) -> str:
    """What `hpo diagnose` will cost at most, from an epoch of the original timed here."""
    runs = seeds * (2 + len(changes)) + reverse_runs
    return (
        f"cost: ~{per_epoch:.0f} s an epoch of the original here (timed on 3 batches); "
        f"the original and the best config on {seeds} seeds, {len(changes)} single changes "
        "screened on 1 seed (until one succeeds on all seeds, unless --all), "
        f"each run <= {budget} epochs: at most ~{runs * budget * per_epoch / 60:.0f} "
        "min, usually far less (runs stop once solved or hopeless; --epochs and "
        "--data KEY=VALUE shrink it)"
    )


def _original_run(runner: ablation.Runner, original: Config, seed: int) -> Run:
    """The original under `seed`: the study's replay where it is cached, else trained."""
    task = runner.task
    found = _cached_original(task, runner.settings, original, runner.device, seed)
    if found is None:
        return runner.run(original, seed, "original")
    runner.echo(f"  original seed {seed}: {ablation.describe(found, task)} (study's replay)")
    return found


def _where(task: Any, study: Any, device: str, data: dict | None) -> tuple[Any, dict]:
    """(the device, the data settings: the study's, with `data` laid over them)."""
    try:
        return resolve_device(device), task.settings(
            (record.info(study).data or {}) | (data or {})
        )
    except ValueError as e:
        raise UserError(str(e)) from None


def _original_budget(study: Any, task: Any, epochs: int | None) -> tuple[int, Config]:
    """(the epochs every run trains, the original config with them): `epochs`, else the study's
    replay budget (its spec's original_epochs), capped at the user's own."""
    if epochs is None:
        epochs = original_epochs_of(study, task.name)
    budget = min(epochs or task.original.epochs, task.original.epochs)
    return budget, task.original.replace(epochs=budget)


def _best(study: Any) -> tuple[Any, Config]:
    """(the study's best trial, its config); a UserError before one completed."""
    try:
        best_trial = best_trial_of(study)
    except ValueError:
        raise UserError(f"study {study.study_name!r} has no complete trial yet") from None
    return best_trial, Config.from_dict(record.TrialRecord.of(best_trial).config)


def _fixes(
    runner: ablation.Runner,
    original: Config,
    changes: list,
    seeds: list[int],
    screen_all: bool,
    orig: dict[str, Any],
) -> dict[str, Any]:
    """The single changes from the original (and a greedy set), unless it needs none."""
    if ablation.confirmed(orig):
        runner.echo("the original succeeds on every seed here: nothing to ablate")
        return {"singles": [], "screened": 0, "of": len(changes), "smallest": None}
    runner.echo(
        f"single changes from the original ({len(changes)}; those toward the study's best "
        f"config first), screened on seed {seeds[0]}:"
    )
    return ablation.forward(runner, original, changes, seeds, screen_all, orig["success_value"])


def _best_and_back(
    runner: ablation.Runner, best: Config, original: Config, seeds: list[int], reverse: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The best config over the seeds, and (with `reverse`) the original's values put back
    into it one at a time."""
    found = ablation.summarise(
        [runner.run(best, s, "best") for s in seeds], runner.task, len(seeds)
    )
    if not reverse:
        return found, []
    runner.echo("from the best config, one original value put back at a time:")
    solved = found["runs"][0].solved
    return found, ablation.backward(runner, best, original, seeds, confirm=solved)


def _study_and_task(task_name: str, study_name, storage, data_dir):
    """The study to diagnose and its task (found through the study's record); one with no
    original config is one line."""
    name, data_path = study_of(task_name, study_name, data_dir)
    study = load(name, storage)
    task = task_of_study(study, task_name, data_path)
    if task.original is None:
        raise UserError(
            f"study {study.study_name!r} has no original config to diagnose (hpo study "
            "--original-config FILE.toml gives one)"
        )
    use_data_dir(study, data_dir)
    return study, task


def run(
    task_name: str,
    *,
    seeds: int,
    study_name: str | None,
    storage: str | None,
    epochs: int | None,
    device: str,
    base_seed: int,
    echo: Echo,
    data: dict[str, Any] | None = None,
    screen_all: bool = False,
    full_budget: bool = False,
    reverse: bool = True,
    data_dir: str | None = None,
) -> Answer:
    """Replay the original, ablate it, and reverse-ablate the study's best; the answer."""
    t_start = time.monotonic()
    study, task = _study_and_task(task_name, study_name, storage, data_dir)
    best_trial, best = _best(study)
    budget, original = _original_budget(study, task, epochs)
    dev, settings = _where(task, study, device, data)
    loaded = task.load(settings, dev)
    chosen = seed_list(base_seed, seeds)
    changes = knobs.single_changes(original, study_space(study, task.name), toward=best)
    per_image = image_seconds(original, loaded, dev, task.augment)  # the cost, first
    if per_image is not None:
        reverse_runs = len(knobs.reverse_changes(best, original))
        echo(cost_line(per_image * epoch_images(loaded), seeds, changes, reverse_runs, budget))
    runner = ablation.Runner(task, loaded, settings, dev, budget, echo, full_budget=full_budget)
    echo(f"original config ({task.original_note}), {budget} epochs, {seeds} seeds:")
    orig_runs = [_original_run(runner, original, s) for s in chosen]
    orig = ablation.summarise(orig_runs, task, seeds)
    fixes = _fixes(runner, original, changes, chosen, screen_all, orig)
    echo(f"best config of study {study.study_name!r} (trial {best_trial.number}), {seeds} seeds:")
    found_best, back = _best_and_back(runner, best, original, chosen, reverse)
    return Answer(
        task=task.name,
        study=study.study_name,
        metric=task.metric,
        success={"metric": task.success[0], "threshold": task.success[1]},
        seeds=chosen,
        budget_epochs=budget,
        of_epochs=task.original.epochs,
        stops="at the budget" if full_budget else "once solved, or once hopeless",
        original=orig,
        reported_failure=ablation.reproduced(task.name, orig_runs),
        ablation=fixes,
        best=found_best | {"trial": best_trial.number, "config": best.params()},
        reverse=back,
        baselines=record.baselines(study) or {},
        data=settings,
        device=dev.type,
        runs_trained=runner.runs,
        seconds=time.monotonic() - t_start,
    )
