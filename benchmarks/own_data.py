"""Real data no one here made, and the box scenario from files, through `hpo study PATH`
(issue 33): each problem is written out in a user's format, studied as a user would type it,
and its figures printed as markdown tables (RESULTS.md §8).

    python benchmarks/own_data.py digits     # load_digits as a PNG folder, 20 trials
    python benchmarks/own_data.py diabetes   # load_diabetes as a CSV, 5 split seeds
    python benchmarks/own_data.py box        # 10,000 + 2,000 PNG squares + labels.csv, the
                                             # user's net replayed; a first and a cached run

Everything lives in a fresh folder (--work, default a temporary one) with its own stores and
cache, so nothing is reused from an earlier run unless the row says so."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def hpo(work: Path, *args: str) -> tuple[float, str, str]:
    """(wall seconds, stdout, stderr) of `hpo ARGS` run in `work`."""
    env = {**os.environ, "HPO_CACHE_DIR": str(work / "cache"), "PYTHONPATH": str(ROOT)}
    env.pop("HPO_STORAGE", None), env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "hpo", *args], cwd=work, env=env,
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        sys.exit(f"hpo {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return time.monotonic() - t0, out.stdout, out.stderr


def report(work: Path, name: str) -> dict:
    return json.loads(hpo(work, "report", name, "--format", "json")[1])


def best_metric(body: dict, metric: str) -> float:
    return body["best"]["metrics"][metric]


def digits(work: Path, trials: int, smoke: bool = False) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    keep = 300 if smoke else len(data.target)  # smoke: the first 300 images, one epoch
    for i, (image, label) in enumerate(zip(data.images[:keep], data.target[:keep], strict=True)):
        folder = work / "digits" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8)).save(folder / f"{i}.png")
    extra = ["--epochs", "1"] if smoke else []
    wall, _, err = hpo(work, "study", "./digits", "--trials", str(trials), *extra)
    body = report(work, "digits")
    line = next(s for s in err.splitlines() if s.startswith("data set:"))
    sizes = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) (?:train|val|test)\b", line)]
    base = body["baselines"]["pca_logistic_regression"]["val_accuracy"]
    print(f"{line}\n")
    print("| data | images | train / val / test | trials | wall s | best val accuracy | "
          "logistic baseline val accuracy |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    best = best_metric(body, "val_accuracy")
    split = " / ".join(f"{n:,}" for n in sizes)
    print(f"| digits ({keep:,} 8x8 PNG) | {keep:,} | {split} | {trials} | {wall:.0f} | "
          f"{best:.4f} | {base:.4f} |")  # fmt: skip


def diabetes(work: Path, trials: int, seeds: int) -> None:
    from sklearn.datasets import load_diabetes

    load_diabetes(as_frame=True).frame.to_csv(work / "diabetes.csv", index=False)
    print("| split seed | wall s | best val R2 | least squares val R2 | gap |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    gaps = []
    for seed in range(seeds):
        name = f"diabetes-{seed}"
        args = ["--trials", str(trials), "--data", f"split_seed={seed}", "--study-name", name]
        wall, _, _ = hpo(work, "study", "diabetes.csv", "--target", "target", *args)
        body = report(work, name)
        best = body["best"]["metrics"]["val_r2"]
        base = body["baselines"]["linear_regression"]["val_r2"]
        gaps.append(best - base)
        print(f"| {seed} | {wall:.0f} | {best:.4f} | {base:.4f} | {best - base:+.4f} |")
    print(f"\nmean gap (best - least squares) over {seeds} split seeds: "
          f"{statistics.mean(gaps):+.4f}")  # fmt: skip


def box_files(work: Path, trials: int) -> None:
    import pandas as pd
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from hpo.tasks import box

    folder = work / "box-files"
    folder.mkdir()
    settings = box.TASK.settings()
    rows = []
    for part, stream, n in (("train", 1, 10_000), ("val", 2, 2_000)):
        split = box.generate(n, settings, stream)
        for i in range(n):
            name = f"{part}-{i:05d}.png"
            Image.fromarray(split.x[i, 0].numpy()).save(folder / name)
            x, y = split.y[i].tolist()
            rows.append({"file": name, "split": part, "x": x, "y": y})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    original = str(ROOT / "examples" / "box-original.toml")
    print("| run | wall s | decode | best val R2 | original val R2 | baseline val R2 |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for run, name in (("first", "box-files"), ("cached decode", "box-files-again")):
        wall, _, err = hpo(work, "study", "./box-files", "--trials", str(trials),
                           "--original-config", original, "--study-name", name)  # fmt: skip
        body = report(work, name)
        found = re.search(
            r"[\d,]+ images (?:decoded in [\d.]+ s \([\d,]+/s\)|from the decode cache)", err
        )
        decode = found.group(0) if found else ""
        best = body["best"]["metrics"]["val_r2"]
        orig = (body["original"] or {}).get("val_r2", float("nan"))
        base = body["baselines"]["linear_regression"]["val_r2"]
        print(f"| {run} | {wall:.0f} | {decode} | {best:.4f} | {orig:.4f} | "
              f"{base:.4f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem", choices=["digits", "diabetes", "box"])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5, help="diabetes: split seeds")
    parser.add_argument("--work", help="folder to work in [default: a temporary one]")
    parser.add_argument("--smoke", action="store_true", help="300 digits, 2 trials, 1 epoch")
    args = parser.parse_args(sys.argv[1:] if sys.argv[1:2] != ["--smoke"] else
                             [*sys.argv[1:], "digits"])  # fmt: skip
    if args.smoke:
        args.trials = 2
    work = Path(args.work or tempfile.mkdtemp(prefix=f"hpo-{args.problem}-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.problem == "digits":
        digits(work, args.trials, args.smoke)
    elif args.problem == "diabetes":
        diabetes(work, args.trials, args.seeds)
    else:
        box_files(work, args.trials)


if __name__ == "__main__":
    main()
