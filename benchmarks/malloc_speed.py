"""Images/s of one big-activation net with glibc's default malloc thresholds vs tuned ones.

Each setting runs in its own fresh process (malloc settings are per process), alternating,
and the table gives the median over repeats. Usage: python benchmarks/malloc_speed.py
[--repeats 3] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = r"""
import sys, torch
from hpo.util.process import tune_malloc
if sys.argv[1] == "tuned":
    tune_malloc()
from hpo.train.config import Config
from hpo.tasks import TASKS
from hpo.train.loop import train
task = TASKS["pixel"]
n, size = int(sys.argv[2]), int(sys.argv[3])
s = task.settings({"n_train_per_class": n, "n_val_per_class": 20, "image_size": size})
data = task.load(s, torch.device("cpu"))
cfg = Config(conv_channels=(8,), conv_kernel=(1,), downsample="none", global_pool="max",
             lr=3e-3, batch_size=32, epochs=2)
result = train(cfg, data, device=torch.device("cpu"))
print(result.history[-1]["images_per_second"])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny images, one repeat")
    args = parser.parse_args()
    n, size, repeats = (50, 32, 1) if args.smoke else (300, 224, args.repeats)
    env = {**os.environ, "HPO_MALLOC_TUNING": "1"}
    results: dict[str, list[float]] = {"default": [], "tuned": []}
    for _ in range(repeats):
        for mode in results:  # alternate, so drift on a noisy machine hits both alike
            out = subprocess.run(
                [sys.executable, "-c", CHILD, mode, str(n), str(size)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            results[mode].append(float(out.stdout.strip().splitlines()[-1]))
    base = statistics.median(results["default"])
    print(f"| malloc | img/s (median of {repeats}) | ratio |\n| --- | --- | --- |")
    for mode, values in results.items():
        median = statistics.median(values)
        print(f"| {mode} | {median:.0f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
