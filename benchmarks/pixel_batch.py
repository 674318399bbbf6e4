"""pixel: val accuracy per epoch of dense nets with L1, by batch size (steps per trial).

With 3,000 train images and a fixed epoch budget, the batch size sets how many optimizer steps
(and decoupled L1 shrinks) a trial gets. Trains a dense-only net (one hidden layer of 32, Adam,
l1 0.1, centred inputs) for each batch size x {relu, sigmoid + batch norm} x lr {3e-4, 3e-3},
one seed, and prints each curve and a table: configs reaching val >= 0.99, per batch size.
This is what `batch_size` in studies/pixel.toml rests on.
Usage: python benchmarks/pixel_batch.py [--batches 8,16,32,64,128] [--epochs 6]
       [--device auto] [--data image_size=224] [--smoke]
"""

from __future__ import annotations

import argparse
import itertools
import time

from hpo.cli.app import parse_data
from hpo.tasks import get_task
from hpo.train.config import Config
from hpo.train.data import resolve_device
from hpo.train.loop import train
from hpo.util.process import tune_malloc

TARGET = 0.99
NETS = {"relu": ("relu", False), "sigmoid + batch norm": ("sigmoid", True)}
LRS = (3e-4, 3e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="8,16,32,64,128", help="comma list of sizes")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--smoke", action="store_true", help="32x32 images, batch 16, 1 epoch")
    args = parser.parse_args()
    tune_malloc()
    device = resolve_device(args.device)
    settings = parse_data(args.data)
    batches = [int(b) for b in args.batches.split(",")]
    epochs = args.epochs
    if args.smoke:
        settings |= {"image_size": 32, "n_train_per_class": 64, "n_val_per_class": 32}
        batches, epochs = [16], 1
    task = get_task("pixel")
    data = task.load(task.settings(settings), device)
    rows = []
    for batch in batches:
        reached, finals = 0, []
        for (name, (activation, norm)), lr in itertools.product(NETS.items(), LRS):
            config = Config(
                activation=activation,
                batch_norm=norm,
                optimizer="adam",
                lr=lr,
                l1=0.1,
                batch_size=batch,
                dense_units=(32,),
                input_norm="centred",
                epochs=epochs,
            ).checked()
            t0 = time.monotonic()
            history = train(config, data, device=device, seed=0).history
            curve = [round(h["val_accuracy"], 3) for h in history]
            seconds = time.monotonic() - t0
            print(f"batch {batch}, {name}, lr {lr:g}: {curve} ({seconds:.0f} s)", flush=True)
            reached += max(curve) >= TARGET
            finals.append(curve[-1])
        steps = epochs * -(-len(data.train) // batch)
        runs = len(NETS) * len(LRS)
        rows.append((batch, steps, f"{reached}/{runs}", f"{min(finals):.3f}-{max(finals):.3f}"))
    print(f"\npixel {data.image_shape}, {len(data.train)} train images, {device}, {epochs} epochs")
    print(f"| batch | steps | reached val >= {TARGET} | final val accuracy |")
    print("| ---: | ---: | --- | --- |")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main()
