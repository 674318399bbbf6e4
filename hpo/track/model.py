"""The model registry: `hpo train` logs the retrained PyTorch model on its run and registers
it under the study's name. With hpo.track.client and hpo.track.study_log, the only modules that
import mlflow; apart because mlflow.pytorch alone takes seconds to import, which a study never
needs."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from typing import Any

import mlflow
import mlflow.pytorch
import torch
from mlflow.models import infer_signature

from hpo.track.client import Tracker, absolute
from hpo.util import logs as quiet

PREDICTION_DEVICE = "MLFLOW_DEFAULT_PREDICTION_DEVICE"  # where MLflow's pyfunc loads a model
# what MLflow prints itself on registering (not through a logger); hpo's own line says it
REGISTRY_PRINTS = (
    "Successfully registered model ",
    "Created version ",
    "Registered model ",  # "... already exists. Creating a new version of this model..."
)


@contextmanager
def _no_mlflow_prints() -> Iterator[None]:
    """Everything written to stderr inside, except MLflow's REGISTRY_PRINTS lines, passed on
    at the end. HPO_LOG_LEVEL keeps them. (MLflow's own switch for its prints is turned back
    on by its model logging on the way.)"""
    if quiet.level():
        yield
        return
    buffer = io.StringIO()
    try:
        with redirect_stderr(buffer):
            yield
    finally:
        lines = buffer.getvalue().splitlines(keepends=True)
        sys.stderr.write("".join(x for x in lines if not x.startswith(REGISTRY_PRINTS)))


@contextmanager
def _loaded_on_cpu() -> Iterator[None]:
    """MLflow loads the model it has just saved (to check the input example, to infer its pip
    requirements) onto CUDA wherever CUDA is present. The model is saved from the CPU, and a
    torch.export ('pt2') model saved there cannot be loaded onto CUDA: on a GPU machine
    `hpo train` printed MLflow's 'Failed to validate serving input example' with a page of
    JSON. So the check loads it where it was saved, unless MLFLOW_DEFAULT_PREDICTION_DEVICE is
    set already."""
    if os.environ.get(PREDICTION_DEVICE):
        yield
        return
    os.environ[PREDICTION_DEVICE] = "cpu"
    try:
        yield
    finally:
        os.environ.pop(PREDICTION_DEVICE, None)


def requirements() -> list[str]:
    """What the logged model needs to load, without MLflow's inference of it: a subprocess
    that loads the model and records what it imported took 7.5 s of an 18 s `hpo train` here,
    and found torch, cloudpickle, numpy (and MLflow's own pandas and tqdm). torch without its
    local label (2.13.0+cpu -> 2.13.0), so that pip can install the requirement; MLflow adds
    its own pin."""
    import cloudpickle
    import numpy

    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"cloudpickle=={cloudpickle.__version__}",
        f"numpy=={numpy.__version__}",
    ]


def log_model(
    tracker: Tracker,
    run_id: str,
    model: Any,
    example: Any,
    registered_name: str,
    tags: dict[str, Any],
) -> tuple[str, str]:
    """Log a PyTorch model (signature + input example) on `run_id`, register it under
    `registered_name`, tag the version; returns (model URI, version)."""
    mlflow.set_tracking_uri(absolute(tracker.uri))
    model = model.cpu().eval()
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    signature = infer_signature(example, output)
    with mlflow.start_run(run_id=run_id), _no_mlflow_prints(), _loaded_on_cpu():
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=requirements(),
            registered_model_name=registered_name,
            await_registration_for=60,
        )
    version = str(info.registered_model_version)
    for key, value in tags.items():
        tracker.client.set_model_version_tag(registered_name, version, key, str(value))
    return f"models:/{registered_name}/{version}", version
