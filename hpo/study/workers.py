"""`hpo study --workers K`: K worker processes on one machine, sharing one study storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable

from hpo.util.errors import UserError

WORKER_ENV = "HPO_WORKER_INDEX"  # 0..K-1: offsets the sampler seed so workers differ
DEADLINE_ENV = "HPO_DEADLINE"  # time.time() after which a worker starts no trial (--timeout)


def spawn(
    argv: list[str],
    k: int,
    storage: str,
    deadline: float | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> int:
    """Run `hpo <argv> --workers 1` K times in parallel; returns the worst exit code.

    CPU threads are split between the workers (OMP_NUM_THREADS); on a GPU machine they share
    the device, several small trials per GPU. `deadline` (the parent's --timeout, counted from
    the parent's start) is theirs too, so that one timeout bounds the whole command.
    `meanwhile` runs in this process while the workers work (the parent's own imports).
    """
    if storage in ("memory", ":memory:"):
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


def worker_index() -> int:
    return int(os.environ.get(WORKER_ENV, "0"))


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
