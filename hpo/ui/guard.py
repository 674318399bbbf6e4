"""The leader of `hpo ui`'s server group: runs the MLflow server as its child and ends the whole
group when `hpo ui` is gone, however it went. Ctrl-C, SIGTERM and SIGHUP reach `hpo ui`,
which stops the group itself (hpo.ui.server.stop_group); a SIGKILL (`kill -9`, the OOM killer)
gives it no chance, and the server, in a session of its own, would live on holding its port.

Usage (by hpo.ui.server): python -m hpo.ui.guard PARENT_PID COMMAND...
Exits with the server's exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil

from hpo.ui.server import group_members

POLL_SECONDS = 0.5  # how often the guard looks for its parent
GRACE_SECONDS = 5.0  # after SIGTERM to the group, before SIGKILL


def parent_alive(parent: int) -> bool:
    """Whether `parent` is still our parent (once it dies we are re-parented)."""
    return os.getppid() == parent


def end_group(child: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to our group (we ignore it), then, if any of it is left after `grace` seconds,
    SIGKILL to it (us included)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    me = os.getpid()
    others = [
        psutil.Process(pid) for pid in group_members(os.getpgid(0)) if pid not in (me, child.pid)
    ]
    os.killpg(0, signal.SIGTERM)
    try:
        child.wait(timeout=grace)  # the server: our child, reaped here
    except subprocess.TimeoutExpired:
        pass
    psutil.wait_procs(others, timeout=grace)
    if group_members(os.getpgid(0)) != [me]:
        os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    parent, command = int(argv[0]), argv[1:]
    stop = {"asked": False}

    def asked(signum, frame):  # SIGTERM from stop_group, or SIGHUP
        stop["asked"] = True

    signal.signal(signal.SIGTERM, asked)
    signal.signal(signal.SIGHUP, asked)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for `hpo ui` to handle
    if not parent_alive(parent):
        return 1
    child = subprocess.Popen(command)
    while True:
        try:
            return child.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        if stop["asked"] or not parent_alive(parent):
            end_group(child)
            return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
