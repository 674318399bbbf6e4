#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (no network: optuna, mlflow and their
# needs travel as wheels in .whl/, see .library device README). Every step is time-capped and
# writes its log to $OUT, so a cut-off run still reports what it measured.
# Usage: bash benchmarks/gpu.sh [speed] [study] [diagnose] [search]   (default: the first three)
# .whl/ (35 MB, not committed): `pip download --only-binary=:all: --python-version 3.12
# --platform manylinux2014_x86_64 --platform any -d .whl mlflow==3.17.2 optuna==5.0.0`, then
# keep only what the GPU image lacks (mlflow, mlflow-skinny, mlflow-tracing, optuna, alembic,
# sqlalchemy, pydantic, fastapi, opentelemetry-*, databricks-sdk, ...: 47 wheels here).
. benchmarks/gpu_env.sh  # REPO, OUT, the carried wheels on PYTHONPATH
hpo() { python3 -m hpo "$@"; }
step() { echo; echo "=== $* ($(date +%T))"; }
python3 -c "import torch, optuna, mlflow; print('torch', torch.__version__, 'optuna', optuna.__version__, 'mlflow', mlflow.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')" \
  || echo "optuna/mlflow do not import: the hpo steps below will fail, the speed benchmark runs"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
W=/tmp/hpo-work; mkdir -p $W; cd $W
parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=(speed study diagnose)
for part in "${parts[@]}"; do
  case $part in
  speed)  # the recipe on the real images: benchmarks/gpu_cifar10.sh recipe (needs .gpu/)
    step "cifar10 training loop vs a bare loop on CUDA (the recipe, real images)"
    (cd "$REPO" && bash benchmarks/gpu_cifar10.sh recipe) 2>&1 | tee "$OUT/cifar10_speed.log" ;;
  study)
    step "hpo study pixel --trials 20 (224 px, original + baselines)"
    s0=$SECONDS
    timeout 210 python3 -m hpo study pixel --trials 20 --timeout 170 2>&1 | tee "$OUT/pixel_study.log"
    echo "hpo study pixel: wall $((SECONDS - s0)) s" | tee -a "$OUT/pixel_study.log"
    hpo report pixel --format json > "$OUT/pixel_report.json"
    hpo report pixel 2>&1 | head -40 ;;
  diagnose)
    step "hpo diagnose pixel --original --seeds 10 (224 px)"
    timeout 100 python3 -m hpo diagnose pixel --original --seeds 10 --format markdown 2>&1 \
      | tee "$OUT/pixel_diagnose.md" ;;
  search)
    step "search efficiency on pixel at 224 px (default search, until val accuracy >= 0.99)"
    timeout "${SEARCH_SECONDS:-240}" python3 "$REPO/benchmarks/search.py" --task pixel \
      --device cuda --arms default --seeds "${SEARCH_SEEDS:-5}" --max-trials 20 2>&1 \
      | tee "$OUT/search_pixel.log" ;;
  *) echo "unknown part $part (speed | study | diagnose | search)"; exit 2 ;;
  esac
done
step "done"
