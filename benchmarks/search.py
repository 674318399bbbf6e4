"""Search efficiency: the spec's sampler + pruner vs random search without pruning (and, with
--arms, TPE with and without local moves), median over several study seeds (CPU; --device cuda
on a GPU). Two measures:

- until a target (box val R2 >= 0.99, pixel val accuracy >= 0.99): wall time and trials until
  a complete trial reaches it, or the trial cap;
- at equal wall time (--budget SECONDS, any task, e.g. cifar10): the best metric of the trials
  that finished within the budget, per study seed, and the median over seeds.

Each study runs in memory with the task's shipped spec (its enqueued known-good trial 0
included, for every arm alike), optionally on smaller data. Prints a markdown table and writes
benchmarks/out/search_<task>.csv.
Usage: python benchmarks/search.py [--task box] [--seeds 5] [--max-trials 40]
       [--data n_train=2000] [--smoke]
       python benchmarks/search.py --task cifar10 --budget 300 --seeds 3 --data subset=0.05
       [--epochs 4] [--arms default,tpe,local,pruned-moves,random] [--rescore 2000]
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import optuna
import torch

from hpo.cli.app import parse_data
from hpo.search.record import TrialRecord
from hpo.study.options import Options, resolve_spec
from hpo.study.queries import counts
from hpo.study.runner import StudyRunner
from hpo.tasks import TASKS, Task, cifar10, get_task
from hpo.train.config import Config
from hpo.train.data import Split
from hpo.train.limits import WORKERS_ENV
from hpo.train.loop import evaluate, train
from hpo.util.process import tune_malloc

OUT = Path(__file__).parent / "out"
TARGETS = {"box": ("val_r2", 0.99), "pixel": ("val_accuracy", 0.99)}


@dataclass(frozen=True)
class Arm:
    """One search to compare: None takes the spec's own value."""

    label: str
    sampler: str | None = None
    pruner: str | None = None
    local_moves: float | None = None
    prune_local_moves: bool | None = None


ARMS = {
    "default": Arm("default"),  # the shipped spec as it is; labelled with what it resolves to
    "tpe": Arm("tpe + hyperband, no local moves", "tpe", "hyperband", 0.0),
    "local": Arm("tpe + local moves 0.5 + hyperband", "tpe", "hyperband", 0.5),
    # before 2026-11-27 the pruner stopped local moves like any trial
    "pruned-moves": Arm(
        "tpe + local moves 0.5, pruned too, + hyperband", "tpe", "hyperband", 0.5, True
    ),
    "random": Arm("random, no pruning", "random", "none", 0.0),
}


def describe(task_name: str, arm: Arm) -> str:
    """The default arm's label: what the task's spec searches with."""
    if arm.label != "default":
        return arm.label
    spec = resolve_spec(task_name, Options(storage="memory"))
    local = f" + local moves {spec.local_moves:g}" if spec.local_moves else ""
    local += f" + random share {spec.random_share:g}" if spec.random_share else ""
    return f"default ({spec.sampler}{local} + {spec.pruner})"


def write_csv(name: str, rows: list[dict]) -> None:
    """The table's rows as benchmarks/out/<name>."""
    OUT.mkdir(exist_ok=True)
    with open(OUT / name, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def in_memory(
    task_name: str | Task,
    arm: Arm,
    seed: int,
    trials: int,
    data: dict,
    device: str,
    epochs: int | None = None,
    storage: str = "memory",
    worker_index: int = 0,
    load: bool = True,
) -> StudyRunner:
    """A study of the task's shipped spec (a data set's Task: its derived one) in memory (no
    tracking, no references), its data loaded: trials run one by one through
    StudyRunner._step."""
    options = Options(
        trials=trials,
        storage=storage,
        study_name=f"search-{seed}" if storage != "memory" else None,
        worker_index=worker_index,
        seed=seed,
        device=device,
        sampler=arm.sampler,
        pruner=arm.pruner,
        epochs=epochs,
        tracking=False,
        original=False,
        baselines=False,
        data=data,
    )
    task = get_task(task_name) if isinstance(task_name, str) else task_name
    spec = resolve_spec(task, options)
    if arm.local_moves is not None:
        spec = replace(spec, local_moves=arm.local_moves)
    if arm.prune_local_moves is not None:
        spec = replace(spec, prune_local_moves=arm.prune_local_moves)
    runner = StudyRunner(task, spec, options, lambda s: None)
    runner.open()
    if load:
        runner.load()
    return runner


def until_target(
    task_name: str,
    arm: Arm,
    seed: int,
    cap: int,
    data: dict,
    device: str,
    verbose: bool = False,
):
    """(trials run, seconds, best metric) until the first complete trial meets the target;
    trials and seconds are inf if none did within `cap` trials."""
    metric, target = TARGETS[task_name]
    runner = in_memory(task_name, arm, seed, cap, data, device)
    t0 = time.monotonic()
    best = -math.inf
    while counts(runner.study)[0] < cap:
        runner._step(None)
        if verbose:
            t = runner.study.trials[-1]
            value = TrialRecord.of(t).metrics.get(metric)
            why = TrialRecord.of(t).reason
            epochs = len(t.intermediate_values)
            print(
                f"  trial {t.number} {t.state.name} {metric} {value} after {epochs} epochs"
                f"{f' ({why})' if why else ''} {t.params}",
                flush=True,
            )
        done = [t for t in runner.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        best = max([best] + [TrialRecord.of(t).metrics.get(metric, -math.inf) for t in done])
        if best >= target:
            return len(runner.study.trials), time.monotonic() - t0, best
    return math.inf, math.inf, best


def _worker(task_name, arm, seed, cap, data, device, storage, index, workers) -> None:
    """One of --workers K processes of a study in `storage`: trials until the study holds
    `cap` finished ones (the parent stops it sooner, at the target)."""
    os.environ[WORKERS_ENV] = str(workers)  # as `hpo study --workers K` tells its workers
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runner = in_memory(
        task_name, arm, seed, cap, data, device, storage=storage, worker_index=index
    )
    while counts(runner.study)[0] < cap:
        runner._step(None)


def until_target_workers(task_name, arm, seed, cap, data, device, workers: int, verbose=False):
    """until_target with `workers` processes on one SQLite study (one thread each): (trials
    in the study when a complete one first met the target, seconds, best metric)."""
    metric, target = TARGETS[task_name]
    folder = tempfile.mkdtemp(prefix="hpo-search-")
    storage = f"sqlite:///{folder}/study.db"
    in_memory(task_name, arm, seed, cap, data, device, storage=storage, load=False)  # create it
    spawn = multiprocessing.get_context("spawn")
    t0 = time.monotonic()
    procs = [
        spawn.Process(
            target=_worker,
            args=(task_name, arm, seed, cap, data, device, storage, i, workers),
            daemon=True,
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    best, seen, result = -math.inf, set(), (math.inf, math.inf)
    study = optuna.load_study(study_name=f"search-{seed}", storage=storage)
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(2.0)
            trials = study.get_trials(deepcopy=False)
            for t in trials:
                if t.state.is_finished() and t.number not in seen:
                    seen.add(t.number)
                    value = TrialRecord.of(t).metrics.get(metric)
                    if verbose:
                        epochs = len(t.intermediate_values)
                        print(f"  trial {t.number} {t.state.name} {metric} {value} after "
                              f"{epochs} epochs {t.params}", flush=True)  # fmt: skip
                    if t.state == optuna.trial.TrialState.COMPLETE and value is not None:
                        best = max(best, value)
            if best >= target:
                result = (len(trials), time.monotonic() - t0)
                break
    finally:
        for p in procs:
            p.kill()
            p.join()
        shutil.rmtree(folder, ignore_errors=True)
    return result[0], result[1], best


def within_budget(
    task_name: str,
    arm: Arm,
    seed: int,
    seconds: float,
    data: dict,
    device: str,
    epochs: int | None,
    verbose: bool = False,
) -> tuple[int, float, StudyRunner, optuna.trial.FrozenTrial | None]:
    """(trials finished within `seconds`, best metric among them, the runner, the best trial):
    no trial starts after the budget, and one that ends past it does not count."""
    task = get_task(task_name)
    metric = task.metric
    sign = 1.0 if task.direction == "maximize" else -1.0
    runner = in_memory(task_name, arm, seed, 100_000, data, device, epochs)
    t0 = time.monotonic()
    deadline = t0 + seconds
    best, finished, best_trial = -math.inf, 0, None
    while time.monotonic() < deadline:
        runner._step(deadline)
        if time.monotonic() > deadline:  # the trial that overran the budget does not count
            break
        t = runner.study.trials[-1]
        finished += 1
        value = TrialRecord.of(t).metrics.get(metric)
        if t.state == optuna.trial.TrialState.COMPLETE and value is not None:
            if sign * value > best:
                best, best_trial = sign * value, t
        if verbose:
            move = TrialRecord.of(t).local_move
            print(
                f"  {time.monotonic() - t0:6.0f} s trial {t.number} {t.state.name} {metric} "
                f"{value} best {sign * best:.4f}" + (f"  [local: {move}]" if move else ""),
                flush=True,
            )
    return finished, sign * best, runner, best_trial


def held_out(settings: dict, images: int) -> np.ndarray:
    """Positions, in the whole validation split (val_subset 1), of up to `images` validation
    images outside the `val_subset` that `settings` show the search (cifar10)."""
    seen = cifar10.split(cifar10.N_TRAIN_FILES, settings)[1]
    all_val = cifar10.split(cifar10.N_TRAIN_FILES, {**settings, "val_subset": 1.0})[1]
    return np.flatnonzero(~np.isin(all_val, seen))[:images]


def rescore(runner: StudyRunner, trial: optuna.trial.FrozenTrial, seed: int, images: int) -> float:
    """`trial`'s config trained again under another seed on the same training images, scored
    on up to `images` validation images the search never saw: those outside `val_subset`
    (cifar10). The best of many noisy trials is flattered by its noise; this is not."""
    settings = runner.settings
    if settings.get("val_subset", 1.0) >= 1.0:
        raise SystemExit("--rescore needs --data val_subset=F < 1: it scores on the rest")
    everything = {**settings, "val_subset": 1.0}
    held = torch.from_numpy(held_out(settings, images))
    val = runner.task.load(everything, runner.device).val
    unseen = Split(val.x[held.to(val.x.device)], val.y[held.to(val.y.device)])
    config = Config.from_dict(TrialRecord.of(trial).config)
    task = runner.task
    kept = train(
        config,
        runner.data,
        device=runner.device,
        seed=seed,
        augment=task.augment,
        keep_model=True,
        validate=False,
    )
    return evaluate(kept.model, unseen, task.kind, config.batch_size)[task.metric]


def warm_up() -> None:
    """Pay the process's one-off costs before any clock starts: a first optimizer step imports
    torch._dynamo (~3 s on this CPU), which would otherwise come out of the first arm's budget
    alone."""
    weight = torch.zeros(1, requires_grad=True)
    weight.sum().backward()
    torch.optim.SGD([weight], lr=0.1).step()


def equal_time(args, data: dict, seed_list, chosen: list[str]) -> None:
    """--budget: every arm gets the same wall time per study seed; best metric per study."""
    metric = get_task(args.task).metric
    warm_up()
    rows, per_seed = [], {}
    for seed in seed_list:  # arms alternate within a seed, so machine noise hits both alike
        for key in chosen:
            label = describe(args.task, ARMS[key])
            n, best, runner, trial = within_budget(
                args.task,
                ARMS[key],
                seed,
                args.budget,
                data,
                args.device,
                args.epochs,
                args.verbose,
            )
            line = f"{label}, study seed {seed}: {n} trials in {args.budget:g} s, best {best:.4f}"
            again = math.nan
            if args.rescore and trial is not None:
                again = rescore(runner, trial, 1000 + seed, args.rescore)
                line += f" (trial {trial.number}); rescored {again:.4f}"
            per_seed.setdefault(label, []).append((seed, n, best, again))
            print(line, flush=True)
    print(
        f"\n{args.task}: best {metric} within {args.budget:g} s per study, data "
        f"{data or 'default'}, epochs {args.epochs or 'from the spec'}, device {args.device}"
    )
    if args.rescore:
        print(
            f"rescored: the best trial's config trained again under another seed, scored on "
            f"{args.rescore} validation images outside val_subset"
        )
    extra = " | median rescored" if args.rescore else ""
    print(f"| search | best per study seed | median best | median trials{extra} |")
    print("| --- | --- | --- | ---" + (" | ---" if args.rescore else "") + " |")
    for label, results in per_seed.items():
        row = {
            "search": label,
            "per_seed": " / ".join(
                f"{b:.4f}" + (f" (rescored {r:.4f})" if args.rescore else "") + f" (seed {s})"
                for s, _, b, r in results
            ),
            "median_best": round(statistics.median(r[2] for r in results), 4),
            "median_trials": statistics.median(r[1] for r in results),
        }
        if args.rescore:
            row["median_rescored"] = round(statistics.median(r[3] for r in results), 4)
        rows.append(row)
        cells = [row["search"], row["per_seed"], row["median_best"], row["median_trials"]]
        cells += [row["median_rescored"]] if args.rescore else []
        print("| " + " | ".join(str(c) for c in cells) + " |")
    write_csv(f"search_{args.task}_budget.csv", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="box", choices=sorted(TASKS))
    parser.add_argument(
        "--budget", type=float, help="seconds per study: compare at equal wall time"
    )
    parser.add_argument("--epochs", type=int, help="epochs per trial [default: the spec's]")
    parser.add_argument("--seeds", type=int, default=5, help="study seeds 0..N-1")
    parser.add_argument("--seed-list", help="these study seeds instead, e.g. 0,3")
    parser.add_argument("--max-trials", type=int, default=40)
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="cpu", help="cpu | auto | cuda [default: cpu]")
    parser.add_argument(
        "--arms",
        default="default,random",
        help=f"a comma list of {', '.join(ARMS)} [default: default,random]",
    )
    parser.add_argument(
        "--rescore",
        type=int,
        metavar="N",
        help="--budget, cifar10: retrain each study's best under another seed and score it on "
        "N validation images outside val_subset (the best of many noisy trials is flattered)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny data, 1 seed, 4 trials")
    parser.add_argument("--verbose", action="store_true", help="a line per trial as it ends")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="until the target: K worker processes on one SQLite study, one thread each",
    )
    args = parser.parse_args()
    tune_malloc()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    data = parse_data(args.data)
    seeds, cap = (1, 4) if args.smoke else (args.seeds, args.max_trials)
    seed_list = [int(s) for s in args.seed_list.split(",")] if args.seed_list else range(seeds)
    if args.smoke:
        data |= {
            "box": {"n_train": 256, "n_val": 64, "image_size": 32, "square_size": 6},
            "pixel": {"n_train_per_class": 128, "n_val_per_class": 32, "image_size": 32},
        }.get(args.task, {})
    chosen = args.arms.split(",")
    if set(chosen) - set(ARMS):
        parser.error(f"--arms takes a comma list of {', '.join(ARMS)}")
    if args.budget:
        equal_time(args, data, seed_list, chosen)
        return
    if args.task not in TARGETS:
        parser.error(f"{args.task} has no target: compare at equal wall time with --budget")
    rows = []
    for key in chosen:
        label = describe(args.task, ARMS[key])
        results = []
        for seed in seed_list:  # one line per study as it ends, so a cut-off run still tells
            if args.workers > 1:
                results.append(
                    until_target_workers(
                        args.task,
                        ARMS[key],
                        seed,
                        cap,
                        data,
                        args.device,
                        args.workers,
                        args.verbose,
                    )  # fmt: skip
                )
            else:
                results.append(
                    until_target(args.task, ARMS[key], seed, cap, data, args.device, args.verbose)
                )
            n, secs, best = results[-1]
            print(f"{label}, study seed {seed}: {n} trials, {secs:.1f} s, best {best:.4f}")
        trials = statistics.median(r[0] for r in results)
        seconds = statistics.median(r[1] for r in results)
        reached = sum(math.isfinite(r[0]) for r in results)
        rows.append(
            {
                "search": label,
                "reached": f"{reached}/{len(results)}",
                "median_trials": trials,
                "median_seconds": round(seconds, 1),
            }
        )
    metric, target = TARGETS[args.task]
    print(f"{args.task}: until {metric} >= {target}, cap {cap} trials, data {data or 'default'}")
    print("| search | reached | median trials | median seconds |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['search']} | {r['reached']} | {r['median_trials']} | {r['median_seconds']} |")
    if len(rows) == 2 and math.isfinite(rows[0]["median_seconds"]):
        speedup = rows[1]["median_seconds"] / rows[0]["median_seconds"]
        print(f"\nrandom / default wall time: {speedup:.2f}x (target >= 3x)")
    write_csv(f"search_{args.task}.csv", rows)


if __name__ == "__main__":
    main()
