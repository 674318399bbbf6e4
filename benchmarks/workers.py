"""Workers at scale on one study storage: 1, 4, 16 and 32 worker processes on one PostgreSQL.

Each trial trains nothing and makes the storage calls an hpo trial makes (~10 params, 5 user
attrs, 5 epochs reported), so a trial's time is the storage's and Optuna's. Rows:
- memory: Optuna's in-memory storage, one process (the floor: no database at all);
- optuna: bare Optuna, workers on `optuna.create_study(storage=URL)`, each
  `study.optimize(n_trials=budget / K)` (Optuna's own way to split a budget);
- hpo: hpo's storage stack (hpo.study.storage: retries, Optuna's cache remembering study ids,
  a trial's writes in few transactions) and hpo's shared budget (each worker counts the study's
  finished trials before a trial, and a trial that raced past the budget is not trained);
- hpo+grpc: hpo's budget through Optuna's gRPC storage proxy (one server process holds the
  database connections; needs grpcio), where the workers' storage is the proxy's;
- journal: bare Optuna on its JournalStorage with a file backend (one appended log line per
  write, a file lock between processes), in a temporary folder: the single-machine candidate
  for the embedded default in place of SQLite.

Per row: finished trials per second (from the moment every worker is ready to the last one's
end), each trial's milliseconds in its worker (median, p95), trials finished (the budget is
exact when it equals it), trials told twice (Optuna's "already finished" errors) and trials
left RUNNING. The machine's cores bound every row (Python and PostgreSQL share them): compare
rows of one run, and the ratio to the memory row.
Usage: python benchmarks/workers.py [--pg URL] [--workers 1,4,16,32] [--per-worker 20]
       [--kinds optuna,hpo,hpo+grpc,journal] [--smoke]  (PostgreSQL from --pg or HPO_TEST_PG_URL)
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import socket
import statistics
import time
import uuid
from pathlib import Path

OUT = Path(__file__).parent / "out"


def stand_in(trial) -> float:
    """What an hpo trial writes, without training."""
    depth = trial.suggest_int("depth", 0, 3)
    for i in range(3):
        trial.suggest_int(f"conv_channels_{i}", 8, 64, log=True)
    trial.suggest_categorical("optimizer", ["sgd", "adam", "adadelta"])
    lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
    trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_categorical("batch_norm", [True, False])
    trial.suggest_int("dense_layers", 0, 2)
    trial.suggest_categorical("batch_size", [32, 64, 128])
    for key in ("params", "config", "seeds"):
        trial.set_user_attr(key, {"depth": depth, "lr": lr})
    for epoch in range(1, 6):
        trial.report(lr / epoch, epoch)
    trial.set_user_attr("metrics", {"val_mse": lr})
    trial.set_user_attr("diagnosis", "ok")
    return lr


def _storage(kind: str, url: str, port: int):
    if kind == "optuna":
        return url
    if kind == "journal":
        import optuna
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url))
    if kind == "hpo+grpc":
        import optuna

        return optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
    from hpo.study.storage import open_storage, patient_storage

    return patient_storage(open_storage(url), lambda line: None)[0]


def worker(kind, url, name, budget, share, index, port, barrier, results) -> None:
    import warnings

    import optuna

    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.CRITICAL)
    sampler = optuna.samplers.RandomSampler(seed=index)
    study = optuna.load_study(study_name=name, storage=_storage(kind, url, port), sampler=sampler)
    times, twice = [], 0
    barrier.wait()  # imports and connections done: time the trials alone, all together
    t0 = time.perf_counter()
    if kind in ("optuna", "journal"):
        last = [time.perf_counter()]

        def lap(study, trial) -> None:
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        try:
            study.optimize(stand_in, n_trials=share, callbacks=[lap])
        except optuna.exceptions.UpdateFinishedTrialError:
            twice += 1
    else:
        twice = _hpo_loop(study, budget, times)
    results.put((t0, time.perf_counter(), times, twice))


def _hpo_loop(study, budget: int, times: list[float]) -> int:
    """hpo's budget semantics (hpo.study.runner.StudyRunner._step, hpo.study.queries.Budget):
    count, then one trial, which gives way where other workers filled the budget meanwhile."""
    import optuna

    from hpo.search.optuna_private import written_together
    from hpo.study.queries import Budget, counts
    from hpo.util.outcomes import SurplusTrial

    shared, twice = Budget(study, budget), 0

    def objective(trial):
        with written_together(trial, every=5.0):
            shared.check_surplus(trial.number)
            return stand_in(trial)

    while True:
        finished, running = counts(study)
        if finished >= budget:
            return twice
        if finished + running >= budget:
            time.sleep(0.02)
            continue
        t0 = time.perf_counter()
        try:
            study.optimize(objective, n_trials=1, catch=(SurplusTrial,))
        except optuna.exceptions.UpdateFinishedTrialError:
            twice += 1
        times.append(time.perf_counter() - t0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proxy(url: str, port: int) -> None:
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.CRITICAL)
    optuna.storages.run_grpc_proxy_server(optuna.storages.RDBStorage(url), port=port)


def _start_proxy(ctx, url: str):
    port = _free_port()
    proc = ctx.Process(target=_proxy, args=(url, port), daemon=True)
    proc.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the gRPC proxy did not start")


def measure(kind: str, url: str, workers: int, budget: int, tmp: str) -> dict:
    import optuna

    name = f"workers-{uuid.uuid4().hex[:8]}"
    if kind == "journal":
        url = f"{tmp}/{name}.log"
    storage = _storage("journal" if kind == "journal" else "optuna", url, 0)
    optuna.create_study(study_name=name, storage=storage)
    ctx = mp.get_context("spawn")
    proxy, port = _start_proxy(ctx, url) if kind == "hpo+grpc" else (None, 0)
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    share = budget // workers
    procs = [
        ctx.Process(
            target=worker, args=(kind, url, name, budget, share, i, port, barrier, results)
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    if proxy is not None:
        proxy.kill()
    wall = max(end for _, end, _, _ in got) - min(start for start, _, _, _ in got)
    trials = optuna.load_study(study_name=name, storage=storage).trials
    optuna.delete_study(study_name=name, storage=storage)
    return _row(kind, workers, budget, wall, got, trials)


def measure_memory(budget: int) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.CRITICAL)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    times, last = [], [time.perf_counter()]

    def lap(study, trial) -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    t0 = time.perf_counter()
    study.optimize(stand_in, n_trials=budget, callbacks=[lap])
    wall = time.perf_counter() - t0
    return _row("memory", 1, budget, wall, [(0, wall, times, 0)], study.trials)


def _row(kind, workers, budget, wall, got, trials) -> dict:
    from optuna.trial import TrialState

    times = sorted(t for _, _, ts, _ in got for t in ts)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    return {
        "storage": kind,
        "workers": workers,
        "budget": budget,
        "finished": finished,
        "trials_per_s": round(finished / wall, 1),
        "trial_ms_median": round(1000 * statistics.median(times), 1),
        "trial_ms_p95": round(1000 * times[int(0.95 * (len(times) - 1))], 1),
        "told_twice": sum(twice for *_, twice in got),
        "left_running": sum(t.state == TrialState.RUNNING for t in trials),
        "gave_way": sum(t.state == TrialState.FAIL for t in trials),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default=os.environ.get("HPO_TEST_PG_URL"))
    ap.add_argument("--workers", default="1,4,16,32")
    ap.add_argument("--per-worker", type=int, default=20, help="budget = max(this x K, 160)")
    ap.add_argument("--kinds", default="optuna,hpo,hpo+grpc,journal")
    ap.add_argument(
        "--smoke", action="store_true", help="SQLite and journal, 1 and 2 workers, 8 trials"
    )
    args = ap.parse_args()
    import tempfile

    kinds, counts = args.kinds.split(","), [int(k) for k in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        url = args.pg
        if args.smoke:
            url, kinds, counts, args.per_worker = (
                f"sqlite:///{tmp}/w.db",
                ["optuna", "hpo", "journal"],
                [1, 2],
                4,
            )
        if not url:
            raise SystemExit("set --pg or HPO_TEST_PG_URL to a PostgreSQL URL")
        if "hpo+grpc" in kinds:
            try:
                import grpc  # noqa: F401
            except ImportError:
                print("no grpcio: the hpo+grpc rows are left out (pip install grpcio)")
                kinds.remove("hpo+grpc")
        floor = 8 if args.smoke else 160
        rows = [measure_memory(max(args.per_worker, floor))]
        for workers in counts:
            budget = max(args.per_worker * workers, floor)
            for kind in kinds:
                rows.append(measure(kind, url, workers, budget, tmp))
                print(rows[-1], flush=True)
    cols = list(rows[0])
    print("\n| " + " | ".join(cols) + " |")
    print("| " + " | ".join("---" for _ in cols) + " |")
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    OUT.mkdir(exist_ok=True)
    with open(OUT / "workers.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
