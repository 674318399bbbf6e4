#!/usr/bin/env bash
# README command 1 as a new user runs it: a fresh clone of this checkout's HEAD, a new venv, the
# install, `hpo study box --trials 30`, with an empty hpo cache (so the baseline and the
# original's replay are computed, not reused). Repeats RUNS times (default 3) and prints a
# markdown table: wall time, best val R2, the original's val R2; then the median wall time.
#
#   bash benchmarks/first_command.sh [RUNS]
#
# pip's own cache is left as it is: on a machine that never installed these packages, the
# first run also downloads them.
set -euo pipefail
runs=${1:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| run | wall s | best val R2 | original val R2 |"
echo "| --- | ---: | ---: | ---: |"
walls=()
for i in $(seq 1 "$runs"); do
  dir="$work/run-$i"
  git clone -q "$repo" "$dir"
  start=$(date +%s.%N)
  (
    cd "$dir"
    export HPO_CACHE_DIR="$dir/.hpo-cache"
    python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==2.13.0 &&
      pip install -q -e . && hpo study box --trials 30
  ) >"$dir/out.txt" 2>"$dir/err.txt" || { tail -n 5 "$dir/err.txt" >&2; exit 1; }
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  walls+=("$wall")
  best=$(grep -m1 "^  best" "$dir/out.txt" | grep -o "val_r2 [-0-9.e]*" | cut -d' ' -f2)
  original=$(grep -m1 "^  original" "$dir/out.txt" | grep -o "val_r2 [-0-9.e]*" | cut -d' ' -f2)
  printf "| %s | %.0f | %s | %s |\n" "$i" "$wall" "$best" "$original"
done
median=$(printf "%s\n" "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
printf "\nmedian wall time: %.0f s (%d runs)\n" "$median" "$runs"
