"""Overhead of hpo against a bare PyTorch loop, and start-up times.

1. images/s of hpo's training loop (hpo.train.loop.Trainer, as a trial runs it) next to a bare loop
   with the same model, optimizer, batch size, device and uint8 data already on the device;
   runs alternate and the table gives medians and the ratio (target >= 0.97).
2. seconds from `hpo study box` start to its first trial's start line, and `hpo --help`.

Prints a markdown table and writes benchmarks/out/overhead.csv.
Usage: python benchmarks/overhead.py [--device auto] [--repeats 5] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hpo.tasks import TASKS
from hpo.train.config import Config
from hpo.train.data import batch_indices, resolve_device, to_float
from hpo.train.loop import Trainer
from hpo.train.models import build_model
from hpo.train.optim import make_optimizer
from hpo.util.process import tune_malloc

OUT = Path(__file__).parent / "out"
CASES = {  # (task, data overrides, config): the users' originals and a config search found
    "box original": ("box", {}, TASKS["box"].original.replace(epochs=1)),
    "box dense": ("box", {}, Config(lr=0.05, optimizer="sgd", batch_size=128, epochs=1)),
    "pixel original 64px": (
        "pixel",
        {"image_size": 64},
        TASKS["pixel"].original.replace(epochs=1),
    ),
    "pixel max-pool 224px": (
        "pixel",
        {},
        Config(
            conv_channels=(8,),
            conv_kernel=(1,),
            downsample="none",
            global_pool="max",
            lr=3e-3,
            batch_size=32,
            epochs=1,
        ),
    ),
}


def bare_epoch(config: Config, data, device: torch.device) -> float:
    """images/s of a plain loop: gather, convert, forward, loss, backward, step."""
    torch.manual_seed(0)
    model = build_model(config, data.image_shape, data.n_outputs).to(device)
    opt = make_optimizer(config, model)
    gen = torch.Generator(device=device).manual_seed(0)
    loss_fn = F.mse_loss if data.kind == "regression" else F.cross_entropy
    n = len(data.train)
    t0 = time.perf_counter()
    for idx in batch_indices(n, config.batch_size, gen, device):
        out = model(to_float(data.train.x[idx]))
        loss = loss_fn(out, data.train.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def hpo_epoch(config: Config, data, device: torch.device) -> float:
    trainer = Trainer(config, data, device=device, seed=0)
    return trainer.run_epoch()["images_per_second"]


def _first_trial(tmp: str, name: str) -> float:
    env = {**os.environ, "HPO_CACHE_DIR": tmp}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpo",
            "study",
            "box",
            "--trials",
            "1",
            "--no-original",
            "--no-baseline",
            "--study-name",
            name,
            "--storage",
            f"sqlite:///{tmp}/hpo.db",
            "--tracking-uri",
            f"sqlite:///{tmp}/mlflow.db",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=tmp,
    )
    seconds = float("nan")
    for line in proc.stderr:
        if line.startswith("trial 0 (1/1)"):
            seconds = time.perf_counter() - t0
            break
    proc.kill()
    proc.wait()
    return seconds


def startup_seconds(repeats: int) -> tuple[float, float, float]:
    """Median seconds from `hpo study box` start to its first trial, with fresh stores and
    with existing ones (a second study), and of `hpo --help`."""
    fresh, warm, helps = [], [], []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            fresh.append(_first_trial(tmp, f"fresh{i}"))
            warm.append(_first_trial(tmp, f"warm{i}"))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hpo", "--help"], capture_output=True, check=True)
        helps.append(time.perf_counter() - t0)
    return statistics.median(fresh), statistics.median(warm), statistics.median(helps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny data, one repeat (CI)")
    parser.add_argument(
        "--case", action="append", choices=list(CASES), help="only these cases (repeatable)"
    )
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up timings")
    args = parser.parse_args()
    tune_malloc()  # as the `hpo` command does
    device = resolve_device(args.device)
    repeats = 1 if args.smoke else args.repeats
    rows = []
    for name, (task_name, overrides, config) in CASES.items():
        if args.case and name not in args.case:
            continue
        task = TASKS[task_name]
        if args.smoke:
            overrides = {**overrides, "image_size": 32}
            overrides |= (
                {"n_train": 256, "n_val": 64}
                if task_name == "box"
                else {"n_train_per_class": 64, "n_val_per_class": 16}
            )
        data = task.load(task.settings(overrides), device)
        bare_epoch(config, data, device), hpo_epoch(config, data, device)  # warm-up (oneDNN)
        bare, ours = [], []
        for _ in range(repeats):  # alternate, so machine drift hits both alike
            bare.append(bare_epoch(config, data, device))
            ours.append(hpo_epoch(config, data, device))
        b, o = statistics.median(bare), statistics.median(ours)
        rows.append(
            {
                "case": name,
                "device": device.type,
                "bare_img_s": round(b, 1),
                "hpo_img_s": round(o, 1),
                "ratio": round(o / b, 3),
            }
        )
    nan = float("nan")
    fresh, first, helps = (
        (nan, nan, nan) if args.no_startup else startup_seconds(1 if args.smoke else 3)
    )
    print(
        "| case | device | bare img/s | hpo img/s | hpo / bare |\n| --- | --- | --- | --- | --- |"
    )
    for r in rows:
        print(
            f"| {r['case']} | {r['device']} | {r['bare_img_s']:.0f} | {r['hpo_img_s']:.0f} "
            f"| {r['ratio']:.3f} |"
        )
    if not args.no_startup:
        print(
            f"\n| start-up | median seconds |\n| --- | --- |\n"
            f"| `hpo study box` to its first trial, new stores (CPU) | {fresh:.2f} |\n"
            f"| `hpo study box` to its first trial, existing stores (CPU) | {first:.2f} |\n"
            f"| `hpo --help` | {helps:.2f} |"
        )
    OUT.mkdir(exist_ok=True)
    with open(OUT / "overhead.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        fh.write(f"# first_trial_new_s={fresh:.3f} first_trial_s={first:.3f} help_s={helps:.3f}\n")


if __name__ == "__main__":
    main()
