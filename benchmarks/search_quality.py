"""Search quality, as a paper's table: hpo's default search against plain Optuna, random search
and DEHB, on hpo's own problems and one it did not make.

Arms (every one trains through hpo's trainer, on the same space and the same data):
- hpo: the task's spec as shipped (for pixel: TPE + random share + noise-aware Hyperband);
- optuna: plain `TPESampler(seed)` + `MedianPruner()`, what a user of Optuna starts with;
- random: `RandomSampler(seed)`, no pruning;
- dehb: DEHB (`pip install dehb`) through its ask/tell API, fidelity = epochs
  (benchmarks/peers.py).

Budget: equal total epochs, stated per problem (trials x the spec's epochs: a pruned trial or a
low-fidelity evaluation spends less of it), or equal wall time where the problem says
`seconds`. A study stops at the budget or at its first full-length trial that reaches the
problem's threshold. For each arm and problem: success rate; median and p90 trials and seconds
to the threshold (inf: not reached); the final best; that best config trained again under
another seed and scored on the held-out test split, which no search saw. An anytime plot (best
so far against seconds, median and interquartile band over study seeds) goes to
benchmarks/out/search_quality_<problem>.png, the rows to .csv. Each finished study is appended
to search_quality_<problem>_studies.jsonl as it ends; `--resume` keeps the studies there that
were run under the same budget and data, and runs only the rest (a cut-off run goes on).

Usage: python benchmarks/search_quality.py --problem box [--seeds 10]
       [--arms hpo,optuna,random,dehb]
       [--seed-list 0,1] [--trials 30] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).parent))
from peers import dehb_search  # noqa: E402
from search import OUT, Arm, in_memory, warm_up  # noqa: E402

from hpo.search.record import TrialRecord  # noqa: E402
from hpo.study.runner import StudyRunner  # noqa: E402
from hpo.tasks import Task  # noqa: E402
from hpo.train.config import Config  # noqa: E402
from hpo.train.evaluate import evaluate  # noqa: E402
from hpo.train.limits import TimeLimit  # noqa: E402
from hpo.train.loop import train, train_seeds  # noqa: E402
from hpo.train.seeds import seed_list  # noqa: E402
from hpo.util.outcomes import TrainingError  # noqa: E402
from hpo.util.process import tune_malloc  # noqa: E402


def digits_task() -> Task:
    """scikit-learn's bundled digits (1,797 8x8 images, 10 classes) as a user's arrays: hpo
    splits them 80/10/10 and derives the space."""
    from sklearn.datasets import load_digits

    import hpo

    d = load_digits()
    images = (d.images * 255 / 16).astype(np.uint8)[..., None]
    return hpo.Task.from_arrays(images, d.target, name="digits")


@dataclass(frozen=True)
class Problem:
    task: str | Callable[[], Task]
    metric: str  # the success metric (maximised) and its threshold
    threshold: float
    trials: int  # the budget: this many full-length trials' epochs
    data: dict = field(default_factory=dict)
    seconds: float | None = None  # or equal wall time
    smoke: dict = field(default_factory=dict)


PROBLEMS = {
    "box": Problem("box", "val_r2", 0.99, 30, {"n_train": 2000},
                   smoke={"n_train": 256, "n_val": 64, "image_size": 32, "square_size": 6}),
    "digits": Problem(digits_task, "val_accuracy", 0.98, 30),
    "pixel": Problem("pixel", "val_accuracy", 0.99, 20,
                     smoke={"n_train_per_class": 64, "n_val_per_class": 32, "image_size": 32}),
    # 120 s is a GPU's study: on the 2-core CPU one full trial at subset 0.01 takes ~225 s
    "cifar10": Problem("cifar10", "val_accuracy", 0.35, 1000, {"subset": 0.01}, seconds=120),
}  # fmt: skip
ARMS = ("hpo", "optuna", "random", "dehb")


@dataclass
class Study:
    """One study's course: (seconds, trials, epochs, best so far) after each trial."""

    arm: str
    seed: int
    course: list[tuple[float, int, int, float]] = field(default_factory=list)
    reached: tuple[int, float] | None = None  # (trials, seconds) at the threshold
    best_config: dict | None = None
    best_value: float = -math.inf  # the success metric of the best full-length trial
    rescored: float = math.nan

    def note(self, t0: float, trials: int, epochs: int, value: float | None, config, p) -> None:
        seconds = time.monotonic() - t0
        if value is not None and value > self.best_value:
            self.best_value, self.best_config = value, config
        self.course.append((seconds, trials, epochs, self.best_value))
        if self.reached is None and self.best_value >= p.threshold:
            self.reached = (trials, seconds)


def runner_for(p: Problem, arm: str, seed: int, data: dict, device: str) -> StudyRunner:
    task = p.task if isinstance(p.task, str) else p.task()
    if arm == "hpo":
        return in_memory(task, Arm("default"), seed, 100_000, data, device)
    runner = in_memory(task, Arm("random", "random", "none", 0.0), seed, 100_000, data, device)
    if arm == "optuna":
        runner.study.sampler = optuna.samplers.TPESampler(seed=seed)
        runner.study.pruner = optuna.pruners.MedianPruner()
    return runner


def metric_of(metrics: dict, p: Problem) -> float | None:
    value = metrics.get(p.metric)
    return None if value is None or not math.isfinite(value) else float(value)


def optuna_study(p: Problem, arm: str, seed: int, data: dict, device: str):
    runner = runner_for(p, arm, seed, data, device)
    study, budget = Study(arm, seed), p.trials * runner.spec.epochs
    t0, epochs = time.monotonic(), 0
    end = None if p.seconds is None else t0 + p.seconds
    n = 0
    while epochs < budget and study.reached is None and n < 3 * p.trials:
        if end is not None and time.monotonic() >= end:
            break
        runner._step(end)
        if end is not None and time.monotonic() > end:
            break  # the trial that overran the wall-time budget does not count
        t, n = runner.study.trials[-1], n + 1
        epochs += len(t.intermediate_values)
        record = TrialRecord.of(t)
        full = t.state == optuna.trial.TrialState.COMPLETE
        value = metric_of(record.metrics, p) if full else None
        study.note(t0, n, epochs, value, record.config, p)
    return study, runner


def dehb_study(p: Problem, seed: int, data: dict, device: str):
    runner = runner_for(p, "dehb", seed, data, device)
    spec, task = runner.spec, runner.task
    study, budget = Study("dehb", seed), p.trials * spec.epochs
    t0, state = time.monotonic(), {"n": 0, "epochs": 0}
    end = None if p.seconds is None else t0 + p.seconds

    def evaluate_config(config: Config, epochs: int):
        started = time.monotonic()
        try:
            trainers = train_seeds(
                config.replace(epochs=epochs),
                runner.data,
                seed_list(seed, spec.seeds),
                device=runner.device,
                time_limit=TimeLimit.on(runner.device, spec.trial_timeout, end),
                augment=task.augment,
            )
            per_seed = [t.history[-1] for t in trainers]
            metrics = {k: statistics.fmean(m[k] for m in per_seed) for k in per_seed[0]}
        except TrainingError:
            metrics = {}
        state["n"] += 1
        state["epochs"] += epochs
        if end is None or time.monotonic() <= end:
            full = epochs == spec.epochs and bool(metrics)
            value = metric_of(metrics, p) if full else None
            study.note(t0, state["n"], state["epochs"], value, config.to_dict(), p)
        return metrics.get(task.metric), time.monotonic() - started

    def stop() -> bool:
        late = end is not None and time.monotonic() >= end
        return late or study.reached is not None or state["n"] >= 3 * p.trials

    with tempfile.TemporaryDirectory() as workdir:
        dehb_search(
            spec,
            runner.base,
            evaluate_config,
            task.direction == "maximize",
            seed,
            budget,
            stop,
            workdir,
        )
    return study, runner


def rescore(study: Study, runner: StudyRunner, p: Problem) -> float:
    """The best config trained again under another seed, scored on the test split."""
    if study.best_config is None:
        return math.nan
    config = Config.from_dict(study.best_config)
    kept = train(config, runner.data, device=runner.device, seed=10_000 + study.seed,
                 augment=runner.task.augment, keep_model=True, validate=False)  # fmt: skip
    test = runner.task.load_test(runner.settings, runner.device)
    return float(evaluate(kept.model, test, runner.task.kind, config.batch_size)[p.metric])


def p90(values: list[float]) -> float:
    return float(np.percentile(np.array(values, dtype=float), 90, method="higher"))


def summarise(name: str, p: Problem, studies: list[Study]) -> list[dict]:
    budget = f"{p.seconds:g} s" if p.seconds else f"{p.trials} trials' epochs"
    print(f"\n{name}: until {p.metric} >= {p.threshold} (full-length trial), budget {budget}")
    print("| arm | reached | median trials | p90 trials | median s | p90 s | median final best "
          "| median rescored (test) |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = []
    for arm in dict.fromkeys(s.arm for s in studies):
        mine = [s for s in studies if s.arm == arm]
        trials = [s.reached[0] if s.reached else math.inf for s in mine]
        secs = [s.reached[1] if s.reached else math.inf for s in mine]
        row = {
            "problem": name,
            "arm": arm,
            "reached": f"{sum(s.reached is not None for s in mine)}/{len(mine)}",
            "median_trials": statistics.median(trials),
            "p90_trials": p90(trials),
            "median_s": round(statistics.median(secs), 1),
            "p90_s": round(p90(secs), 1),
            "median_best": round(statistics.median(s.best_value for s in mine), 4),
            "median_rescored": round(statistics.median(s.rescored for s in mine), 4),
            "per_seed": " ".join(f"{s.seed}:{s.best_value:.4f}" for s in mine),
        }
        rows.append(row)
        print("| " + " | ".join(str(row[k]) for k in list(row)[1:9]) + " |")
    return rows


def plot(name: str, p: Problem, studies: list[Study], out: Path) -> Path:
    """Best so far against seconds: median and interquartile band over study seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    studies = [s for s in studies if s.course]  # a study journalled without its course: not drawn
    horizon = max((c[0] for s in studies for c in s.course), default=1.0)
    grid = np.linspace(0, horizon, 200)
    # before its first full-length trial a study counts at the lowest value any study reached,
    # so that the median is over every seed at every second (and never falls)
    seen = [c[3] for s in studies for c in s.course if math.isfinite(c[3])]
    floor = max(min(seen, default=0.0), -0.1)  # an R2 far below 0 would squash the plot
    fig, ax = plt.subplots(figsize=(7, 4))
    for arm in dict.fromkeys(s.arm for s in studies):
        curves = []
        for s in (s for s in studies if s.arm == arm):
            times = np.array([c[0] for c in s.course] + [math.inf])
            best = np.array([floor] + [max(c[3], floor) for c in s.course])
            curve = best[np.searchsorted(times, grid, side="right")]
            if s.reached:  # a study stopped at the threshold keeps its best from there on
                curve[grid >= s.reached[1]] = s.best_value
            curves.append(curve)
        stack = np.array(curves)
        mid, lo, hi = (np.percentile(stack, q, axis=0) for q in (50, 25, 75))
        ax.plot(grid, mid, label=f"{arm} ({len(curves)} seeds)")
        ax.fill_between(grid, lo, hi, alpha=0.2)
    ax.axhline(p.threshold, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("seconds (2-core CPU)")
    ax.set_ylabel(f"best {p.metric} so far")
    ax.set_title(f"{name}: median and interquartile band over study seeds")
    ax.legend()
    path = out / f"search_quality_{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def load_courses(path: Path, p: Problem) -> list[Study]:
    """The studies of a run's _course.csv, to draw its plot again (--replot)."""
    studies: dict[tuple[str, int], Study] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["arm"], int(row["seed"]))
            s = studies.setdefault(key, Study(*key))
            seconds, best = float(row["seconds"]), float(row["best"])
            s.course.append((seconds, int(row["trials"]), int(row["epochs"]), best))
            s.best_value = max(s.best_value, best)
            if s.reached is None and best >= p.threshold:
                s.reached = (int(row["trials"]), seconds)
    return list(studies.values())


def journal_path(problem: str, out: Path) -> Path:
    return out / f"search_quality_{problem}_studies.jsonl"


def load_journal(path: Path, setup: dict) -> dict[tuple[str, int], Study]:
    """The studies a run journalled under this setup, by (arm, seed) (--resume)."""
    done: dict[tuple[str, int], Study] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry.pop("setup") != setup:
            continue
        study = Study(**entry)
        study.course = [tuple(c) for c in study.course]
        study.reached = tuple(study.reached) if study.reached else None
        done[(study.arm, study.seed)] = study
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="box", choices=sorted(PROBLEMS))
    parser.add_argument("--arms", default=",".join(ARMS), help=f"a comma list of {ARMS}")
    parser.add_argument("--seeds", type=int, default=10, help="study seeds 0..N-1")
    parser.add_argument("--seed-list", help="these study seeds instead, e.g. 100,101")
    parser.add_argument("--trials", type=int, help="the budget in full trials [problem's]")
    parser.add_argument("--seconds", type=float, help="equal wall time instead [problem's]")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-rescore", action="store_true", help="skip the test-split rescore")
    parser.add_argument("--smoke", action="store_true", help="tiny data, 2 seeds, 3 trials")
    parser.add_argument("--out", type=Path, help=f"where the results go [{OUT}, smoke: ./smoke]")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the studies the last run finished under this budget and data; run the rest",
    )
    parser.add_argument(
        "--replot",
        action="store_true",
        help="draw the plot again from the last run's _course.csv; no training",
    )
    args = parser.parse_args()
    # a smoke run leaves the real results alone
    out = args.out or (Path("smoke") if args.smoke else OUT)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        p = PROBLEMS[args.problem]
        studies = load_courses(out / f"search_quality_{args.problem}_course.csv", p)
        print(f"plot: {plot(args.problem, p, studies, out)}")
        return
    tune_malloc()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    p = PROBLEMS[args.problem]
    arms = args.arms.split(",")
    if set(arms) - set(ARMS):
        parser.error(f"--arms takes a comma list of {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seed_list.split(",")] if args.seed_list else range(args.seeds)
    data = dict(p.data)
    if args.smoke:
        seeds, data = list(seeds)[:2], data | p.smoke
        p = Problem(p.task, p.metric, p.threshold, 3, p.data, p.seconds and 10.0, p.smoke)
    if args.trials or args.seconds:
        p = Problem(p.task, p.metric, p.threshold, args.trials or p.trials, p.data,
                    args.seconds or p.seconds, p.smoke)  # fmt: skip
    setup = {"trials": p.trials, "seconds": p.seconds, "data": data, "device": args.device}
    setup = json.loads(json.dumps(setup))  # as the journal reads it back
    journal = journal_path(args.problem, out)
    done = load_journal(journal, setup) if args.resume else {}
    if not args.resume:
        journal.write_text("")
    if done:
        print(f"resumed: {len(done)} finished studies from {journal}")
    warm_up()
    studies = []
    for seed in seeds:  # arms alternate within a seed, so machine noise hits them alike
        for arm in arms:
            if (arm, seed) in done:
                studies.append(done[(arm, seed)])
                continue
            if arm == "dehb":
                study, runner = dehb_study(p, seed, data, args.device)
            else:
                study, runner = optuna_study(p, arm, seed, data, args.device)
            if not args.no_rescore:
                study.rescored = rescore(study, runner, p)
            studies.append(study)
            with open(journal, "a") as fh:
                fh.write(json.dumps(asdict(study) | {"setup": setup}, default=str) + "\n")
            at = (
                f"reached at trial {study.reached[0]}, {study.reached[1]:.0f} s"
                if study.reached
                else "not reached"
            )
            last = study.course[-1] if study.course else (0.0, 0, 0, -math.inf)
            print(f"{args.problem} {arm} seed {seed}: {at}; {last[1]} trials, {last[2]} epochs, "
                  f"{last[0]:.0f} s; best {study.best_value:.4f}, rescored {study.rescored:.4f}",
                  flush=True)  # fmt: skip
    rows = summarise(args.problem, p, studies)
    print(f"\nplot: {plot(args.problem, p, studies, out)}")
    with open(out / f"search_quality_{args.problem}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(out / f"search_quality_{args.problem}_course.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arm", "seed", "seconds", "trials", "epochs", "best"])
        for s in studies:
            writer.writerows([s.arm, s.seed, *c] for c in s.course)


if __name__ == "__main__":
    main()
