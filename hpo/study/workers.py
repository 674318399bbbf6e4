"""`hpo study --workers K`: K worker processes on one machine, sharing one study storage (they
train; the parent sums up once they stopped)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from hpo.util.errors import UserError

WORKER_ENV = "HPO_WORKER_INDEX"  # 0..K-1: offsets the sampler seed so workers differ
DEADLINE_ENV = "HPO_DEADLINE"  # time.time() after which a worker starts no trial (--timeout)


def spawn(
    argv: list[str],
    k: int,
    storage: str | None,
    deadline: float | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> int:
    """Run `hpo <argv> --workers 1` K times in parallel; returns the worst exit code.

    CPU threads are split between the workers (OMP_NUM_THREADS); on a GPU machine they share
    the device, several small trials per GPU. `deadline` (the parent's --timeout, counted from
    the parent's start) is theirs too, so that one timeout bounds the whole command.
    `meanwhile` runs in this process while the workers work (the parent's own imports).
    """
    if storage in ("memory", ":memory:"):  # None: the default SQLite file, shared
        raise UserError("--workers needs a storage the workers can share (not 'memory')")
    threads = max(1, (os.cpu_count() or 1) // k)
    args = _without_workers(argv)
    procs = []
    for index in range(k):
        env = {**os.environ, WORKER_ENV: str(index), "OMP_NUM_THREADS": str(threads)}
        if deadline is not None:
            env[DEADLINE_ENV] = repr(deadline)
        procs.append(
            subprocess.Popen([sys.executable, "-m", "hpo", *args, "--workers", "1"], env=env)
        )

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
    workers: int,
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
    if workers > 1:  # before torch and optuna are imported here: the workers start at once
        code = spawn(argv, workers, options.storage, options.deadline, meanwhile)
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
