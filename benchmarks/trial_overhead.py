"""What a study spends per trial outside training: sampler, Optuna storage, pruner, MLflow,
console. On an H100 a cifar10 trial trains in ~2 s, so every second of bookkeeping per trial is
a third of a trial, and 200 trials have 10 minutes (issue 15).

The study is real (`hpo.study.session` on the task's shipped spec, SQLite study storage and SQLite
MLflow store in a temporary folder, the sampler, pruner and local moves of the spec); only
training is replaced by a stand-in that computes nothing and reports, per epoch, a metric that
depends on the config (so that TPE, local moves and Hyperband have something to act on).
Device-independent: the bookkeeping runs on the CPU in both cases.

Prints, per block of trials, the milliseconds per trial in each part, and the summary's time
(plots, the end of the MLflow run). Writes benchmarks/out/trial_overhead.csv.
Usage: HPO_DATA_DIR=DIR python benchmarks/trial_overhead.py [--trials 200] [--block 50]
       [--task cifar10] [--verbose] [--smoke]
       (DIR holds cifar-10-batches-py; a tiny subset is loaded: data is not what is measured)
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
import os
import tempfile
import time
import zlib
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import optuna

import hpo.study.objective as objective_module
import hpo.study.queries as queries_module
import hpo.study.runner as runner_module
import hpo.study.session as session_module
from hpo.search.record import TrialRecord
from hpo.study.options import Options
from hpo.study.progress import Progress
from hpo.study.session import run
from hpo.tasks import get_task
from hpo.track.study_log import StudyLog
from hpo.util.errors import masked

OUT = Path(__file__).parent / "out"

# part -> the functions timed for it (module or class, attribute); a part's time excludes none of
# its callees, and no part calls another's function, so the parts add up
PARTS = {
    "ask (new trial, sampler set-up)": [(optuna.study.Study, "ask")],
    "config (sampler, its params and record written)": [(objective_module.Objective, "_config")],
    "report + pruner": [(optuna.trial.Trial, "report"), (optuna.trial.Trial, "should_prune")],
    "user attrs": [(optuna.trial.Trial, "set_user_attr")],
    "tell (trial state)": [(optuna.study._optimize, "_tell_with_warning")],
    "MLflow (trial run, epoch metrics)": [
        (StudyLog, "start_trial"),
        (StudyLog, "epoch"),
        (StudyLog, "end_trial"),
    ],
    "console": [(Progress, "trial_start"), (Progress, "epoch"), (Progress, "trial_end")],
    "study queries (budget, best)": [
        (runner_module, "counts"),
        (queries_module, "counts"),
        (queries_module.Budget, "check_surplus"),
        (runner_module.StudyRunner, "best"),
    ],
}
SPENT: dict[str, float] = defaultdict(float)
_DEPTH = [0]


def timed(part: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _DEPTH[0]:  # inside another timed part: counted there
            return fn(*args, **kwargs)
        _DEPTH[0] += 1
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[part] += time.perf_counter() - t0
            _DEPTH[0] -= 1

    return wrapper


def quality(config) -> float:
    """A made-up final accuracy with structure: best near SGD lr 1, BN on, width 1.25."""
    q = 0.9 - 0.08 * math.log(config.lr / (1.0 if config.optimizer == "sgd" else 0.003)) ** 2
    width = config.conv_channels[0] / 64 if config.conv_channels else 1.0
    q -= 0.1 * (not config.batch_norm) + 0.05 * abs(width - 1.25)
    noise = zlib.crc32(repr(sorted(config.params().items())).encode()) / 2**32 * 0.01
    return max(0.1, min(0.95, q + noise))


def stand_in(task):
    """train_seeds without training, for `task`: each epoch's metrics at once, reported as the
    real one does (the pruner may stop it)."""

    def train_seeds(config, data, seeds, *, report=None, **_):
        trainers = [SimpleNamespace(history=[]) for _ in seeds]
        q = quality(config)
        for epoch in range(1, config.epochs + 1):
            acc = 0.1 + (q - 0.1) * (1 - 0.6**epoch)
            value = acc if task.direction == "maximize" else 1 - acc
            m = {
                task.metric: value,
                "val_accuracy": acc,
                "val_r2": acc,
                "train_loss": 2.3 * (1 - acc),
                "val_loss": 2.3 * (1 - acc) + 0.1,
                "lr": config.lr,
                "epoch_seconds": 0.2,
                "images_per_second": 225000.0,
            }
            for t in trainers:
                t.history.append(dict(m))
            if report is not None:
                report(epoch, [dict(m) for _ in seeds])
        return trainers

    return train_seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="cifar10")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--block", type=int, default=50, help="trials per row of the table")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true", help="the study's own lines")
    ap.add_argument("--smoke", action="store_true", help="box, 6 trials (tests)")
    ap.add_argument(
        "--storage",
        help="study storage (default: SQLite in a temporary folder); a PostgreSQL URL gets a "
        "study of its own name, deleted afterwards; memory: Optuna's in-memory one (the floor)",
    )
    ap.add_argument("--tracking-uri", help="MLflow store (default: SQLite in the folder)")
    args = ap.parse_args()
    if args.smoke:
        args.task, args.trials, args.block = "box", 6, 3
    if args.task == "cifar10" and not os.environ.get("HPO_DATA_DIR"):
        raise SystemExit("set HPO_DATA_DIR to a folder holding cifar-10-batches-py")
    data = {"subset": 0.002, "val_subset": 0.01} if args.task == "cifar10" else {}
    if args.task == "box":
        data = {"n_train": 64}

    for part, targets in PARTS.items():
        for owner, name in targets:
            setattr(owner, name, timed(part, getattr(owner, name)))
    objective_module.train_seeds = stand_in(get_task(args.task))
    rows = []
    marks: list[tuple[int, float, dict[str, float]]] = []  # (finished, time, SPENT) per trial
    step = runner_module.StudyRunner._step

    def counted_step(self, deadline):
        out = step(self, deadline)
        if out[0] is None:  # a trial ran (the last call only says why the study stops)
            marks.append((len(marks) + 1, time.perf_counter(), dict(SPENT)))
        return out

    runner_module.StudyRunner._step = counted_step
    optimize = runner_module.StudyRunner.optimize
    begun: list[tuple[int, float, dict[str, float]]] = []

    studies = []  # the study, kept: an in-memory one (--storage memory) cannot be loaded again

    def timed_optimize(self):
        begun.append((0, time.perf_counter(), dict(SPENT)))
        studies.append(self.study)
        return optimize(self)

    runner_module.StudyRunner.optimize = timed_optimize
    summary_seconds = [0.0]
    summary = session_module.summary

    def timed_summary(*a, **k):
        t0 = time.perf_counter()
        try:
            return summary(*a, **k)
        finally:
            summary_seconds[0] = time.perf_counter() - t0

    session_module.summary = timed_summary
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        name = f"overhead-{os.getpid()}-{time.time_ns()}" if args.storage else None
        options = Options(
            trials=args.trials,
            storage=args.storage or f"sqlite:///{tmp}/hpo.db",
            study_name=name,
            tracking_uri=args.tracking_uri or f"sqlite:///{tmp}/mlflow.db",
            seed=args.seed,
            device="cpu",
            original=False,
            baselines=False,
            data=data,
        )
        t_start = time.perf_counter()
        echo = print if args.verbose else (lambda line: None)
        result = run(args.task, options, echo=echo)
        total = time.perf_counter() - t_start
        stored = studies[0].trials
        if name and args.storage != "memory":
            optuna.delete_study(study_name=name, storage=options.storage)
        failed = [t for t in stored if t.state == optuna.trial.TrialState.FAIL]
        if failed:  # the stand-in no longer fits the objective: what was timed is not a trial
            reason = TrialRecord.of(failed[0]).reason
            raise SystemExit(
                f"{len(failed)} trial(s) failed, e.g. trial {failed[0].number}: {reason}"
            )
    # per block: ms per trial in each part, and in all (the _step's wall time)
    starts = begun + marks[:-1]
    for lo in range(0, len(marks), args.block):
        block = marks[lo : lo + args.block]
        first, last = starts[lo], block[-1]
        n = len(block)
        row = {"trials": f"{lo + 1}-{lo + n}"}
        for part in PARTS:
            row[part] = 1000 * (last[2].get(part, 0.0) - first[2].get(part, 0.0)) / n
        wall = 1000 * (last[1] - first[1]) / n
        row["other"] = wall - sum(row[p] for p in PARTS)
        row["all (ms a trial)"] = wall
        rows.append(row)
    cols = list(rows[0])
    print(
        f"{args.task}: {result.finished} trials on {masked(options.storage).split('@')[-1]}, "
        "training replaced by a stand-in; "
        f"{total:.1f} s in all, the summary (plots, MLflow) {summary_seconds[0]:.1f} s\n"
    )
    print("| " + " | ".join(cols) + " |")
    print("| " + " | ".join(["---"] + ["---:"] * (len(cols) - 1)) + " |")
    for row in rows:
        print("| " + " | ".join([row["trials"], *(f"{row[c]:.0f}" for c in cols[1:])]) + " |")
    OUT.mkdir(exist_ok=True)
    with open(OUT / "trial_overhead.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
