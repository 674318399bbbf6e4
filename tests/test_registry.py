"""The model registry: what `hpo train` logs and registers in MLflow."""

from __future__ import annotations

import os

import numpy as np
import torch

from hpo.train.config import Config
from hpo.train.models import build_model


def test_a_gpu_machine_checks_the_model_where_it_was_saved(scratch, monkeypatch, capsys):
    """MLflow loads the model it has just logged onto CUDA wherever CUDA is present; the model
    is saved from the CPU in torch.export format, which refuses CUDA. On a GPU machine that was
    a 'Failed to validate serving input example' warning with a page of JSON on `hpo train`'s
    terminal. Here the machine answers as a GPU machine does."""
    import mlflow

    from hpo.track.client import Tracker
    from hpo.track.model import PREDICTION_DEVICE, log_model

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv(PREDICTION_DEVICE, raising=False)
    tracker = Tracker(f"sqlite:///{scratch / 'mlflow.db'}", "registry")
    mlflow.set_tracking_uri(tracker.uri)
    mlflow.set_experiment("registry")
    with mlflow.start_run() as run:
        run_id = run.info.run_id
    model = build_model(Config(dense_units=(8,)), (1, 16, 16), 2)
    example = np.zeros((2, 1, 16, 16), dtype=np.float32)
    uri, version = log_model(tracker, run_id, model, example, "registry", {"task": "box"})
    assert (uri, version) == ("models:/registry/1", "1")
    err = capsys.readouterr().err
    assert "Failed to validate" not in err and "can't be loaded on 'cuda'" not in err, err
    assert PREDICTION_DEVICE not in os.environ  # left as it was
