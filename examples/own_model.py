"""From Python, with your own data and your own PyTorch model: scikit-learn's handwritten digits
as arrays, a small CNN of your own searched by hpo (its width and dropout with hpo's optimiser,
learning rate and batch size) beside the logistic-regression baseline, and your CNN's own
settings replayed as the original. On a 2-core CPU it takes about a minute:

    python examples/own_model.py            # 12 trials of 4 epochs
    python examples/own_model.py --smoke    # 2 trials of 1 epoch (what the tests run)

Everything goes to ./hpo.db and ./mlflow.db in the working directory, so `hpo report
digits-mine` and `hpo ui digits-mine` show it afterwards; a second run resumes the study.
"""

from __future__ import annotations

import sys
from pathlib import Path

from torch import nn

# the knobs hpo searches in small_cnn, in the format of a spec's [space] table; `dropout` is
# searched in 0..0.5 because the factory takes it
SPACE = {"channels": {"low": 8, "high": 32, "log": True}}


def small_cnn(
    input_shape: tuple[int, ...], n_outputs: int, channels: int = 16, dropout: float = 0.0
) -> nn.Module:
    """conv 3x3 -> max-pool -> conv 3x3 -> global average -> dropout -> linear."""
    return nn.Sequential(
        nn.Conv2d(input_shape[0], channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(2 * channels, n_outputs),
    )


def main(smoke: bool = False) -> None:
    import numpy as np
    from sklearn.datasets import load_digits

    import hpo

    digits = load_digits()
    x = (digits.images * 255 / 16).astype(np.uint8)[:, None]  # (1797, 1, 8, 8) uint8 images
    y = digits.target
    task = hpo.Task.from_arrays(
        x[:1400], y[:1400], x_val=x[1400:1600], y_val=y[1400:1600],
        x_test=x[1600:], y_test=y[1600:], name="digits-mine",
    )  # fmt: skip
    me = f"{Path(__file__).resolve()}:small_cnn"  # a module's path and the factory's name
    result = hpo.run(
        task,
        trials=2 if smoke else 12,
        epochs=1 if smoke else 4,
        model=me,  # the family searched
        original_model=me,  # the original: small_cnn at its defaults, hpo's default optimiser
        seed=0,
        progress=print,
    )
    best = result.best
    config = best.config
    print(f"best val accuracy {best.value:.4f} with {dict(config.model_params)}, "
          f"{config.optimizer} lr {config.lr:.2g}, batch {config.batch_size}")  # fmt: skip
    print(f"baseline {result.baseline}")
    print(f"original {result.original}")
    print(result.report()[["number", "state", "value"]].to_string(index=False))


if __name__ == "__main__":
    main(smoke="--smoke" in sys.argv)
