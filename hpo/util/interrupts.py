"""Ctrl-C and SIGTERM end a run cleanly: never in the middle of a database or MLflow call.

Python raises KeyboardInterrupt wherever the main thread happens to be. Inside a SQLAlchemy
fetch that leaves a half-read cursor, which SQLAlchemy then reports with a traceback of its
own ("Error closing cursor"), and it can leave a storage write half done. So the calls that
talk to a store run `shielded()`: a signal that arrives there is held until the call returns,
and raised then. A second signal while one is held is raised at once: a store that hangs (an
outage being ridden out) never keeps the user from stopping the run.

A trial runs inside Optuna's `optimize`, which writes its start and end in several storage calls
with Python between them: a signal raised there left Optuna's bookkeeping half done. So the
whole `optimize` call is shielded, and the trial's own work in it is `unshielded()`: training
stops at once, as before, and a signal that came while Optuna wrote is raised after it.

Only the main thread is shielded, since signal handlers run there; other threads (Optuna's
heartbeat) are unaffected.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_state = {"depth": 0, "held": False}


def handle(signum: int, frame: Any) -> None:
    """The signal handler: KeyboardInterrupt now, or once the store call running returns."""
    if _state["depth"] > 0 and not _state["held"]:
        _state["held"] = True  # raised when the store call returns
        return
    _state["held"] = False
    raise KeyboardInterrupt


def install() -> None:
    """SIGINT (unless the process was started with it ignored) and SIGTERM (docker stop, a
    scheduler) raise KeyboardInterrupt, held back while a store call runs."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


@contextmanager
def shielded() -> Iterator[None]:
    """Run a store call to its end even if Ctrl-C comes meanwhile; the interrupt follows it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0 and _state["held"]:
            _state["held"] = False
            raise KeyboardInterrupt


@contextmanager
def unshielded() -> Iterator[None]:
    """Within a shielded block, a stretch where a signal is raised at once again (a trial's
    work inside Optuna's shielded `optimize`); one held until then is raised on entry. Store
    calls in it are shielded on their own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    depth, _state["depth"] = _state["depth"], 0
    try:
        if _state["held"]:
            _state["held"] = False
            raise KeyboardInterrupt
        yield
    finally:
        _state["depth"] = depth
