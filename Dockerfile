# syntax=docker/dockerfile:1
# GPU worker image for `hpo study`: the CUDA build of PyTorch comes from the base image and is
# kept as is; hpo and its other dependencies are installed on top.
#
#   docker build -t hpo-worker .
#   docker run --rm --gpus 1 -e HPO_STORAGE -e MLFLOW_TRACKING_URI hpo-worker study cifar10 --trials 200
#
# No credentials are baked in: the study storage URL and the MLflow server come only from the
# environment at run time, HPO_STORAGE (postgresql+psycopg2://USER:PASSWORD@HOST:5432/optuna)
# and MLFLOW_TRACKING_URI (http://HOST:5000). hpo prints the storage URL with its password masked.
ARG BASE_IMAGE=pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Non-root user hpo, uid 1000 (some bases already have a uid-1000 user, e.g. `ubuntu`).
# ~/.cache/hpo holds the data sets and the cached original-config results: mount a volume there.
RUN if getent passwd 1000 >/dev/null; then userdel -r "$(getent passwd 1000 | cut -d: -f1)"; fi \
 && useradd --create-home --uid 1000 --user-group --shell /bin/bash hpo \
 && mkdir -p /home/hpo/work /home/hpo/.cache/hpo \
 && chown -R hpo:hpo /home/hpo

# Install the package (not editable). The constraint pins torch to the image's own build, so pip
# can only accept it as already satisfied and never swaps in a PyPI wheel; the check after the
# install fails the build if torch changed anyway.
WORKDIR /opt/hpo-src
COPY pyproject.toml README.md ./
COPY hpo/ hpo/
COPY studies/ studies/
RUN python -c "import torch; print('torch==' + torch.__version__)" > /opt/keep-torch.txt \
 && pip install --no-cache-dir -c /opt/keep-torch.txt . \
 && python -c "import torch; want = open('/opt/keep-torch.txt').read().split('==')[1].strip(); \
assert torch.__version__ == want, (torch.__version__, want); \
assert torch.version.cuda, 'torch has no CUDA'; print('torch', want, 'cuda', torch.version.cuda)" \
 && hpo --help >/dev/null

# The study specs ship inside the package (hpo.studies); a studies/ folder mounted into the
# working directory overrides them.
WORKDIR /home/hpo/work
USER 1000:1000

ENTRYPOINT ["hpo"]
CMD ["--help"]
