"""Storage overhead per trial and finished trials/s: SQLite vs PostgreSQL, 1/2/4 workers.

Each trial trains nothing but makes the storage calls an hpo trial makes: the budget count,
~10 suggest calls, 5 user attributes, 5 reported epochs. Workers are processes on one study,
opened with hpo's own storage settings (heartbeats on). PostgreSQL rows need HPO_TEST_PG_URL
(or --pg URL). Prints a markdown table, writes benchmarks/out/storage.csv.
Usage: python benchmarks/storage.py [--trials 120] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import tempfile
import time
import uuid
from pathlib import Path

OUT = Path(__file__).parent / "out"


def objective(trial) -> float:
    from hpo.study.queries import counts

    counts(trial.study)
    depth = trial.suggest_int("depth", 0, 3)
    for i in range(depth):
        trial.suggest_int(f"conv_channels_{i}", 8, 64, log=True)
    trial.suggest_categorical("optimizer", ["sgd", "adam", "adadelta"])
    lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
    trial.suggest_int("dense_layers", 0, 2)
    trial.suggest_categorical("batch_size", [32, 64, 128])
    for key in ("params", "config", "seeds"):
        trial.set_user_attr(key, {"depth": depth, "lr": lr})
    for epoch in range(1, 6):
        trial.report(lr / epoch, epoch)
    trial.set_user_attr("metrics", {"val_mse": lr})
    trial.set_user_attr("diagnosis", "ok")
    return lr


def worker(url: str, name: str, n: int, barrier, results) -> None:
    import warnings

    import optuna

    from hpo.study.storage import open_storage

    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    barrier.wait()  # imports and connections done: time the trials alone, all together
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n)
    results.put((t0, time.perf_counter()))


def measure(url: str, workers: int, trials: int) -> dict:
    import optuna

    from hpo.study.storage import open_storage

    name = f"bench-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=open_storage(url))
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(url, name, trials // workers, barrier, results))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    spans = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    done = len(optuna.load_study(study_name=name, storage=url).trials)
    return {
        "trials": done,
        "wall_s": round(wall, 2),
        "trials_per_s": round(done / wall, 1),
        "ms_per_trial_per_worker": round(1000 * wall * workers / done, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=120, help="per configuration")
    parser.add_argument("--pg", default=os.environ.get("HPO_TEST_PG_URL"))
    parser.add_argument("--smoke", action="store_true", help="few trials, SQLite, 1-2 workers")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    trials, counts = (8, (1, 2)) if args.smoke else (args.trials, (1, 2, 4))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"sqlite": f"sqlite:///{tmp}/bench.db"}
        if args.pg and not args.smoke:
            backends["postgresql"] = args.pg
        for backend, url in backends.items():
            for workers in counts:
                rows.append(
                    {"storage": backend, "workers": workers} | measure(url, workers, trials)
                )
    print(
        "| storage | workers | trials | wall s | finished trials/s | ms per trial (per worker) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['storage']} | {r['workers']} | {r['trials']} | {r['wall_s']} | "
            f"{r['trials_per_s']} | {r['ms_per_trial_per_worker']} |"
        )
    OUT.mkdir(exist_ok=True)
    with open(OUT / "storage.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
