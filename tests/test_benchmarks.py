"""Every benchmark script runs in its smoke mode and prints its markdown table, and one figure
of each table is checked against the figures it is made of (a ratio against its two sides, a
rate against its count and its time, a total against its parts)."""

from __future__ import annotations

import csv
import math
import os
import statistics
import subprocess
import sys

import pytest

from .conftest import ROOT

SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))


def smoke(script, cwd, *args: str) -> subprocess.CompletedProcess:
    """The benchmark `script` in its smoke mode (plus `args`), one thread, in `cwd`."""
    return subprocess.run(
        [sys.executable, str(script), "--smoke", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every markdown table in `text`, as rows of {header: cell}."""
    found, lines = [], text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and lines[i + 1].startswith("| ---"):
            head = [c.strip() for c in line.strip("|").split("|")]
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in row.strip("|").split("|")]
                rows.append(dict(zip(head, cells, strict=True)))
            found.append(rows)
    return found


def number(cell: str) -> float:
    return float(cell.split()[0].rstrip("%"))


def check_budget_load(out: str) -> None:
    """Every case's trials are its complete and pruned ones; the cut are some of the pruned."""
    (rows,) = tables(out)
    assert [r["case"].split()[0] for r in rows] == ["alone", "2", "beside"]
    for r in rows:
        assert int(r["complete"]) + int(r["pruned"]) >= 2
        assert 0 <= int(r["cut by the budget"]) <= int(r["pruned"])


def check_cifar10_recipe(out: str) -> None:
    """The table's test accuracy is the run's, in per cent, on 64 test images."""
    (rows,) = tables(out)
    line = next(x for x in out.splitlines() if x.startswith("recipe: test "))
    accuracy = float(line.split()[2])
    assert number(rows[0]["test accuracy"]) == pytest.approx(100 * accuracy, abs=0.01)
    assert (accuracy * 64) == pytest.approx(round(accuracy * 64))  # a count of 64 images


def check_cudnn_tuning(out: str) -> None:
    """Each setting's total covers every variant's first epoch and its later (steady) ones."""
    (rows,) = tables(out)
    epochs = int(out.split(" epochs per variant")[0].rsplit(" ", 1)[1])
    first, steady = "first epoch s, search / heuristics", "steady epoch s, search / heuristics"
    total = [number(x) for x in rows[-1][first].split("/")]
    for side in (0, 1):
        parts = sum(
            number(r[first].split("/")[side]) + (epochs - 1) * number(r[steady].split("/")[side])
            for r in rows[:-1]
        )
        assert total[side] >= parts * 0.98


def check_finalists(out: str) -> None:
    """The mean test score of the single best trials is the mean of the table's column."""
    (rows,) = tables(out)
    tests = [float(r["single best: trial, val, test"].split(",")[2]) for r in rows]
    line = next(x for x in out.splitlines() if x.startswith("mean test "))
    single = float(line.split("single best ")[1].split(",")[0])
    assert single == pytest.approx(statistics.fmean(tests), rel=1e-3)


def check_malloc_speed(out: str) -> None:
    """The ratio is tuned / default images per second."""
    rows = {r["malloc"]: r for r in tables(out)[0]}
    ratio = number(rows["tuned"]["img/s (median of 1)"]) / number(
        rows["default"]["img/s (median of 1)"]
    )
    assert number(rows["tuned"]["ratio"]) == pytest.approx(ratio, abs=0.011)


def check_own_data(out: str) -> None:
    """The images are the train, val and test splits of the data-set line, together."""
    (rows,) = tables(out)
    parts = [int(n.replace(",", "")) for n in rows[0]["train / val / test"].split(" / ")]
    assert int(rows[0]["images"].replace(",", "")) == sum(parts)
    assert 0 <= float(rows[0]["best val accuracy"]) <= 1


def check_overhead(out: str) -> None:
    """hpo / bare is the quotient of the two speeds, for every case."""
    speeds, startup = tables(out)
    for r in speeds:
        hpo_speed, bare = number(r["hpo img/s"]), number(r["bare img/s"])
        ratio = hpo_speed / bare
        # the speeds are printed to whole images a second, the quotient of the exact ones
        rounding = ratio * (0.5 / hpo_speed + 0.5 / bare) + 0.0005
        assert number(r["hpo / bare"]) == pytest.approx(ratio, abs=rounding)
    assert all(0 < number(r["median seconds"]) < 120 for r in startup)


def check_peers(out: str) -> None:
    """Every knob hpo's space has is one the peer searches (or a fixed one), and peer configs
    go back into hpo Configs."""
    (rows,) = tables(out)
    knobs = int(out.split(" knobs, ")[0].rsplit(" ", 1)[1])
    assert len(rows) == knobs and all(r["peer's hyperparameter"] for r in rows)
    assert sum(r["peer's hyperparameter"] != "fixed" for r in rows) == int(
        out.split(" knobs, ")[1].split()[0]
    )
    assert "20 random peer configs built as hpo Configs" in out


def check_pixel_rungs(out: str) -> None:
    """A rule stops at most the winners there are; noise-aware keeps at least as many."""
    (rows,) = tables(out)
    for r in rows:
        lost, winners = r["winners stopped"].split(" of ")
        assert 0 <= int(lost) <= int(winners)
    for pool in ("all", "in order"):
        kept = {r["rule"].split(",")[0]: int(r["draws trained to the end"]) for r in rows
                if r["pool"] == pool}  # fmt: skip
        assert kept["noise-aware"] >= kept["top third"]


def check_search_quality(out: str) -> None:
    """'reached' k/n: the median trials are finite iff more than half reached, p90 >= median."""
    (rows,) = tables(out)
    assert {r["arm"] for r in rows} == {"hpo", "optuna", "random", "dehb"}
    for r in rows:
        k, n = (int(v) for v in r["reached"].split("/"))
        assert math.isfinite(float(r["median trials"])) == (k > n / 2)
        assert float(r["p90 trials"]) >= float(r["median trials"])


def check_pixel_batch(out: str) -> None:
    """'reached' counts the configs whose final accuracy is >= 0.99."""
    (rows,) = tables(out)
    finals = [float(x.split("[")[1].split("]")[0]) for x in out.splitlines() if "]" in x]
    reached = sum(v >= 0.99 for v in finals)
    assert rows[0]["reached val >= 0.99"] == f"{reached}/{len(finals)}"


def check_pixel_draws(out: str) -> None:
    """The 'all' row is the sum of the optimizer rows."""
    (rows,) = tables(out)
    *parts, total = rows
    for column in ("draws", "unit >= 0.99", "centred >= 0.99"):
        assert int(total[column]) == sum(int(r[column]) for r in parts)


def check_pixel_l1(out: str) -> None:
    """Each row's mean is the mean of its seeds."""
    for r in tables(out)[0]:
        seeds = [float(v) for v in r["final val accuracy per seed"].split(",")]
        assert float(r["mean"]) == pytest.approx(statistics.fmean(seeds), abs=0.001)


def check_search(out: str) -> None:
    """An arm that reached nothing has no trial count or time; one that did, finite ones."""
    for r in tables(out)[0]:
        reached = int(r["reached"].split("/")[0])
        assert math.isfinite(float(r["median trials"])) == (reached > 0)


def check_storage(out: str) -> None:
    """Finished trials a second is trials over wall seconds."""
    for r in tables(out)[0]:
        rate = float(r["trials"]) / float(r["wall s"])
        assert float(r["finished trials/s"]) == pytest.approx(rate, rel=0.05)


def check_trial_overhead(out: str) -> None:
    """A row's 'all' is the sum of its parts (ms a trial, rounded)."""
    for r in tables(out)[0]:
        parts = [float(v) for k, v in r.items() if k not in ("trials", "all (ms a trial)")]
        assert float(r["all (ms a trial)"]) == pytest.approx(sum(parts), abs=len(parts))


def check_workers(out: str) -> None:
    """hpo's shared budget is exact: as many finished as the budget, none told twice or left
    running; a p95 is at least the median."""
    rows = tables(out)[-1]
    assert {r["storage"] for r in rows} == {"memory", "optuna", "hpo", "journal"}
    for r in rows:
        assert float(r["trial_ms_p95"]) >= float(r["trial_ms_median"]) > 0
        assert r["told_twice"] == r["left_running"] == "0"
        if r["storage"] not in ("optuna", "journal"):  # bare Optuna splits its budget itself
            assert r["finished"] == r["budget"], r


CHECKS = {n.removeprefix("check_"): f for n, f in globals().items() if n.startswith("check_")}


def test_every_benchmark_has_a_check():
    assert sorted(CHECKS) == sorted(s.stem for s in SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_smoke(script, scratch):
    out = smoke(script, scratch)
    assert out.returncode == 0, out.stderr[-2000:]
    assert tables(out.stdout), out.stdout  # a markdown table
    CHECKS[script.stem](out.stdout)


def test_search_benchmark_at_equal_wall_time(scratch):
    """--budget: both arms get the same seconds per study seed (after the process's one-off
    costs, paid before any clock starts); the table names the best."""
    out = smoke(ROOT / "benchmarks" / "search.py", scratch, "--budget", "6")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| search | best per study seed | median best | median trials |" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith("| default")]
    rows += [line for line in out.stdout.splitlines() if line.startswith("| random")]
    assert len(rows) == 2, out.stdout
    for row in rows:  # at least one trial finished within the budget, with a finite R2
        trials = float(row.rstrip(" |").rsplit("|", 1)[1])
        assert trials >= 1 and "-inf" not in row and "nan" not in row


def test_rescoring_uses_validation_images_the_search_never_saw(monkeypatch):
    """search.py --rescore: the best config is scored again on validation images outside the
    val_subset the trials were scored on (and never on the test split)."""
    import importlib.util

    import numpy as np

    from hpo.tasks import cifar10

    spec = importlib.util.spec_from_file_location("search", ROOT / "benchmarks" / "search.py")
    search = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "search", search)  # its dataclasses look it up there
    spec.loader.exec_module(search)
    settings = {**cifar10.DEFAULTS, "subset": 0.01, "val_subset": 0.1}
    seen = cifar10.split(cifar10.N_TRAIN_FILES, settings)[1]
    every = cifar10.split(cifar10.N_TRAIN_FILES, {**settings, "val_subset": 1.0})[1]
    held = search.held_out(settings, 2000)
    assert len(seen) == 500 and len(every) == 5000 and len(held) == 2000
    assert len(set(held)) == 2000 and held.max() < len(every)
    assert not np.isin(every[held], seen).any()  # none of the images the search scored on
    assert len(search.held_out(settings, 10**6)) == 4500  # all the rest, at most


def test_search_quality_resumes(scratch):
    """--resume keeps the studies a cut-off run finished (under the same budget and data) and
    runs only the missing seeds: the kept study's row is the one the first run wrote."""
    script = ROOT / "benchmarks" / "search_quality.py"
    first = smoke(script, scratch, "--arms", "random", "--seed-list", "0", "--out", "sq")
    assert first.returncode == 0, first.stderr[-2000:]

    def per_seed() -> list[str]:
        lines = (scratch / "sq" / "search_quality_box.csv").read_text().splitlines()
        return next(csv.DictReader(lines))["per_seed"].split()

    (seed0,) = per_seed()
    both = smoke(script, scratch, "--arms", "random", "--seed-list", "0,1", "--resume",
                 "--out", "sq")  # fmt: skip
    assert both.returncode == 0, both.stderr[-2000:]
    assert "resumed: 1 finished studies" in both.stdout
    assert both.stdout.count("box random seed") == 1  # only seed 1 trained
    kept, new = per_seed()
    assert kept == seed0 and new.startswith("1:")
    assert len((scratch / "sq" / "search_quality_box_studies.jsonl").read_text().splitlines()) == 2
