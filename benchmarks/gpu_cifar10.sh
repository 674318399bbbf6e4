#!/usr/bin/env bash
# The cifar10 GPU checks of issue 15 as one time-capped call (<= 9 minutes on one H100):
#   recipe  benchmarks/cifar10_recipe.py: speed (hpo loop vs bare loop vs the reference, one
#           run), the recipe's test accuracy over seeds and one ablation row per ingredient
#   study   hpo study cifar10 --trials 200 (capped by STUDY_SECONDS), hpo train --best, report
#   cudnn   benchmarks/cudnn_tuning.py: cuDNN's kernel search on vs off (~1.5 min)
#   search  benchmarks/search.py: the shipped search vs random search at equal wall time
#           (SEARCH_SECONDS per study, 3 study seeds, SEARCH_ARMS [default,random]: 3 x arms x
#           SEARCH_SECONDS in all; SEARCH_ARMS=default,tpe,random adds TPE without local moves)
# Usage: bash benchmarks/gpu_cifar10.sh [recipe] [study] [cudnn] [search]  (default: recipe study)
# STUDY_ARGS adds `hpo study` flags; STUDY_BEST=0 skips `hpo train --best` (a short check).
# One call is <= 10 minutes and a session has 15 of device time: `study` with STUDY_SECONDS=420
# is a call of its own (set-up ~0.5 min, the study 7 min, `hpo train --best` with its finalists
# <= 2 min; each trial's line tells the pace: "N/200 finished, ~X min left" says whether 200
# fit in 10 minutes), and so is `search` (2 arms at SEARCH_SECONDS=80, or 3 at 55: 8 minutes).
#
# A lent GPU machine has no network and gets only the checkout, so two ignored folders travel
# with it (name both in `carry`):
#   .whl/  optuna, mlflow and what they need that the GPU image lacks (see benchmarks/gpu.sh)
#   .gpu/  cifar10-jpeg.npz and build.py from ../shared/cifar10 (the real images), and,
#          optionally, a reference trainer as .gpu/reference/airbench94.py (from the public
#          cifar10-airbench repository's legacy/airbench94.py, with its run count lowered; it is
#          never committed). benchmarks/prepare_gpu.sh fills .gpu/.
# Every step is capped with `timeout` and logs to $OUT, so a cut-off run still reports.
. benchmarks/gpu_env.sh  # REPO, OUT, the carried wheels on PYTHONPATH
STUDY_SECONDS=${STUDY_SECONDS:-300}
SEARCH_SECONDS=${SEARCH_SECONDS:-80}
SEARCH_ARMS=${SEARCH_ARMS:-default,random}
STUDY_ARGS=${STUDY_ARGS:-}  # more `hpo study` flags, e.g. --no-original
STUDY_BEST=${STUDY_BEST:-1}  # 0: no `hpo train --best` after the study
step() { echo; echo "=== $* ($(date +%T), ${SECONDS}s)"; }
python3 -c "import torch, optuna, mlflow; print('torch', torch.__version__, 'optuna', optuna.__version__, 'mlflow', mlflow.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

step "the real images: build.py"
DATA=/tmp/cifar10
python3 .gpu/build.py "$DATA" > /dev/null || { echo "build.py failed"; exit 1; }
export HPO_DATA_DIR=$DATA
parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=(recipe study)
if [ -f .gpu/reference/airbench94.py ] && [[ " ${parts[*]} " == *" recipe "* ]]; then
  # the reference reads cifar10/{train,test}.pt beside itself: the same images, HWC uint8
  python3 - <<'EOF'
import torch
from hpo.tasks.cifar10.files import FOLDER, label_names, load_cifar10_split
folder = f"/tmp/cifar10/{FOLDER}"
import os
os.makedirs(".gpu/reference/cifar10", exist_ok=True)
for split, name in (("train", "train.pt"), ("test", "test.pt")):
    x, y = load_cifar10_split(folder, split)
    torch.save({"images": torch.from_numpy(x).permute(0, 2, 3, 1).contiguous(),
                "labels": torch.from_numpy(y), "classes": label_names(folder)},
               f".gpu/reference/cifar10/{name}")
EOF
  REF=(--reference .gpu/reference/airbench94.py)
else
  REF=()
fi

W=/tmp/hpo-work; mkdir -p $W
for part in "${parts[@]}"; do
  case $part in
  recipe)
    step "the recipe: speed beside a bare loop and the reference, accuracy, ablations"
    timeout 200 python3 benchmarks/cifar10_recipe.py --device cuda --seeds 3 --ablate \
      --speed 3 "${REF[@]}" 2>&1 | tee "$OUT/cifar10_recipe.log"
    cp benchmarks/out/cifar10_recipe_cuda.csv "$OUT/" 2>/dev/null ;;
  study)
    step "hpo study cifar10 --trials 200 (at most ${STUDY_SECONDS} s), then hpo train --best"
    cd $W
    s0=$SECONDS
    timeout $((STUDY_SECONDS + 90)) python3 -m hpo study cifar10 --trials 200 \
      --timeout "$STUDY_SECONDS" --seed 0 $STUDY_ARGS 2>&1 | tee "$OUT/cifar10_study.log" \
      | grep -v "^  epoch "
    echo "hpo study cifar10: wall $((SECONDS - s0)) s" | tee -a "$OUT/cifar10_study.log"
    [ "$STUDY_BEST" = 1 ] && timeout 120 python3 -m hpo train cifar10 --best 2>&1 \
      | tee "$OUT/cifar10_train_best.log"
    cp hpo.db "$OUT/cifar10_study.db"  # every trial, its config and its finalist scores
    python3 -m hpo report cifar10 --format json > "$OUT/cifar10_report.json"
    python3 -m hpo report cifar10 --top 20 2>&1  # the finalists are listed under the table
    cd "$REPO" ;;
  cudnn)
    step "cuDNN's kernel search on vs off over the recipe and two neighbours"
    timeout 150 python3 benchmarks/cudnn_tuning.py --device cuda --epochs 3 2>&1 \
      | tee "$OUT/cudnn_tuning.log" ;;
  search)
    step "search vs random at equal wall time: ${SEARCH_SECONDS} s a study, 3 study seeds"
    n_arms=$(echo "$SEARCH_ARMS" | tr ',' '\n' | wc -l)
    timeout $((3 * n_arms * SEARCH_SECONDS + 60)) python3 benchmarks/search.py --task cifar10 \
      --device cuda --budget "$SEARCH_SECONDS" --seeds 3 --arms "$SEARCH_ARMS" --verbose \
      2>&1 | tee "$OUT/cifar10_search.log"
    cp benchmarks/out/search_cifar10_budget.csv "$OUT/" 2>/dev/null ;;
  *) echo "unknown part $part (recipe | study | cudnn | search)"; exit 2 ;;
  esac
done
step "done"
