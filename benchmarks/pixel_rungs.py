"""pixel: what Hyperband's rungs see of the configs that end up solving the task.

Random draws of the shipped space (studies/pixel.toml) are trained for the spec's epochs, each
epoch's val accuracy kept. Then, as if the draws were one bracket's trials, each pruning rule is
applied at the rungs (epoch 1 of 6: a rung's survivors must train 3x as long): the top third of
the draws at a rung go on. Counted: the winners (val >= 0.99 at the last epoch) a rule would
have stopped, and the epochs it trains.

Rules:
- top third: Hyperband's successive halving, as Optuna does it;
- noise-aware: the same, except that a trial whose value the validation set cannot tell from the
  cut-off (within z standard errors of the difference, binomial: sqrt(p (1 - p) / n_val)
  each) goes on
  (hpo.search.strategy.NoiseAwareHyperband).

Usage: python benchmarks/pixel_rungs.py [--draws 30] [--seed 0] [--dense-only] [--z 2]
       [--data image_size=224] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import optuna

from hpo.cli.app import parse_data
from hpo.search.space import suggest
from hpo.search.spec import default_spec_path, load_spec
from hpo.search.strategy import binomial_se, top_share_cut
from hpo.tasks import get_task
from hpo.train.config import Config
from hpo.train.data import resolve_device
from hpo.train.loop import TimeLimit, train
from hpo.util.outcomes import OutOfTime, TrainingError
from hpo.util.process import tune_malloc

OUT = Path(__file__).parent / "out"
TARGET = 0.99


def stopped_at(curve: list[float], pool: list[list[float]], rungs, n_val: int, z: float):
    """The rung where a trial with this curve is stopped against the pool's values there, or
    None if it passes them all."""
    for rung in rungs:
        if len(curve) < rung:
            return None  # it ended before the rung for another reason
        need = top_share_cut([c[rung - 1] for c in pool if len(c) >= rung], 3, True)
        se = math.hypot(binomial_se(n_val)(need), binomial_se(n_val)(curve[rung - 1]))
        if curve[rung - 1] < need - z * se:
            return rung
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (which draws)")
    parser.add_argument("--dense-only", action="store_true", help="depth 0: no conv blocks")
    parser.add_argument("--z", type=float, default=2.0, help="standard errors of the margin")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds per training run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--smoke", action="store_true", help="32x32 images, 3 draws")
    args = parser.parse_args()
    tune_malloc()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    device = resolve_device(args.device)
    settings = parse_data(args.data)
    draws = 3 if args.smoke else args.draws
    if args.smoke:
        settings |= {"image_size": 32, "n_train_per_class": 100, "n_val_per_class": 50}
    task = get_task("pixel")
    settings = task.settings(settings)
    data = task.load(settings, device)
    n_val = len(data.val)
    spec = load_spec(default_spec_path("pixel"))
    epochs = 2 if args.smoke else spec.epochs
    rungs = [r for r in (1, 3, 9) if r * 3 <= epochs]  # hpo.search.strategy.HyperbandAtRungs
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=args.seed), direction="maximize"
    )
    rows, curves = [], []
    for i in range(draws):
        trial = study.ask(
            {"depth": optuna.distributions.IntDistribution(0, 0)} if args.dense_only else None
        )
        config = suggest(trial, spec, Config()).replace(epochs=epochs)
        t0 = time.monotonic()
        try:
            result = train(
                config, data, device=device, seed=0, time_limit=TimeLimit.on(device, args.budget)
            )
            history = result.history
        except OutOfTime as e:
            history = e.history
        except TrainingError:
            history = []
        curve = [h["val_accuracy"] for h in history]
        study.tell(trial, 0.0)
        curves.append(curve)
        rows.append({"draw": i, "curve": " ".join(f"{v:.3f}" for v in curve), **trial.params})
        print(
            f"draw {i}: {' '.join(f'{v:.3f}' for v in curve)} ({time.monotonic() - t0:.0f} s) "
            f"{trial.params['optimizer']} batch {trial.params['batch_size']} "
            f"depth {trial.params['depth']} l1 {trial.params['l1']:.3g}",
            flush=True,
        )
    winners = [c for c in curves if len(c) == epochs and c[-1] >= TARGET]
    shape = "x".join(map(str, data.image_shape))
    print(
        f"\npixel {shape}, {len(data.train)} train / {n_val} val images, {epochs} epochs, "
        f"{len(curves)} {'dense-only ' if args.dense_only else ''}random draws (seed {args.seed})"
        f", rungs {rungs}; {len(winners)} draws end at val >= {TARGET}"
    )
    print("pools: all draws at once; or in draw order, each draw against those before it")
    print("| rule | pool | winners stopped | draws trained to the end | epochs trained |")
    print("| --- | --- | ---: | ---: | ---: |")
    for label, z in (("top third", 0.0), (f"noise-aware, z = {args.z:g}", args.z)):
        for pool in ("all", "in order"):
            stops = [
                stopped_at(c, curves if pool == "all" else curves[: i + 1], rungs, n_val, z)
                for i, c in enumerate(curves)
            ]
            pairs = list(zip(curves, stops, strict=True))
            lost = sum(1 for c, s in pairs if s is not None and c in winners)
            spent = sum(len(c) if s is None else s for c, s in pairs)
            kept = sum(s is None for s in stops)
            print(f"| {label} | {pool} | {lost} of {len(winners)} | {kept} | {spent} |")
    for rung in rungs:
        at = sorted(c[rung - 1] for c in curves if len(c) >= rung)
        win = sorted(c[rung - 1] for c in winners)
        need = top_share_cut(at, 3, True)
        margin = args.z * math.hypot(binomial_se(n_val)(need), binomial_se(n_val)(0.5))
        print(
            f"epoch {rung}: cut-off {need:.3f} (margin for a trial at chance {margin:.3f});"
            f" winners there: {' '.join(f'{v:.3f}' for v in win)}"
        )
    OUT.mkdir(exist_ok=True)
    names = sorted({k for r in rows for k in r}, key=lambda k: (k not in rows[0], k))
    with open(OUT / f"pixel_rungs_{args.seed}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
