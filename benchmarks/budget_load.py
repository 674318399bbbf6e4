"""Does a trial's budget depend on the machine's load? (issue 35) The same study, unseeded, run
alone, as K workers on one study, and beside busy processes, on this machine, with its task's
trial_timeout: for each, the best val R2, how its trials ended and how many the budget cut.

    python benchmarks/budget_load.py                  # box, 20 trials: alone, 3 workers, 2 busy
    python benchmarks/budget_load.py --root /tmp/old  # the same with hpo from another checkout
    python benchmarks/budget_load.py --smoke          # 2 trials of 1 epoch on tiny data

Each case runs in a fresh folder with its own stores and cache (the default SQLite study,
which the workers share), as `python -m hpo study box --trials N --epochs 2 --data
n_train=2000 [--workers K]`; a busy process is `python -c "while True: pass"`, stopped after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_WORDS = ("trial_timeout", "time budget", "wall clock")  # a reason a budget gave


def hpo(root: Path, work: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "HPO_CACHE_DIR": str(work / "cache")}
    env.pop("HPO_STORAGE", None), env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "hpo", *args], cwd=work, env=env,
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        sys.exit(f"hpo {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return time.monotonic() - t0, out.stdout


def case(root: Path, study: list[str], workers: int, busy: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="hpo-budget-"))
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        wall, _ = hpo(root, work, *study, "--workers", str(workers))
    finally:
        for p in burners:
            p.kill()
            p.wait()
    body = json.loads(hpo(root, work, "report", "box", "--format", "json")[1])
    trials = body["trials"]
    cut = [t for t in trials if any(w in (t.get("reason") or "") for w in BUDGET_WORDS)]
    return {
        "wall": wall,
        "best": body["best"]["metrics"]["val_r2"] if body.get("best") else float("nan"),
        "complete": sum(t["state"] == "COMPLETE" for t in trials),
        "pruned": sum(t["state"] == "PRUNED" for t in trials),
        "cut": len(cut),
        "cut_best": max((t["metrics"].get("val_r2", float("-inf")) for t in cut), default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT), help="the hpo checkout to run [this one]")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2, help="busy processes beside one study")
    parser.add_argument("--smoke", action="store_true", help="2 trials of 1 epoch, tiny data")
    args = parser.parse_args()
    data, epochs = ["--data", "n_train=2000"], "2"
    if args.smoke:
        args.trials, args.workers, args.busy, epochs = 2, 2, 1, "1"
        data = ["--data", "n_train=128", "--data", "n_val=64", "--data", "image_size=16",
                "--data", "square_size=4"]  # fmt: skip
    study = ["study", "box", "--trials", str(args.trials), "--epochs", epochs, *data,
             "--no-original"]  # fmt: skip
    root = Path(args.root).resolve()
    revision = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()  # fmt: skip
    print(f"hpo at {root} ({revision or 'no git'}); {os.cpu_count()} cores; {' '.join(study)}\n")
    head = "| case | wall s | best val R2 | complete | pruned | cut by the budget |"
    print(head + " best R2 of those cut |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, workers, busy in (
        ("alone", 1, 0),
        (f"{args.workers} workers", args.workers, 0),
        (f"beside {args.busy} busy processes", 1, args.busy),
    ):
        r = case(root, study, workers, busy)
        cut_best = "" if r["cut_best"] in (None, float("-inf")) else f"{r['cut_best']:.4f}"
        print(f"| {label} | {r['wall']:.0f} | {r['best']:.4f} | {r['complete']} | {r['pruned']} | "
              f"{r['cut']} | {cut_best} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
