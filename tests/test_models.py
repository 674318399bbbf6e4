"""Networks built from configs: the users' originals layer for layer, init, constraints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hpo.tasks import TASKS
from hpo.train.config import Config
from hpo.train.models import build_model, count_parameters


def test_box_original_matches_the_keras_model():
    net = build_model(TASKS["box"].original, (3, 64, 64), 2)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (32, (5, 5), (2, 2)),
        (64, (5, 5), (2, 2)),
        (128, (5, 5), (2, 2)),
    ]
    # 'same' then two 'valid' convs: 64 -> 32 -> 14 -> 5, so Flatten gives 5*5*128 features
    dense = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(3200, 100), (100, 2)]
    assert all(
        float(m.bias.detach().abs().sum()) == 0 for m in convs + dense
    )  # Keras: zero biases
    assert net(torch.zeros(4, 3, 64, 64)).shape == (4, 2)


def test_pixel_original_is_a_per_pixel_dense_layer_with_three_outputs():
    net = build_model(TASKS["pixel"].original, (3, 224, 224), 2)
    conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert conv.kernel_size == (1, 1) and conv.out_channels == 112
    assert any(isinstance(m, nn.Dropout) and m.p == 0.4 for m in net.modules())
    out = next(m for m in net.modules() if isinstance(m, nn.Linear))
    assert (out.in_features, out.out_features) == (224 * 224 * 112, 3)


def test_glorot_uniform_bounds():
    config = Config(dense_units=(50,), init="glorot")
    net = build_model(config, (1, 10, 10), 2)
    first = net.head[0]
    bound = (6 / (100 + 50)) ** 0.5
    largest = float(first.weight.detach().abs().max())
    assert 0.8 * bound < largest <= bound


def test_max_norm_caps_each_hidden_unit():
    net = build_model(Config(dense_units=(16,), max_norm=3.0), (1, 8, 8), 2)
    with torch.no_grad():
        net.head[0].weight.mul_(100)
    net.apply_constraints()
    norms = net.head[0].weight.detach().norm(dim=1)
    assert float(norms.max()) <= 3.0 + 1e-4


def test_dense_only_and_residual_nets_run():
    for config in [
        Config(),
        Config(conv_channels=(8, 16), residual=True, batch_norm=True, downsample="pool"),
        Config(conv_channels=(8,), global_pool="max", dense_units=(4,), activation="gelu"),
    ]:
        net = build_model(config, (3, 16, 16), 10)
        assert net(torch.rand(2, 3, 16, 16)).shape == (2, 10)
        assert count_parameters(net) > 0


def test_params_are_flat_and_stable():
    params = Config(conv_channels=(8, 16), conv_kernel=(3, 5), dense_units=(32,)).params()
    assert params["depth"] == 2 and params["conv_channels_1"] == 16
    assert params["conv_kernel_1"] == 5 and params["dense_layers"] == 1
    assert params["dense_units_0"] == 32
    assert all(not isinstance(v, tuple | list) for v in params.values())


def test_centred_inputs_map_unit_pixels_to_minus_one_one_inside_the_net():
    x = torch.rand(2, 3, 8, 8)
    unit = build_model(Config(), (3, 8, 8), 2)
    centred = build_model(Config(input_norm="centred"), (3, 8, 8), 2)
    centred.load_state_dict(unit.state_dict())  # no parameters of its own: same weights fit
    assert torch.allclose(centred.trunk(x), x.flatten(1) * 2 - 1)  # dense-only trunk
    assert torch.allclose(unit.trunk(x), x.flatten(1))
    assert torch.allclose(centred(x), unit(x * 2 - 1))
    assert not torch.allclose(centred(x), unit(x))
    with pytest.raises(ValueError, match="input_norm must be one of unit, centred"):
        Config(input_norm="standard").checked()
