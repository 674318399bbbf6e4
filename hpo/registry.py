"""The model registry: `hpo train` logs the retrained PyTorch model on its run and registers
it under the study's name. Apart from hpo.tracking, the only module that imports mlflow; kept
apart because mlflow.pytorch alone takes seconds to import, which a study never needs."""

from __future__ import annotations

from typing import Any

import mlflow
import mlflow.pytorch
import torch
from mlflow.models import infer_signature

from hpo.tracking import Tracker


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
    mlflow.set_tracking_uri(tracker.uri)
    model = model.cpu().eval()
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    signature = infer_signature(example, output)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=registered_name,
            await_registration_for=60,
        )
    version = str(info.registered_model_version)
    for key, value in tags.items():
        tracker.client.set_model_version_tag(registered_name, version, key, str(value))
    return f"models:/{registered_name}/{version}", version
