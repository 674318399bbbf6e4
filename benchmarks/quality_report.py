"""The search-quality table's vocabulary and its outputs: a problem, a study's course, the
per-arm summary, the anytime plot, the _course.csv and the per-study journal that --resume and
--replot read back (benchmarks/search_quality.py runs the studies)."""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hpo.tasks import Task


@dataclass(frozen=True)
class Problem:
    task: str | Callable[[], Task]
    metric: str  # the success metric (maximised) and its threshold
    threshold: float
    trials: int  # the budget: this many full-length trials' epochs
    data: dict = field(default_factory=dict)
    seconds: float | None = None  # or equal wall time
    smoke: dict = field(default_factory=dict)


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


def write_tables(name: str, rows: list[dict], studies: list[Study], out: Path) -> None:
    """The summary rows to search_quality_<name>.csv, every study's course to _course.csv."""
    with open(out / f"search_quality_{name}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(out / f"search_quality_{name}_course.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arm", "seed", "seconds", "trials", "epochs", "best"])
        for s in studies:
            writer.writerows([s.arm, s.seed, *c] for c in s.course)


def journal(path: Path, study: Study, setup: dict) -> None:
    """Append one finished study, under the setup it ran in."""
    with open(path, "a") as fh:
        fh.write(json.dumps(asdict(study) | {"setup": setup}, default=str) + "\n")
