#!/usr/bin/env bash
# Fill the ignored .gpu/ folder that benchmarks/gpu_cifar10.sh needs on a lent GPU machine:
# the real images (../shared/cifar10: cifar10-jpeg.npz + build.py) and, if given, a reference
# trainer: `bash benchmarks/prepare_gpu.sh [PATH/TO/cifar10-airbench]` copies its
# legacy/airbench94.py with 5 runs instead of 25. Nothing here is committed (.git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu
cp ../shared/cifar10/cifar10-jpeg.npz ../shared/cifar10/build.py .gpu/
if [ $# -ge 1 ]; then
  mkdir -p .gpu/reference
  if [ -f "$1/legacy/airbench94.py" ]; then  # a checkout
    cat "$1/legacy/airbench94.py"
  else  # a bare mirror
    git -C "$1" show HEAD:legacy/airbench94.py
  fi | sed 's/for run in range(25)/for run in range(5)/' > .gpu/reference/airbench94.py
  grep -q 'range(5)' .gpu/reference/airbench94.py
fi
du -sh .gpu
