"""The local `mlflow ui` server of `hpo ui`: started in a session of its own, waited for, and
stopped with its whole process group (SIGTERM, then SIGKILL after a grace period), also when
`hpo ui` itself gets Ctrl-C, SIGTERM or SIGHUP; and, through the group's leader hpo.ui.guard,
when `hpo ui` is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import psutil

from hpo.util.errors import UserError
from hpo.util.interrupts import handle

HOST = "127.0.0.1"
SERVER_START_SECONDS = 120.0  # a first start imports MLflow and may upgrade the store's schema
STOP_GRACE_SECONDS = 5.0  # after SIGTERM, before SIGKILL


class Server:
    """`mlflow ui` on HOST:port in a session of its own; its output goes to a temporary file
    (shown if it fails) unless HPO_LOG_LEVEL asks for the libraries' logs."""

    def __init__(self, uri: str, port: int) -> None:
        self.base = f"http://{HOST}:{port}"
        env = dict(os.environ)
        # the job runner and its huey consumers serve GenAI features (judges, trace rollups):
        # 8 more processes, a slower start, nothing a study uses
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
        command += ["--host", HOST, "--port", str(port), "--workers", "1"]
        # led by hpo.ui.guard, which ends the group if this process dies without stopping it
        command = [sys.executable, "-m", "hpo.ui.guard", str(os.getpid()), *command]
        self.log: BinaryIO | None = None
        if not os.environ.get("HPO_LOG_LEVEL"):
            self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT if self.log else None,
            env=env,
            start_new_session=True,  # its own process group: stopped as one, and Ctrl-C in
        )  # the terminal reaches only hpo, which then stops the group

    def wait_ready(self, wait: float = SERVER_START_SECONDS) -> None:
        """Until /health answers; a UserError if the server exits or `wait` seconds pass."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise UserError(f"the MLflow server exited with code {code}{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        raise UserError(f"the MLflow server did not answer within {wait:g} s{self.tail()}")

    def wait(self) -> int:
        return self.proc.wait()

    def tail(self, lines: int = 15) -> str:
        """The last lines of the server's output, to follow an error line."""
        if self.log is None:
            return ""
        self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, self.log.tell() - 8192))
        text = self.log.read().decode(errors="replace").strip().splitlines()[-lines:]
        return ":\n" + "\n".join(text) if text else ""

    def stop(self) -> list[int]:
        """Stop the server and everything it started; the pids left (none, normally)."""
        try:
            return stop_group(self.proc)
        finally:
            if self.log is not None:
                self.log.close()


def stop_group(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> list[int]:
    """SIGTERM to the process group that `proc` leads, SIGKILL to what is left after `grace`
    seconds; returns the pids still running (none, normally). Signals that would end hpo are
    ignored meanwhile, so that a second Ctrl-C cannot cut the clean-up short."""
    with _signals_ignored():
        pgid = proc.pid  # a session leader: its pid is its group's id
        for sig in (signal.SIGTERM, signal.SIGKILL):
            # the leader is our child: Popen reaps it (and keeps its exit code); psutil waits
            # for the rest of the group
            others = processes([pid for pid in group_members(pgid) if pid != pgid])
            _killpg(pgid, sig)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            psutil.wait_procs(others, timeout=grace)
            if not group_members(pgid):
                break
        return group_members(pgid)


def group_members(pgid: int) -> list[int]:
    """The running (not zombie) processes of process group `pgid`."""
    found = []
    for p in psutil.process_iter(["status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                found.append(p.pid)
        except (ProcessLookupError, psutil.Error):  # gone meanwhile
            continue
    return found


def processes(pids: list[int]) -> list[psutil.Process]:
    """psutil's handles on the processes `pids` that are still there."""
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return out


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM (docker stop, a service manager) and SIGHUP (the terminal closed) end `hpo ui`
    like Ctrl-C: a KeyboardInterrupt, so the server is stopped on the way out."""
    yield from _handlers({signal.SIGTERM: handle, signal.SIGHUP: handle})


@contextmanager
def _signals_ignored() -> Iterator[None]:
    ignored = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    yield from _handlers(dict.fromkeys(ignored, signal.SIG_IGN))


def _handlers(handlers: dict) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
