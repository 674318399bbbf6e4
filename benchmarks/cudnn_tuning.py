"""cuDNN's kernel search (torch.backends.cudnn.benchmark) in a study's process: what it costs
the first epoch of each new layer shape and what it saves on the epochs after.

A study trains many configs in one process. With the search on, cuDNN times every algorithm
for each new convolution shape, once per process, then uses the fastest; with it off (hpo's
setting since this measured it, hpo.train.loop.CUDNN_BENCHMARK), it picks by heuristics at no
cost. A study whose trials keep meeting new shapes (widths, depths, batch sizes) pays the
search again and again. This runs the same sequence of configs (the recipe and its neighbours
that studies visit) in two fresh processes, one per setting, on the 45,000-image training
split, and times every epoch (training and validation).

    python benchmarks/cudnn_tuning.py [--device cuda] [--epochs 4]
    python benchmarks/cudnn_tuning.py --smoke    # tiny synthetic data on the CPU: does it run?

Writes benchmarks/out/cudnn_tuning_<device>.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import hpo.train.loop  # noqa: E402
from hpo.tasks.cifar10.task import TASK  # noqa: E402
from hpo.train.data import resolve_device  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from cifar10_recipe import _sync, recipe, synthetic  # noqa: E402

SETTINGS = ("search", "heuristics")  # cudnn.benchmark True / False (hpo's default since 11-27)
# the recipe, then neighbours a cifar10 study visits (each a new set of layer shapes)
VARIANTS: list[tuple[str, dict]] = [
    ("recipe (64-256-256, batch 1024)", {}),
    ("width 1.5 (96-384-384)", {"conv_channels": (96, 384, 384)}),
    ("width 1.25, batch 512", {"conv_channels": (80, 320, 320), "batch_size": 512}),
]


def child(setting: str, device: torch.device, epochs: int, smoke: bool) -> None:
    """One process, one setting: every variant in turn; one JSON line per variant."""
    hpo.train.loop.CUDNN_BENCHMARK = setting == "search"
    config = recipe(ROOT / "studies" / "cifar10-known-good.toml").replace(epochs=epochs)
    if smoke:  # seconds, not minutes: 64 images, an eighth of the channels
        data, _ = synthetic(64, device)
        config = config.replace(batch_size=32)
    else:
        data = TASK.load(TASK.settings({}), device)
    for label, changes in VARIANTS:
        variant = config.replace(**changes)
        if smoke:
            variant = variant.replace(
                conv_channels=tuple(c // 8 for c in variant.conv_channels),
                batch_size=min(variant.batch_size, 32),
            )
        _sync(device)
        t0 = time.monotonic()
        trainer = hpo.train.loop.Trainer(variant, data, device=device, seed=0)
        walls, setup = [], time.monotonic() - t0
        for _ in range(epochs):
            t = time.monotonic()
            metrics = trainer.run_epoch()  # ends on .item(): synced
            walls.append(time.monotonic() - t)
        row = {"setting": setting, "variant": label, "setup_s": setup, "epoch_s": walls}
        print(json.dumps(row | {"val_accuracy": metrics["val_accuracy"]}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda [default: auto]")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per variant (>= 3)")
    parser.add_argument("--smoke", action="store_true", help="synthetic 64 images, CPU")
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device("cpu") if args.smoke else resolve_device(args.device)
    epochs = max(args.epochs, 3)
    if args.child:
        return child(args.child, device, epochs, args.smoke)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}; {epochs} epochs per variant", flush=True)
    rows = []
    for setting in SETTINGS:  # a fresh process each: cuDNN's choices live per process
        cmd = [sys.executable, __file__, "--child", setting, "--device", str(device)]
        cmd += ["--epochs", str(epochs)] + (["--smoke"] if args.smoke else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows += [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    for row in rows:  # steady: the epochs between the first and the last (which adds TTA)
        row["first_s"] = row["setup_s"] + row["epoch_s"][0]
        row["steady_s"] = statistics.median(row["epoch_s"][1:-1])
        row["total_s"] = row["setup_s"] + sum(row["epoch_s"])
    by = {(r["setting"], r["variant"]): r for r in rows}
    print()
    print(
        "| variant (in process order) | first epoch s, search / heuristics | "
        "steady epoch s, search / heuristics | val acc, search / heuristics |"
    )
    print("| --- | --- | --- | --- |")
    for label, _ in VARIANTS:
        a, b = by[("search", label)], by[("heuristics", label)]
        print(
            f"| {label} | {a['first_s']:.2f} / {b['first_s']:.2f} | "
            f"{a['steady_s']:.3f} / {b['steady_s']:.3f} | "
            f"{a['val_accuracy']:.4f} / {b['val_accuracy']:.4f} |"
        )
    totals = {s: sum(r["total_s"] for r in rows if r["setting"] == s) for s in SETTINGS}
    print(
        f"| all variants, {epochs} epochs each (s) | {totals['search']:.1f} / "
        f"{totals['heuristics']:.1f} | | |"
    )
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(exist_ok=True)
    with open(out_dir / f"cudnn_tuning_{device.type}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["setting", "variant", "setup_s", "first_s", "steady_s", "total_s"])
        for r in rows:
            writer.writerow(
                [r["setting"], r["variant"]]
                + [f"{r[k]:.3f}" for k in ("setup_s", "first_s", "steady_s", "total_s")]
            )


if __name__ == "__main__":
    main()
