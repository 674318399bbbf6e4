"""The cifar10 recipe (studies/cifar10-known-good.toml) on the real images: accuracy and speed.

Accuracy: each run trains the recipe on the 50,000 training-file images (train + validation,
as `hpo train --best` does) and scores the 10,000 test images once. `--ablate` adds one run per
ingredient with that ingredient put back to the plain setting, so the table says what each one
buys. Speed: the recipe's epochs on the 45,000-image training split through hpo's loop
(hpo.train.loop.train) and through a bare loop that does only what the recipe needs, alternating
rounds; `--reference SCRIPT` also times a reference trainer (e.g. airbench94, from a folder
that is not committed) in the same process tree and reads its accuracy and seconds.

    python benchmarks/cifar10_recipe.py --data-dir DIR [--seeds 3] [--ablate] [--speed 2]
    python benchmarks/cifar10_recipe.py --data-dir DIR --subset 0.1 --epochs 8   # CPU check
    python benchmarks/cifar10_recipe.py --smoke    # tiny synthetic data, seconds: does it run?

The test split is read here because this is a benchmark of a fixed recipe, not a search: no
choice made by a study depends on it. Writes benchmarks/out/cifar10_recipe_<device>.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from hpo.search.space import suggest  # noqa: E402
from hpo.search.spec import load_spec  # noqa: E402
from hpo.tasks.cifar10.task import TASK  # noqa: E402
from hpo.train.augment import flip_crop  # noqa: E402
from hpo.train.config import Config  # noqa: E402
from hpo.train.data import Split, TaskData, batch_indices, resolve_device, to_float  # noqa: E402
from hpo.train.loop import STEM_FIT_IMAGES, evaluate, train  # noqa: E402
from hpo.train.models import build_model  # noqa: E402
from hpo.train.optim import LOOKAHEAD_EVERY, Lookahead, lookahead_decay, make_optimizer, set_lr  # noqa: E402

# One ingredient at a time back to the plain setting: (label, changes to the recipe).
ABLATIONS: list[tuple[str, dict]] = [
    ("no test-time augmentation (tta 0)", {"tta": 0}),
    ("mirror-only test-time augmentation (tta 1)", {"tta": 1}),
    ("no weight averaging (lookahead off)", {"lookahead": False}),
    ("no whitening stem", {"stem": "none"}),
    ("random flips instead of alternating", {"aug_flip": "random"}),
    ("4-pixel translations instead of 2", {"aug_pad": 4}),
    ("no augmentation", {"augment": False}),
    ("no label smoothing", {"label_smoothing": 0.0}),
    ("learned BN scale, BN lr x1", {"bn_scale": True, "bn_lr_scale": 1.0}),
    ("logit scale 1 instead of 1/9", {"logit_scale": 1.0}),
    ("torch init instead of dirac", {"init": "torch"}),
    ("ReLU instead of GELU", {"activation": "relu"}),
    ("one-cycle 0 -> 1 at 25 % -> 0", {"lr_start": 0.0, "lr_peak_at": 0.25, "lr_end": 0.0}),
    ("pool after both convs (pool, not pool_first)", {"downsample": "pool"}),
]


def recipe(path: Path) -> Config:
    """The config of a spec whose knobs are all fixed (no trial needed)."""
    spec = load_spec(path)
    return suggest(optuna.trial.FixedTrial({}), spec, Config.from_dict(spec.base)).replace(
        epochs=spec.epochs
    )


def synthetic(n: int, device: torch.device) -> tuple[TaskData, Split]:
    g = torch.Generator().manual_seed(0)

    def split(k: int) -> Split:
        x = torch.randint(0, 256, (k, 3, 32, 32), generator=g, dtype=torch.uint8)
        return Split(x, torch.randint(0, 10, (k,), generator=g))

    data = TaskData(split(n), split(64), "classification", 10).to(device)
    return data, split(64).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def accuracy_run(config: Config, full: TaskData, test: Split, device, seed: int) -> dict:
    """Train on `full.train`, score `test` once; seconds of training (no evaluation) and wall."""
    _sync(device)
    t0 = time.perf_counter()
    result = train(
        config, full, device=device, seed=seed, augment=True, keep_model=True, validate=False
    )
    _sync(device)
    wall = time.perf_counter() - t0
    metrics = evaluate(result.model, test, "classification", 1024, prefix="test")
    return {
        "test_accuracy": metrics["test_accuracy"],
        "train_s": sum(h["epoch_seconds"] for h in result.history),
        "wall_s": wall,
    }


def bare_loop(config: Config, data: TaskData, device: torch.device) -> float:
    """Seconds for the recipe's epochs in the plainest loop that still does what it needs
    (whitening fit, alternating flip + crop, bf16, schedule, weight averaging); no validation,
    no loss bookkeeping, no finiteness or deadline checks."""
    _sync(device)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = build_model(config, data.image_shape, data.n_outputs).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if (stem := model.stem()) is not None:
        stem.fit(to_float(data.train.x[:STEM_FIT_IMAGES]))
    optimizer = make_optimizer(config, model)
    averaged = Lookahead(model) if config.lookahead else None
    g = torch.Generator(device=device).manual_seed(0)
    n = len(data.train)
    flip_bits = torch.randint(0, 2, (n,), generator=g, device=device) == 1
    total = -(-n // config.batch_size) * config.epochs
    step = 0
    for epoch in range(1, config.epochs + 1):
        if stem is not None:
            stem.conv.bias.requires_grad_(epoch <= config.stem_bias_epochs)
        for idx in batch_indices(n, config.batch_size, g, device):
            set_lr(optimizer, config, step, total, 0)
            x = to_float(data.train.x[idx], channels_last)
            x = flip_crop(x, config.aug_pad, g, flips=flip_bits[idx] ^ (epoch % 2 == 0))
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(x)
            loss = F.cross_entropy(
                out.float(), data.train.y[idx], label_smoothing=config.label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if averaged is not None and (step % LOOKAHEAD_EVERY == 0 or step == total):
                averaged.update(1.0 if step == total else lookahead_decay(step, total))
    _sync(device)
    return time.perf_counter() - t0


def hpo_loop(config: Config, data: TaskData, device: torch.device) -> tuple[float, float]:
    """(training seconds as hpo's loop counts them, wall seconds with per-epoch validation)."""
    _sync(device)
    t0 = time.perf_counter()
    result = train(config, data, device=device, augment=True)
    _sync(device)
    return sum(h["epoch_seconds"] for h in result.history), time.perf_counter() - t0


def reference(script: Path) -> dict | None:
    """Run a reference trainer from its own folder; parse its last table row and mean."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, script.name],
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wall = time.perf_counter() - t0
    rows = [ln for ln in proc.stdout.splitlines() if "|" in ln and "eval" in ln]
    times = [float(ln.strip("| ").split("|")[-1]) for ln in rows]
    mean = re.search(r"Mean:\s*([\d.]+)\s+Std:\s*([\d.]+)", proc.stdout)
    if proc.returncode != 0 or not times:
        print(
            f"reference {script} failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
        )
        return None
    return {
        "runs": len(times),
        "median_s": statistics.median(times),
        "mean_accuracy": float(mean.group(1)) if mean else float("nan"),
        "std": float(mean.group(2)) if mean else float("nan"),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with cifar-10-batches-py/ (HPO_DATA_DIR)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda [default: auto]")
    parser.add_argument("--spec", default=str(ROOT / "studies" / "cifar10-known-good.toml"))
    parser.add_argument("--seeds", type=int, default=3, help="runs of the recipe [default: 3]")
    parser.add_argument("--ablate", action="store_true", help="one run per ablation row")
    parser.add_argument("--ablate-seeds", type=int, default=1, help="runs per ablation row")
    parser.add_argument("--speed", type=int, default=0, help="hpo/bare speed rounds [0: none]")
    parser.add_argument("--reference", help="a reference trainer script to time beside ours")
    parser.add_argument("--subset", type=float, default=1.0, help="fraction of the train split")
    parser.add_argument("--epochs", type=int, help="epochs instead of the spec's")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a recipe field (repeatable), e.g. --set batch_size=256",
    )
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="accuracy runs on the training split alone, without the validation images "
        "(what a study's trial sees; `hpo train` adds them)",
    )
    parser.add_argument("--smoke", action="store_true", help="synthetic 256 images, 1 epoch")
    args = parser.parse_args()
    if args.data_dir:
        os.environ["HPO_DATA_DIR"] = args.data_dir
    device = resolve_device(args.device)
    config = recipe(Path(args.spec))
    if args.epochs:
        config = config.replace(epochs=args.epochs)
    for item in args.set:
        key, value = item.split("=", 1)
        kind = type(getattr(config, key))
        config = config.replace(**{key: value == "true" if kind is bool else kind(value)})
    if args.smoke:
        config = config.replace(epochs=1, batch_size=64)
        data, test = synthetic(256, device)
        full = data
        args.seeds, args.ablate_seeds = 1, 1
    else:
        settings = TASK.settings({"subset": args.subset})
        data = TASK.load(settings, device)
        test = TASK.load_test(settings, device)
        both = Split(torch.cat([data.train.x, data.val.x]), torch.cat([data.train.y, data.val.y]))
        full = TaskData(both, data.val, data.kind, data.n_outputs)
        if args.train_only:
            full = data
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{name}, torch {torch.__version__}; recipe {args.spec}: {config.epochs} epochs, "
        f"batch {config.batch_size}; accuracy runs on {len(full.train)} images, "
        f"test {len(test)}; speed runs on {len(data.train)}",
        flush=True,
    )

    rows = []
    if args.speed:
        # warm-up: cuDNN picks kernels per shape once per process (the 45,000- and 50,000-
        # image epochs end on different batch sizes, and validation has its own shapes)
        accuracy_run(config.replace(epochs=1), full, test, device, 99)
        hpo_loop(config.replace(epochs=2), data, device)
        bare_loop(config.replace(epochs=1), data, device)
        ours, walls, bare = [], [], []
        for k in range(args.speed):  # alternate which loop runs first
            order = ("hpo", "bare") if k % 2 == 0 else ("bare", "hpo")
            for which in order:
                if which == "hpo":
                    s, w = hpo_loop(config, data, device)
                    ours.append(s)
                    walls.append(w)
                else:
                    bare.append(bare_loop(config, data, device))
        print(
            f"\n| loop ({len(data.train)} images, {config.epochs} epochs, {name}) "
            f"| median s | rounds |\n| --- | ---: | ---: |"
        )
        print(
            f"| hpo.train.loop, training steps only | {statistics.median(ours):.2f} "
            f"| {len(ours)} |"
        )
        print(
            f"| (each round: {', '.join(f'{v:.2f}' for v in ours)}; bare: "
            f"{', '.join(f'{v:.2f}' for v in bare)}) | | |"
        )
        print(
            f"| hpo.train.loop, with per-epoch validation | {statistics.median(walls):.2f} "
            f"| {len(walls)} |"
        )
        print(f"| bare loop | {statistics.median(bare):.2f} | {len(bare)} |")
        print(f"| hpo / bare | {statistics.median(walls) / statistics.median(bare):.2f} | |")
        if args.reference:
            ref = reference(Path(args.reference).resolve())
            if ref:
                print(
                    f"| reference {Path(args.reference).name}: {ref['runs']} runs, "
                    f"median (its own timer) | {ref['median_s']:.2f} | |"
                )
                print(
                    f"| reference accuracy (its test, mean +- std) "
                    f"| {ref['mean_accuracy']:.4f} +- {ref['std']:.4f} | |"
                )
        sys.stdout.flush()

    variants = [("recipe", {}, args.seeds)]
    if args.ablate:
        variants += [(label, changes, args.ablate_seeds) for label, changes in ABLATIONS]
    for label, changes, seeds in variants:
        accs, secs = [], []
        for seed in range(seeds):
            r = accuracy_run(config.replace(**changes), full, test, device, seed)
            accs.append(r["test_accuracy"])
            secs.append(r["train_s"])
        row = {
            "variant": label,
            "runs": seeds,
            "test_accuracy_mean": statistics.mean(accs),
            "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "train_s_median": statistics.median(secs),
            "device": name,
            "images": len(full.train),
            "epochs": config.epochs,
        }
        rows.append(row)
        print(
            f"{label}: test {row['test_accuracy_mean']:.4f} +- {row['test_accuracy_std']:.4f}"
            f" ({seeds} runs; {row['train_s_median']:.2f} s training)",
            flush=True,
        )
    base = rows[0]["test_accuracy_mean"]
    print(
        f"\n| variant ({rows[0]['images']} train images, {config.epochs} epochs, {name}) "
        "| runs | test accuracy | vs recipe | s training |\n| --- | ---: | ---: | ---: | ---: |"
    )
    for r in rows:
        delta = "" if r is rows[0] else f"{100 * (r['test_accuracy_mean'] - base):+.2f}"
        print(
            f"| {r['variant']} | {r['runs']} | {100 * r['test_accuracy_mean']:.2f} % "
            f"+- {100 * r['test_accuracy_std']:.2f} | {delta} | {r['train_s_median']:.2f} |"
        )
    out = ROOT / "benchmarks" / "out" / f"cifar10_recipe_{device.type}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
