"""Does `hpo train --best`'s finalists step pick better configs than the study's single best?

For each study seed: a study of the task's shipped spec in memory (search.py's `in_memory`),
--trials trials; then its best --finalists configs are rescored under --finalist-seeds fresh
seeds (hpo.final.finalists, as `hpo train --best` does), and each of them is also trained the way
`hpo train` trains the final model (train + validation images) under --truth-seeds seeds and
scored on the test split: the truth the two rules are judged by (for the two picks only,
unless --all-truth; on a CPU one such retrain at 1,450 images takes minutes). The benchmark,
not the product, reads the test split of every config it judges; `hpo train` reads it once.

Prints a line per study and a markdown table: per study seed, the trial each rule picks and its
mean test score, and the best test score among the finalists (regret = best - pick). Writes
benchmarks/out/finalists_<task>.csv.
Usage: python benchmarks/finalists.py --task cifar10 --trials 40 --seeds 3
       --data subset=0.01 --data val_subset=0.2 --epochs 2 [--seed-list 0,2] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import time

import optuna
from search import ARMS, in_memory, write_csv

from hpo.cli.app import parse_data
from hpo.final.finalists import candidates, fresh_seeds, pick, rescore
from hpo.final.retrain import retrain
from hpo.study.queries import counts
from hpo.tasks import TASKS, get_task
from hpo.util.process import tune_malloc


def one_study(args, data: dict, seed: int) -> dict:
    """Run a study, rescore its finalists, and find each finalist's test score."""
    t0 = time.monotonic()
    arm = ARMS["default"]
    runner = in_memory(args.task, arm, seed, args.trials, data, args.device, args.epochs)
    while (done := counts(runner.study)[0]) < args.trials:
        runner._step(None)
        if (done + 1) % 10 == 0:
            print(f"  study seed {seed}: {done + 1} trials, {time.monotonic() - t0:.0f} s")
    study, task = runner.study, runner.task
    searched = time.monotonic() - t0
    chosen = candidates(study, args.finalists)
    quiet = (lambda s: None) if not args.verbose else print
    rescore(
        study,
        chosen,
        fresh_seeds(study, args.finalist_seeds),
        runner.data,
        metric=task.metric,
        objective=runner.spec.objective,
        device=runner.device,
        augment=task.augment,
        echo=print,
    )
    test_metric = task.metric.replace("val_", "test_")
    single, confirmed = chosen[0], pick(chosen)
    print(f"  picks: single best trial {single.number}, finalists' trial {confirmed.number}")
    # the truth costs most (a retrain and the whole test split, per seed): by default only for
    # the picks (one retrain set when they agree), with --all-truth for every finalist
    judged = chosen if args.all_truth else list({id(f): f for f in (single, confirmed)}.values())
    truth = {}
    for f in judged:
        runs = [
            retrain(task, runner.settings, runner.data, f.config, runner.device, s, "", quiet)[1]
            for s in range(100, 100 + args.truth_seeds)
        ]
        truth[f.number] = statistics.fmean(m[test_metric] for m in runs)
        print(f"  trial {f.number}: test {test_metric} {truth[f.number]:.4f}", flush=True)
    sign = 1 if task.direction == "maximize" else -1
    best = max(truth.values(), key=lambda v: sign * v)
    row = {
        "study_seed": seed,
        "trials": len(study.trials),
        "search_seconds": round(searched),
        "single_trial": single.number,
        "single_val": round(single.value, 4),
        "single_test": round(truth[single.number], 4),
        "finalists_trial": confirmed.number,
        "finalists_rescored": round(confirmed.rescored or float("nan"), 4),
        "finalists_test": round(truth[confirmed.number], 4),
        "best_judged_test": round(best, 4),
        "seconds": round(time.monotonic() - t0),
    }
    print(
        f"study seed {seed}: {row['trials']} trials in {searched:.0f} s; single best trial "
        f"{single.number} (val {single.value:.4f}) test {row['single_test']}; finalists' pick "
        f"trial {confirmed.number} test {row['finalists_test']}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cifar10", choices=sorted(TASKS))
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, help="epochs per trial [default: the spec's]")
    parser.add_argument("--seeds", type=int, default=3, help="study seeds 0..N-1")
    parser.add_argument("--seed-list", help="these study seeds instead, e.g. 0,3")
    parser.add_argument("--finalists", type=int, default=3)
    parser.add_argument("--finalist-seeds", type=int, default=2)
    parser.add_argument("--truth-seeds", type=int, default=2, help="test runs per config judged")
    parser.add_argument(
        "--all-truth", action="store_true", help="judge every finalist, not only the two picks"
    )
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="cpu", help="cpu | auto | cuda [default: cpu]")
    parser.add_argument("--smoke", action="store_true", help="box, tiny data, 1 seed, 6 trials")
    parser.add_argument("--verbose", action="store_true", help="the retrains' own lines")
    args = parser.parse_args()
    tune_malloc()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    data = parse_data(args.data)
    seeds = [int(s) for s in args.seed_list.split(",")] if args.seed_list else range(args.seeds)
    if args.smoke:
        args.task, args.trials, seeds, args.truth_seeds = "box", 6, [0], 1
        data |= {"n_train": 256, "n_val": 64, "n_test": 64, "image_size": 32, "square_size": 6}
    rows = [one_study(args, data, seed) for seed in seeds]
    metric = get_task(args.task).metric.replace("val_", "test_")
    print(
        f"\n{args.task}: {args.trials} trials a study, data {data or 'default'}, epochs "
        f"{args.epochs or 'from the spec'}, {args.finalists} finalists x {args.finalist_seeds} "
        f"fresh seeds, truth: {metric} after `hpo train`'s retrain, mean of {args.truth_seeds}"
    )
    print(
        "| study seed | single best: trial, val, test | finalists' pick: trial, rescored, test "
        "| best test among those judged |"
    )
    print("| --- | --- | --- | ---: |")
    for r in rows:
        print(
            f"| {r['study_seed']} | {r['single_trial']}, {r['single_val']}, {r['single_test']} "
            f"| {r['finalists_trial']}, {r['finalists_rescored']}, {r['finalists_test']} "
            f"| {r['best_judged_test']} |"
        )
    single = statistics.fmean(r["single_test"] for r in rows)
    final = statistics.fmean(r["finalists_test"] for r in rows)
    changed = sum(r["single_trial"] != r["finalists_trial"] for r in rows)
    print(
        f"mean test {metric}: single best {single:.4f}, finalists' pick {final:.4f} "
        f"({changed} of {len(rows)} picks differ)"
    )
    write_csv(f"finalists_{args.task}.csv", rows)


if __name__ == "__main__":
    main()
