# Sourced by the GPU scripts (benchmarks/gpu.sh, benchmarks/gpu_cifar10.sh) from the repository
# root: the environment of a lent, offline GPU machine. Installs the carried wheels in .whl/ (if
# any) into /tmp/site, puts them and the checkout on PYTHONPATH, and sets REPO, OUT, the cache.
set -u
REPO=$PWD
export PYTHONUNBUFFERED=1 HPO_CACHE_DIR=/tmp/hpo-cache
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$REPO
else
  export PYTHONPATH=$REPO
fi
