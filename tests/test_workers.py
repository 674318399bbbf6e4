"""`--workers K` on one machine: how many, and which GPU each worker gets (tested here on a
CPU, with the spawner given the devices)."""

from __future__ import annotations

import sys

from .conftest import cli


def test_each_worker_gets_its_own_gpu_round_robin(capfd):
    """No GPU here: the spawner is given the device list, and each worker reports what it
    sees. 4 workers on 2 GPUs share them 2 each; 3 on 2: 2 and 1; auto: one per GPU."""
    from hpo.study.workers import placement, placement_line, spawn, worker_count

    show = "import os; print(os.environ['HPO_WORKER_INDEX'], os.environ['CUDA_VISIBLE_DEVICES'])"
    code = spawn(["study", "box"], 4, "sqlite:///x.db", gpus=["0", "1"],
                 command=[sys.executable, "-c", show])  # fmt: skip
    assert code == 0
    seen = sorted(tuple(line.split()) for line in capfd.readouterr().out.splitlines())
    assert seen == [("0", "0"), ("1", "1"), ("2", "0"), ("3", "1")]
    assert placement_line(4, ["0", "1"]) == "4 workers on 2 GPUs: 2 each"
    assert placement_line(3, ["2", "5"]) == "3 workers on 2 GPUs: 2 on GPU 2, 1 on GPU 5"
    assert placement(3, ["2", "5"]) == ["2", "5", "2"] and placement(2, []) == [None, None]
    assert worker_count("auto", ["0", "1", "2"]) == 3 and worker_count("auto", []) == 1
    assert worker_count("4", []) == 4


def test_visible_gpus_follow_cuda_visible_devices_and_the_device_flag(monkeypatch):
    from hpo.study.workers import visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == ["2", "3"] and visible_gpus("cpu") == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


def test_workers_auto_on_a_cpu_is_one_process(tiny_spec, scratch):
    out = cli(
        "study", "box", "--trials", "1", "--workers", "auto", "--spec", str(tiny_spec),
        "--no-original", "--no-baseline", "--storage", "memory",
        "--tracking-uri", f"sqlite:///{scratch / 'm.db'}", env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "workers on" not in out.stderr and "1/1 trials finished" in out.stdout
    bad = cli("study", "box", "--workers", "many")
    assert bad.returncode == 2 and "--workers takes a positive number or 'auto'" in bad.stderr


def test_worker_sampler_seeds_are_their_own_streams():
    """Worker 0 keeps the study's seed; worker 1 of seed s is not worker 0 of seed s + 1 (with
    seed + index, 2-worker studies seeded 100 and 101 drew the same configs)."""
    from hpo.study.runner import worker_seed

    assert worker_seed(100, 0) == 100 and worker_seed(None, 3) is None
    assert worker_seed(100, 1) == worker_seed(100, 1)  # reproducible
    seeds = {worker_seed(s, i) for s in range(100, 110) for i in range(4)}
    assert len(seeds) == 40  # no two (seed, worker) pairs share a stream
