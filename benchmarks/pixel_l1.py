"""pixel: decoupled L1 beside batch norm, the plain shrink vs the norm-keeping one (hpo's).

The configs are the three best trials of a 20-trial `hpo study pixel` on an H200 (dense nets
with batch norm and `l1`), each trained for 6 epochs under two seeds at full size (224x224,
3,000 / 1,000 images). A plain soft-threshold on a layer that batch norm follows only shrinks
the weights (batch norm undoes the scale), so later steps grow relative to them; hpo keeps each
unit's norm there and sparsifies its direction. Prints val accuracy per epoch and a table.
Usage: python benchmarks/pixel_l1.py [--device auto] [--seeds 2] [--data image_size=64] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from hpo.cli.app import parse_data
from hpo.tasks import get_task  # noqa: E402
from hpo.train import loop as training  # noqa: E402
from hpo.train.config import Config  # noqa: E402
from hpo.train.data import resolve_device  # noqa: E402
from hpo.util.process import tune_malloc  # noqa: E402

CONFIGS = {  # trials 19, 16 and 14 of the H200 study (benchmarks/RESULTS.md)
    "dense 29, l1 0.46": dict(
        dense_units=(29,), lr=0.004, l1=0.46, batch_size=16, dense_dropout=0.03
    ),
    "dense 87-60, l1 0.063": dict(
        dense_units=(87, 60),
        lr=0.0073,
        l1=0.063,
        batch_size=16,
        dense_dropout=0.49,
        weight_decay=6.8e-5,
    ),
    "dense 36-109, l1 0.063": dict(
        dense_units=(36, 109), lr=0.00069, l1=0.063, batch_size=16, dense_dropout=0.39
    ),
}


HPO_SHRINK = training.shrink_l1


def plain_shrink(weights, threshold):
    """The shrink before the fix: soft-threshold every weight, batch norm or not."""
    HPO_SHRINK([(w, False) for w, _ in weights], threshold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--smoke", action="store_true", help="32x32 images, 1 seed, 1 epoch")
    args = parser.parse_args()
    tune_malloc()
    device = resolve_device(args.device)
    data_settings = parse_data(args.data)
    seeds, epochs = (1, 1) if args.smoke else (args.seeds, args.epochs)
    if args.smoke:
        data_settings |= {"image_size": 32, "n_train_per_class": 100, "n_val_per_class": 50}
    task = get_task("pixel")
    data = task.load(task.settings(data_settings), device)
    rows = []
    for name, knobs in CONFIGS.items():
        config = Config(
            activation="relu", batch_norm=True, optimizer="adam", epochs=epochs, **knobs
        ).checked()
        for variant in ("plain shrink", "hpo (norm kept under batch norm)"):
            training.shrink_l1 = plain_shrink if variant == "plain shrink" else HPO_SHRINK
            finals = []
            for seed in range(seeds):
                t0 = time.monotonic()
                result = training.train(config, data, device=device, seed=seed)
                curve = [round(h["val_accuracy"], 3) for h in result.history]
                finals.append(curve[-1])
                print(f"{name} | {variant} | seed {seed}: {curve} ({time.monotonic() - t0:.1f} s)")
            rows.append((name, variant, finals))
    training.shrink_l1 = HPO_SHRINK
    print(f"\npixel {data.image_shape}, {len(data.train)} train images, {device}, {epochs} epochs")
    print("| config (batch norm, Adam) | L1 step | final val accuracy per seed | mean |")
    print("| --- | --- | --- | ---: |")
    for name, variant, finals in rows:
        per_seed = ", ".join(f"{a:.3f}" for a in finals)
        print(f"| {name} | {variant} | {per_seed} | {statistics.mean(finals):.3f} |")


if __name__ == "__main__":
    main()
