"""The box user's Keras net (docs/scenarios.md §1) written as a PyTorch module factory, the way
a user brings their own model to hpo:

    hpo study box --original-model examples/box_net.py:box_net         # replay it (collapses)
    hpo study box --model examples/box_net.py:box_net --trials 20      # search its family

factory(input_shape, n_outputs, **knobs) -> nn.Module; SPACE declares the knobs hpo searches
(a spec's [space] format), beside hpo's own training knobs (optimizer, lr, batch size, ...).
"""

from __future__ import annotations

import torch
from torch import nn

SPACE = {
    "width": {"low": 8, "high": 64, "log": True},  # channels of the first conv (the user's: 32)
    "dense": [32, 100, 256],  # units of the hidden dense layer (the user's: 100)
}


def box_net(
    input_shape: tuple[int, ...], n_outputs: int, width: int = 32, dense: int = 100
) -> nn.Module:
    """Conv width 5x5/2 'same' -> Conv 2 width 5x5/2 -> Conv 4 width 5x5/2 (Keras' 'valid')
    -> Flatten -> Dense `dense` ReLU -> Dense n_outputs, with Keras' initialisation
    (Glorot-uniform kernels, zero biases)."""
    channels = input_shape[0]
    trunk = nn.Sequential(
        nn.Conv2d(channels, width, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 5, stride=2),
        nn.ReLU(),
        nn.Conv2d(2 * width, 4 * width, 5, stride=2),
        nn.ReLU(),
        nn.Flatten(),
    )
    with torch.no_grad():
        features = trunk(torch.zeros(1, *input_shape)).shape[1]
    net = nn.Sequential(trunk, nn.Linear(features, dense), nn.ReLU(), nn.Linear(dense, n_outputs))
    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return net
