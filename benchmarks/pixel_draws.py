"""pixel: how many random draws of the shipped search space reach the target, per input norm.

A 20-trial study finds val accuracy >= 0.99 only if some draw lands where the task is solved,
so the share of such draws decides how reliable a short study is (1 - (1 - p)^20 for random
search). Each config drawn at random from studies/pixel.toml is trained once per input norm
([0, 1] "unit" and [-1, 1] "centred"), same seed and data. Prints one line per draw and a
table of draws at >= 0.99 by optimizer; writes benchmarks/out/pixel_draws.csv.
Usage: python benchmarks/pixel_draws.py [--draws 40] [--epochs 3] [--dense-only]
       [--data image_size=224] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import optuna

from hpo.cli.app import parse_data
from hpo.search.space import suggest
from hpo.search.spec import default_spec_path, load_spec
from hpo.tasks import get_task
from hpo.train.config import Config
from hpo.train.data import resolve_device
from hpo.train.loop import TimeLimit, train
from hpo.util.outcomes import TrainingError
from hpo.util.process import tune_malloc

OUT = Path(__file__).parent / "out"
NORMS = ("unit", "centred")
TARGET = 0.99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (which draws)")
    parser.add_argument("--dense-only", action="store_true", help="depth 0: no conv blocks")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds per training run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--smoke", action="store_true", help="32x32 images, 2 draws, 1 epoch")
    args = parser.parse_args()
    tune_malloc()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    device = resolve_device(args.device)
    settings = parse_data(args.data)
    draws, epochs = (2, 1) if args.smoke else (args.draws, args.epochs)
    if args.smoke:
        settings |= {"image_size": 32, "n_train_per_class": 100, "n_val_per_class": 50}
    task = get_task("pixel")
    data = task.load(task.settings(settings), device)
    spec = load_spec(default_spec_path("pixel"))
    sampler = optuna.samplers.RandomSampler(seed=args.seed)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    rows = []
    for i in range(draws):
        trial = study.ask(
            {"depth": optuna.distributions.IntDistribution(0, 0)} if args.dense_only else None
        )
        config = suggest(trial, spec, Config()).replace(epochs=epochs)
        row = {"draw": i, **trial.params}
        for norm in NORMS:
            t0 = time.monotonic()
            try:
                result = train(
                    config.replace(input_norm=norm),
                    data,
                    device=device,
                    seed=0,
                    time_limit=TimeLimit.on(device, args.budget),
                )
                row[norm] = round(result.metrics["val_accuracy"], 3)
            except TrainingError as e:  # diverged or out of time: not a success
                row[norm] = f"{type(e).__name__}"
            row[f"{norm}_s"] = round(time.monotonic() - t0, 1)
        study.tell(trial, 0.0)
        rows.append(row)
        knobs = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in trial.params.items()
        )
        print(f"draw {i}: unit {row['unit']}, centred {row['centred']} | {knobs}", flush=True)

    def hits(subset: list[dict], norm: str) -> int:
        return sum(isinstance(r[norm], float) and r[norm] >= TARGET for r in subset)

    shape = "x".join(map(str, data.image_shape))
    print(f"\npixel {shape}, {len(data.train)} train images, {device}, {epochs} epochs, ", end="")
    print(
        f"{'dense-only ' if args.dense_only else ''}draws of the shipped space, seed {args.seed}"
    )
    print(f"| optimizer | draws | unit >= {TARGET} | centred >= {TARGET} |")
    print("| --- | --- | --- | --- |")
    for optimizer in ("sgd", "adam", "adadelta"):
        subset = [r for r in rows if r.get("optimizer") == optimizer]
        print(
            f"| {optimizer} | {len(subset)} | {hits(subset, 'unit')} | {hits(subset, 'centred')} |"
        )
    print(f"| all | {len(rows)} | {hits(rows, 'unit')} | {hits(rows, 'centred')} |")
    OUT.mkdir(exist_ok=True)
    names = sorted({k for r in rows for k in r}, key=lambda k: (k not in rows[0], k))
    with open(OUT / "pixel_draws.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
