"""`hpo study --workers K`: K worker processes on one machine, sharing one study storage (they
train; the parent sums up once they stopped)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from hpo.train.limits import WORKERS_ENV
from hpo.util.errors import UserError

WORKER_ENV = "HPO_WORKER_INDEX"  # 0..K-1: offsets the sampler seed so workers differ
DEADLINE_ENV = "HPO_DEADLINE"  # time.time() after which a worker starts no trial (--timeout)


def visible_gpus(device: str = "auto") -> list[str]:
    """The GPUs workers can be given, as CUDA_VISIBLE_DEVICES names them: none for `--device
    cpu` (or one named device: every worker uses it); else the entries of CUDA_VISIBLE_DEVICES
    where it is set, else the GPUs nvidia-smi lists; none without NVIDIA's driver. Asked
    without importing torch, so that the workers start at once."""
    if device != "auto" and device != "cuda":
        return []
    if (given := os.environ.get("CUDA_VISIBLE_DEVICES")) is not None:
        return [d.strip() for d in given.split(",") if d.strip() and d.strip() != "-1"]
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(listed.stdout.splitlines()) if line.startswith("GPU")]


def worker_count(asked: str, gpus: list[str]) -> int:
    """--workers: a positive number, or `auto`: one per GPU, 1 without one."""
    if asked == "auto":
        return max(1, len(gpus))
    try:
        count = int(asked)
    except ValueError:
        raise UserError(f"--workers takes a positive number or 'auto', got {asked!r}") from None
    if count < 1:
        raise UserError(f"--workers must be at least 1 (got {count})")
    return count


def placement(k: int, gpus: list[str]) -> list[str | None]:
    """The GPU each of K workers gets (its CUDA_VISIBLE_DEVICES), round robin, so that K > G
    workers share the G GPUs evenly; None for every worker without GPUs."""
    return [gpus[i % len(gpus)] if gpus else None for i in range(k)]


def placement_line(k: int, gpus: list[str]) -> str:
    """'4 workers on 2 GPUs: 2 each', '3 workers on 2 GPUs: 2 on GPU 0, 1 on GPU 1', or
    '2 workers on the CPU, 1 thread each'."""
    if not gpus:
        threads = max(1, (os.cpu_count() or 1) // k)
        return f"{k} workers on the CPU, {threads} thread{'s' * (threads > 1)} each"
    where = placement(k, gpus)
    counts = {g: where.count(g) for g in gpus if where.count(g)}
    noun = f"{len(gpus)} GPU{'s' * (len(gpus) > 1)}"
    if len(set(counts.values())) == 1 and len(counts) == len(gpus):
        return f"{k} workers on {noun}: {next(iter(counts.values()))} each"
    return f"{k} workers on {noun}: " + ", ".join(f"{n} on GPU {g}" for g, n in counts.items())


def spawn(
    argv: list[str],
    k: int,
    storage: str | None,
    deadline: float | None = None,
    meanwhile: Callable[[], object] | None = None,
    gpus: list[str] | None = None,
    command: list[str] | None = None,
) -> int:
    """Run `hpo <argv> --workers 1` K times in parallel; returns the worst exit code.

    CPU threads are split between the workers (OMP_NUM_THREADS); with `gpus`, each worker sees
    one of them (CUDA_VISIBLE_DEVICES, round robin: `placement`). `deadline` (the parent's
    --timeout, counted from the parent's start) is theirs too, so that one timeout bounds the
    whole command. `meanwhile` runs in this process while the workers work (the parent's own
    imports). `command` replaces `python -m hpo` (tests).
    """
    if storage in ("memory", ":memory:"):  # None: the default SQLite file, shared
        raise UserError("--workers needs a storage the workers can share (not 'memory')")
    threads = max(1, (os.cpu_count() or 1) // k)
    args = _without_workers(argv)
    procs = []
    for index, gpu in enumerate(placement(k, gpus or [])):
        env = {**os.environ, WORKER_ENV: str(index), "OMP_NUM_THREADS": str(threads)}
        env[WORKERS_ENV] = str(k)  # a trial's wall-clock guard widens with them (TimeLimit)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        if deadline is not None:
            env[DEADLINE_ENV] = repr(deadline)
        launch = command or [sys.executable, "-m", "hpo"]
        procs.append(subprocess.Popen([*launch, *args, "--workers", "1"], env=env))

    def forward(signum, frame):  # a SIGTERM to the parent reaches every worker
        for p in procs:
            p.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        if meanwhile is not None:
            meanwhile()
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:  # Ctrl-C reaches the workers through the terminal too
        codes = [p.wait() for p in procs]
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return max(codes, key=lambda c: (c != 0, abs(c)))


def run_study(
    task: str,
    options: Any,
    workers: str,
    argv: list[str],
    echo: Callable[[str], None],
    plots: Any = None,
    meanwhile: Callable[[], object] | None = None,
) -> tuple[Any, int]:
    """(the summary to print, or None in a worker; the exit code). With `workers` > 1, the
    workers run first, and this process then sums up what they filled: the original's replay
    and the plots once; `meanwhile` runs here while the workers train (its imports). Exit code
    1: trials kept failing (the summary still helps)."""
    code = 0
    gpus = visible_gpus(options.device) if workers != "1" else []  # one worker: no placement
    workers = worker_count(workers, gpus)
    if workers > 1:  # before torch and optuna are imported here: the workers start at once
        echo(placement_line(workers, gpus))
        code = spawn(argv, workers, options.storage, options.deadline, meanwhile, gpus)
        if code not in (0, 1):
            return None, code
    from hpo.study import session
    from hpo.util.outcomes import Stop

    if workers > 1:  # every worker has stopped: the parent only sums up what they filled
        summary = session.summarize(task, options, echo, plots)
    else:
        summary = session.run(task, options, echo, plots)
    failed = 1 if summary.stop is Stop.FAILURES else 0
    if options.worker:  # a worker of --workers K: the parent sums up, once
        if failed:
            echo(f"worker {os.environ[WORKER_ENV]} stopped early: {summary.stopped}")
        return None, failed
    return summary, failed or code


def worker_index() -> int:
    """0..K-1 in a worker of --workers K, else 0."""
    return int(os.environ.get(WORKER_ENV, "0"))


def inherited_deadline() -> float | None:
    """A worker's deadline: its parent's --timeout, counted from the parent's start."""
    value = os.environ.get(DEADLINE_ENV)
    return float(value) if value else None


def _without_workers(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return out
