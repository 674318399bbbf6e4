"""`hpo ui`: the study's runs in MLflow's model-training view, checked in a real headless
Chromium, and every process of the server gone after SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hpo.ui import server as ui_server
from hpo.ui import view as ui

from .conftest import ROOT, hpo

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


def run_(kind: str, name: str, params=None, metrics=None, **tags: str) -> dict:
    return {
        "name": name,
        "tags": {"kind": kind, **tags},
        "params": params or {},
        "metrics": metrics or {},
    }


def test_view_sorts_by_the_metric_and_shows_the_columns_that_compare_trials():
    same = {"bs": "32"}
    runs = [
        run_("study", "box", metrics={"best_val_mse": 0.1}, metric="val_mse", task="box"),
        run_("trial", "trial-0", {"lr": "0.1", **same}, {"val_mse": 0.2}, optuna_state="COMPLETE"),
        run_("trial", "trial-1", {"lr": "0.01", **same}, {"val_mse": 0.1}, optuna_state="PRUNED"),
        run_("original", "original:box", {"lr": "0.01", "depth": "3", **same}),
        run_("baseline", "baseline:linear", metrics={"val_mse": 0.05}),
    ]
    state = ui.view_state("val_mse", True, runs)
    # sorted by the metric, lower first: MLflow then lists child runs flat, not nested
    assert state["orderByKey"] == "metrics.`val_mse`" and state["orderByAsc"] is True
    assert state["selectedColumns"] == [
        "metrics.`val_mse`",
        "tags.`kind`",
        "tags.`optuna_state`",
        "params.`depth`",  # the original's extra param differs too
        "params.`lr`",  # bs is the same everywhere: not a column
    ]
    assert state["columnOrder"] == state["selectedColumns"]
    assert state["searchFilter"] == "" and state["lifecycleFilter"] == "Active"


def test_the_sort_order_is_the_metric_direction_the_study_logged():
    runs = [{"metrics": {"val_accuracy": 0.9}}, {"metrics": {"val_accuracy": 0.5}}]
    tagged = {"tags": {"metric": "val_accuracy", "direction": "maximize"}, "metrics": {}}
    assert ui._ascending(tagged, "val_accuracy", runs) is False
    tagged["tags"]["direction"] = "minimize"
    assert ui._ascending(tagged, "val_accuracy", runs) is True
    # a parent logged without the tag: lower first unless its best is the highest value
    older = {"tags": {}, "metrics": {"best_val_accuracy": 0.9}}
    assert ui._ascending(older, "val_accuracy", runs) is False


def test_stop_group_ends_every_process_even_those_ignoring_sigterm():
    proc = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; sleep 60 & sleep 60 & wait"], start_new_session=True
    )
    deadline = time.monotonic() + 10
    while len(ui_server.group_members(proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(ui_server.group_members(proc.pid)) == 3
    start = time.monotonic()
    assert ui_server.stop_group(proc, grace=0.5) == []
    assert ui_server.group_members(proc.pid) == [] and proc.returncode == -signal.SIGKILL
    assert time.monotonic() - start < 5


def _wait_members(pgid: int, n: int, seconds: float = 20) -> list[int]:
    deadline = time.monotonic() + seconds
    while len(ui_server.group_members(pgid)) != n and time.monotonic() < deadline:
        time.sleep(0.05)
    return ui_server.group_members(pgid)


def test_the_servers_group_ends_when_hpo_ui_is_killed_outright():
    """SIGKILL gives `hpo ui` no chance to stop the server: its group's leader (hpo.ui.guard)
    sees its parent gone and ends the group, the server's own children included."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time\n"
            "server = ['sh', '-c', 'sleep 120 & sleep 120']\n"
            "guard = [sys.executable, '-m', 'hpo.ui.guard', str(os.getpid()), *server]\n"
            "p = subprocess.Popen(guard, start_new_session=True)\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        pgid = int(parent.stdout.readline())
        assert len(_wait_members(pgid, 4)) >= 3  # the guard, sh and its sleeps
        parent.kill()
        parent.wait(timeout=10)
        assert _wait_members(pgid, 0, seconds=10) == []
    finally:
        parent.kill()
        if "pgid" in locals() and ui_server.group_members(pgid):
            os.killpg(pgid, signal.SIGKILL)


@contextmanager
def ui_running(store: str) -> Iterator[tuple[subprocess.Popen, str, set[int]]]:
    """`hpo ui --port 0` on `store`: (the process, its URL line, its server's process groups),
    once the line is printed; on the way out whatever is left of either is killed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "hpo", "ui", "--tracking-uri", store, "--port", "0"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    proc = subprocess.Popen(command, env=env, **pipes)
    groups: set[int] = set()
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
        try:
            line = lines.get(timeout=90)  # the server's first start: MLflow's imports
        except queue.Empty:
            pytest.fail(f"hpo ui printed no URL in 90 s: {proc.poll()=}")
        groups = {pgid for pid in descendants(proc.pid) if (pgid := os.getpgid(pid)) != proc.pid}
        yield proc, line, groups
    finally:
        if proc.poll() is None:
            proc.kill()
        for pgid in groups:
            if ui_server.group_members(pgid):
                os.killpg(pgid, signal.SIGKILL)


def test_killing_hpo_ui_outright_stops_its_mlflow_server(scratch: Path):
    from hpo.track.client import Tracker

    store = f"sqlite:///{scratch / 'mlflow.db'}"
    Tracker(store, "some-study")  # a store to serve
    with ui_running(store) as (proc, line, groups):
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        assert len(groups) == 1
        proc.kill()
        proc.wait(timeout=10)
        for pgid in groups:
            assert _wait_members(pgid, 0, seconds=15) == []
        assert port_closed(port)


def test_the_guard_passes_the_servers_exit_code_on_and_stops_with_its_group():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    guard = [sys.executable, "-m", "hpo.ui.guard", str(os.getpid())]
    exited = subprocess.run([*guard, "sh", "-c", "exit 3"], env=env, timeout=60)
    assert exited.returncode == 3
    proc = subprocess.Popen([*guard, "sleep", "120"], env=env, start_new_session=True)
    assert len(_wait_members(proc.pid, 2)) == 2
    start = time.monotonic()
    assert ui_server.stop_group(proc, grace=5) == []
    assert time.monotonic() - start < 5  # the guard went with its group at SIGTERM


def test_a_missing_store_or_a_busy_port_is_one_line_and_exit_2(scratch: Path):
    missing = hpo("ui", "--tracking-uri", f"sqlite:///{scratch / 'none.db'}", timeout=60)
    assert missing.returncode == 2, missing.stderr
    assert "no MLflow store at" in missing.stderr and "Traceback" not in missing.stderr
    (scratch / "mlflow.db").touch()
    with socket.socket() as busy:
        busy.bind((ui.HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = hpo("ui", "--port", str(port), timeout=60)
    assert taken.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in taken.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_ui_opens_the_trials_in_a_browser_and_sigterm_stops_every_process(
    finished_study, scratch: Path
):
    store = finished_study.tracking_uri

    with ui_running(store) as (proc, line, groups):
        url = re.search(r"http://\S+", line).group(0)
        assert line.startswith("hpo ui: study 'box' at http://127.0.0.1:")
        assert "workflowType=machine_learning" in url and "#/experiments/" in url
        port = int(re.search(r":(\d+)/", url).group(1))
        assert len(groups) == 1  # the server, in a session of its own

        text, dom = render(url, scratch)
        assert "Token usage" not in text and "Sort: val_mse" in text
        for name in ("trial-0", "trial-1", "baseline:linear_regression", "original:box"):
            assert name in text  # child runs listed flat, not under a collapsed parent
        for column in ("metrics.`val_mse`", "tags.`kind`", "tags.`optuna_state`"):
            assert f'col-id="{column}"' in dom
        assert "COMPLETE" in text

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        for pgid in groups:
            assert ui_server.group_members(pgid) == []
        assert port_closed(port)


def render(url: str, scratch: Path) -> tuple[str, str]:
    """The page as headless Chromium renders it: (visible text, DOM)."""
    command = [
        *(CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"),
        *("--no-first-run", "--disable-background-networking", "--disable-component-update"),
        *("--disable-sync", f"--user-data-dir={scratch / 'chromium'}", "--window-size=1600,1000"),
        *("--virtual-time-budget=15000", "--dump-dom", url),
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=90)
    dom = out.stdout
    assert "<body" in dom, out.stderr[-2000:]
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))
    return text, dom


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [c for c, p in parents.items() if p in frontier]
        found += children
        frontier = children
    return found


def port_closed(port: int, wait: float = 10.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((ui.HOST, port)) != 0:
                return True
        time.sleep(0.2)
    return False
