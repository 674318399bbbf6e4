"""Images/s of hpo's training loop next to a bare PyTorch loop, on CIFAR-shaped data.

Both loops train the same network (hpo.models.build_model) with the same batch size, torch
optimiser, precision (bf16 autocast on CUDA, channels-last), uint8 -> float conversion and
flip+crop augmentation, on synthetic uint8 images that already live on the device, so the
difference is what the hpo loop adds per step (lr schedule, max-norm, loss bookkeeping, the
finiteness check, the deadline check). Epoch times exclude validation in both. The first epoch
is warm-up (allocator, cuDNN); the table gives the median of the later ones.

    python benchmarks/cifar10_speed.py [--device auto|cpu|cuda] [--images N] [--epochs E]
    python benchmarks/cifar10_speed.py --smoke      # tiny, seconds: does it run?

Writes the table's numbers to benchmarks/out/cifar10_speed_<device>.csv as well.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import optuna
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from hpo.augment import flip_crop  # noqa: E402
from hpo.config import Config  # noqa: E402
from hpo.data import Split, TaskData, resolve_device  # noqa: E402
from hpo.models import build_model, count_parameters  # noqa: E402
from hpo.optim import make_optimizer  # noqa: E402
from hpo.space import suggest  # noqa: E402
from hpo.spec import load_spec  # noqa: E402
from hpo.tasks.cifar10 import TASK  # noqa: E402
from hpo.trainer import train  # noqa: E402

REAL_EPOCH = 45_000  # images in one epoch of the real training split (docs/scenarios.md §3)


def known_good() -> Config:
    """The config of studies/cifar10-known-good.toml (all knobs fixed, so no trial needed)."""
    spec = load_spec(ROOT / "studies" / "cifar10-known-good.toml")
    return suggest(optuna.trial.FixedTrial({}), spec, Config.from_dict(spec.base))


def synthetic(n: int, n_val: int, device: torch.device) -> TaskData:
    """Random uint8 CIFAR-shaped images and labels, already on `device`."""
    g = torch.Generator().manual_seed(0)

    def split(k: int) -> Split:
        x = torch.randint(0, 256, (k, 3, 32, 32), generator=g, dtype=torch.uint8)
        return Split(x, torch.randint(0, 10, (k,), generator=g))

    return TaskData(split(n), split(n_val), "classification", 10).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(config: Config, data: TaskData, device: torch.device, epochs: int) -> list[float]:
    """Images/s per epoch of the plainest loop that trains `config` the way hpo does."""
    torch.manual_seed(0)
    model = build_model(config, data.image_shape, data.n_outputs).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model)  # the same torch optimiser and settings
    g = torch.Generator(device=device).manual_seed(0)
    x_all, y_all, n = data.train.x, data.train.y, len(data.train)
    rates = []
    for _ in range(epochs):
        model.train()
        _sync(device)
        t0 = time.perf_counter()
        for idx in torch.randperm(n, generator=g, device=device).split(config.batch_size):
            x = x_all[idx].float().div_(255.0)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if config.augment:
                x = flip_crop(x, pad=4, generator=g)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(x)
            loss = F.cross_entropy(out.float(), y_all[idx], label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if config.max_norm > 0:  # part of the config (the original's max-norm 3), not hpo
                model.apply_constraints()
        _sync(device)
        rates.append(n / (time.perf_counter() - t0))
    return rates


def hpo_loop(config: Config, data: TaskData, device: torch.device, epochs: int) -> list[float]:
    """Images/s per epoch of hpo.trainer.train (its own timing: training steps, no validation)."""
    result = train(config.replace(epochs=epochs), data, device=device, augment=TASK.augment)
    return [m["images_per_second"] for m in result.history]


def steady(rates: list[float]) -> float:
    """Median over the epochs after the first (warm-up), or the only epoch."""
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda [default: auto]")
    parser.add_argument(
        "--images", type=int, help="training images per epoch [default: 45000 on CUDA, else 2048]"
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loop [default: 3]")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="alternating hpo/bare rounds; medians over them, so neither loop always runs "
        "first on a cold device [default: 2]",
    )
    parser.add_argument("--smoke", action="store_true", help="256 images, 1 epoch: seconds")
    args = parser.parse_args()
    device = resolve_device(args.device)
    n = args.images or (REAL_EPOCH if device.type == "cuda" else 2048)
    epochs = args.epochs
    if args.smoke:
        n, epochs, args.rounds = 256, 1, 1
    data = synthetic(n, 256, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{name}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
        f"{n} synthetic images, {epochs} epoch(s) per loop, {args.rounds} round(s)"
    )
    rows = []
    for label, config in (("known-good", known_good()), ("original", TASK.original)):
        params = count_parameters(build_model(config, (3, 32, 32), 10))
        ours_r, bare_r = [], []
        for k in range(args.rounds):  # hpo first in even rounds, bare first in odd ones
            order = (hpo_loop, bare_loop) if k % 2 == 0 else (bare_loop, hpo_loop)
            for loop in order:
                rate = steady(loop(config, data, device, epochs))
                (ours_r if loop is hpo_loop else bare_r).append(rate)
        ours, bare = statistics.median(ours_r), statistics.median(bare_r)
        rows.append(
            {
                "config": label,
                "params": params,
                "batch_size": config.batch_size,
                "augment": config.augment,
                "hpo_img_s": round(ours, 1),
                "bare_img_s": round(bare, 1),
                "hpo_over_bare": round(ours / bare, 3),
                "hpo_s_per_45k_epoch": round(REAL_EPOCH / ours, 2),
                "bare_s_per_45k_epoch": round(REAL_EPOCH / bare, 2),
                "device": name,
                "images": n,
                "epochs": epochs,
                "rounds": args.rounds,
                "torch": torch.__version__,
            }
        )
    print(
        "\n| config | params | batch | hpo img/s | bare img/s | hpo / bare "
        "| hpo s/epoch (45k) | bare s/epoch (45k) |\n| --- | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |"
    )
    for r in rows:
        print(
            f"| {r['config']} | {r['params']:,} | {r['batch_size']} | {r['hpo_img_s']:,.0f} "
            f"| {r['bare_img_s']:,.0f} | {r['hpo_over_bare']:.2f} "
            f"| {r['hpo_s_per_45k_epoch']:,.1f} | {r['bare_s_per_45k_epoch']:,.1f} |"
        )
    out = ROOT / "benchmarks" / "out" / f"cifar10_speed_{device.type}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwritten: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
