"""The fast-recipe ingredients (hpo.train.config fields, hpo.train.models, hpo.train.loop),
each against what it promises: whitened patches, identity init, the BN groups, averaged
weights, the schedules, alternating flips, test-time augmentation and small-data batch
scaling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hpo.search.spec import SpecError, parse_spec
from hpo.train.augment import flip_crop, hflip
from hpo.train.config import Config
from hpo.train.data import Split, TaskData
from hpo.train.loop import Trainer
from hpo.train.models import Whiten, build_model
from hpo.train.optim import Lookahead, lookahead_decay, lr_factor, make_optimizer

CPU = torch.device("cpu")
RECIPE = Config(
    stem="whiten",
    conv_channels=(8, 16),
    conv_kernel=(3, 3),
    convs_per_block=2,
    downsample="pool_first",
    global_pool="max",
    activation="gelu",
    batch_norm=True,
    bn_scale=False,
    bn_lr_scale=64.0,
    init="dirac",
    logit_scale=1 / 9,
    optimizer="sgd",
    lr=1.5,
    momentum=0.85,
    nesterov=True,
    weight_decay=1.33e-3,
    schedule="onecycle",
    lr_start=0.2,
    lr_peak_at=0.23,
    lr_end=0.07,
    label_smoothing=0.2,
    batch_size=32,
    epochs=2,
    augment=True,
    aug_pad=2,
    aug_flip="alternating",
    lookahead=True,
    tta=2,
)


def correlated_images(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Images in [0, 1] whose neighbouring pixels and channels are strongly correlated."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, 9, 9, generator=g)
    x = F.interpolate(base, size=(16, 16), mode="bilinear", align_corners=False)
    x = x.expand(n, 3, 16, 16) * torch.tensor([1.0, 0.8, 0.5]).view(1, 3, 1, 1)
    return (x + 0.05 * torch.rand(n, 3, 16, 16, generator=g)).clamp(0, 1)


def test_whitening_stem_decorrelates_patches() -> None:
    x = correlated_images()
    stem = Whiten(3, eps=1e-6)
    stem.fit(x)
    with torch.no_grad():
        out = stem(x)  # (n, 24, 15, 15): 12 whitened components, then their negatives
    assert torch.allclose(out[:, 12:], -out[:, :12], atol=1e-5)
    flat = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    assert flat.mean(0).abs().max() < 0.02  # the bias centres the patches (unit scale)
    cov = flat.T @ flat / flat.shape[0]
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=0.02)
    # raw pixels are far from that: neighbouring pixels are strongly correlated
    raw = x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    assert torch.corrcoef(raw.T.double())[0, 1] > 0.5
    assert not stem.conv.weight.requires_grad and stem.conv.bias.requires_grad


def test_pool_first_blocks_and_dirac_init() -> None:
    net = build_model(RECIPE.replace(stem="none"), (3, 16, 16), 10)
    kinds = [type(m).__name__ for m in net.trunk][:8]
    assert kinds == [
        "Conv2d", "MaxPool2d", "BatchNorm2d", "GELU", "Conv2d", "BatchNorm2d", "GELU", "Conv2d"
    ]  # fmt: skip
    first = net.trunk[0]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():  # the first in_channels filters pass the input through
        assert torch.allclose(first(x)[:, :3], x, atol=1e-6)
    assert net(x).shape == (2, 10)


def test_bn_shift_only_and_its_lr_group() -> None:
    net = build_model(RECIPE, (3, 16, 16), 10)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)
    opt = make_optimizer(RECIPE, net)
    main, bn = opt.param_groups
    assert {id(p) for p in bn["params"]} == {id(m.bias) for m in norms}
    assert bn["lr"] == pytest.approx(1.5 * 64) and main["lr"] == pytest.approx(1.5)
    # the same decay per step for both groups: lr x weight_decay
    assert bn["lr"] * bn["weight_decay"] == pytest.approx(main["lr"] * main["weight_decay"])
    frozen = net.stem().conv.weight
    assert all(p is not frozen for g in opt.param_groups for p in g["params"])


def test_onecycle_defaults_unchanged_and_recipe_endpoints() -> None:
    plain = Config(schedule="onecycle")
    total = 100
    for step in range(total):  # the triangular one-cycle as it was: 0 -> 1 at 25 % -> 0
        old = (step + 1) / 25 if step < 25 else max(0.0, (total - step) / 75)
        assert lr_factor(plain, step, total, 10) == pytest.approx(old)
    assert lr_factor(RECIPE, 0, total, 10) == pytest.approx(0.2 + 0.8 / 23)
    assert lr_factor(RECIPE, 22, total, 10) == pytest.approx(1.0)
    assert lr_factor(RECIPE, total, total, 10) == pytest.approx(0.07)


def test_lookahead_averages_and_resets_the_weights() -> None:
    assert lookahead_decay(0, 100) == 0.0
    assert lookahead_decay(100, 100) == pytest.approx(0.95**5)
    assert lookahead_decay(50, 100) == pytest.approx(0.95**5 / 8)
    net = nn.Linear(3, 2)
    avg = Lookahead(net)
    before = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    avg.update(0.25)  # average = 0.25 old + 0.75 new, and the weights are set to it
    assert torch.allclose(net.weight, before + 0.75)
    assert torch.allclose(avg.average[0], net.weight)


def test_given_flips_replace_random_ones() -> None:
    x = torch.rand(6, 3, 8, 8)
    flips = torch.tensor([True, False, True, True, False, False])
    out = flip_crop(x, pad=0, flips=flips)
    assert torch.equal(out, hflip(x, flips))
    # with a crop, the offsets still come from the generator: same seed, same result
    a = flip_crop(x, pad=2, generator=torch.Generator().manual_seed(1), flips=flips)
    b = flip_crop(x, pad=2, generator=torch.Generator().manual_seed(1), flips=flips)
    assert torch.equal(a, b)


def test_alternating_flips_mirror_every_image_on_the_next_epoch() -> None:
    config = RECIPE.replace(aug_pad=0, batch_size=4, stem="none")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8, generator=g)
    data = TaskData(
        Split(x, torch.arange(8) % 10), Split(x, torch.arange(8) % 10), "classification", 10
    )
    trainer = Trainer(config, data, device=CPU, augment=True)
    seen: dict[int, list[torch.Tensor]] = {1: [], 2: []}
    trainer.model.register_forward_pre_hook(
        lambda m, args: (
            seen[len(trainer.history) + 1].append(args[0].clone()) if m.training else None
        )
    )
    trainer.run_epoch()
    trainer.run_epoch()
    by_image = {}
    for epoch in (1, 2):  # batches are shuffled: match each input to its source image
        for batch in seen[epoch]:
            for img in batch:
                src = x.float().div(255)
                same = (src - img).flatten(1).abs().amax(1) < 1e-6
                mirrored = (src.flip(-1) - img).flatten(1).abs().amax(1) < 1e-6
                k = int(torch.nonzero(same | mirrored)[0])
                by_image.setdefault(k, []).append(bool(mirrored[k] and not same[k]))
    assert sorted(by_image) == list(range(8))
    assert all(len(v) == 2 and v[0] != v[1] for v in by_image.values())


def test_tta_averages_views_in_eval_mode_only() -> None:
    net = build_model(RECIPE.replace(stem="none", tta=1), (3, 16, 16), 10)
    x = torch.rand(4, 3, 16, 16)
    net.train()
    train_out = net(x)
    net.eval()
    with torch.no_grad():
        plain = net._logits(x)
        assert torch.allclose(net(x), 0.5 * (plain + net._logits(x.flip(-1))), atol=1e-6)
        net.tta = 2
        pad = F.pad(x, (1, 1, 1, 1), mode="reflect")
        views = [x, pad[..., :16, :16], pad[..., 2:, 2:]]
        m = [0.5 * (net._logits(v) + net._logits(v.flip(-1))) for v in views]
        assert torch.allclose(net(x), 0.5 * m[0] + 0.25 * (m[1] + m[2]), atol=1e-6)
    assert train_out.shape == (4, 10)


def test_small_data_scales_batch_and_sgd_lr() -> None:
    config = RECIPE.replace(batch_size=1024, min_steps_per_epoch=20)
    assert config.scaled_to(45_000) is config  # 44 steps: unchanged
    small = config.scaled_to(4_500)  # 5 steps at 1024 -> halve to 128 (36 steps)
    assert small.batch_size == 128 and small.lr == pytest.approx(1.5 / 8)
    assert math.ceil(4_500 / small.batch_size) >= 20
    assert config.replace(optimizer="adam", lr=1e-3).scaled_to(4_500).lr == 1e-3
    assert config.replace(min_steps_per_epoch=0).scaled_to(100) == config.replace(
        min_steps_per_epoch=0
    )
    assert config.scaled_to(10).batch_size == 16  # the floor


def test_recipe_trains_on_cpu() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 3, 16, 16), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (96,), generator=g)
    data = TaskData(Split(x, y), Split(x[:32], y[:32]), "classification", 10)
    # without weight averaging, which (as airbench's) still moves a frozen bias to its average
    config = RECIPE.replace(stem_bias_epochs=1, lookahead=False)
    trainer = Trainer(config, data, device=CPU, augment=True)
    bias = trainer.stem.conv.bias
    before = bias.detach().clone()
    trainer.run_epoch()  # epoch 1 <= stem_bias_epochs: the whitening bias trains
    trained = bias.detach().clone()
    assert bias.requires_grad and not torch.equal(before, trained)
    trainer.run_epoch()  # epoch 2: frozen where epoch 1 left it
    assert not bias.requires_grad and torch.equal(bias.detach(), trained)
    whole = Trainer(RECIPE, data, device=CPU, augment=True)  # every ingredient, averaging too
    for _ in range(RECIPE.epochs):
        metrics = whole.run_epoch()
    assert math.isfinite(metrics["train_loss"]) and 0.0 <= metrics["val_accuracy"] <= 1.0


def test_enqueue_outside_the_space_is_one_line(tmp_path) -> None:
    (tmp_path / "point.toml").write_text('task = "cifar10"\n[space]\nlr = 9.0\n')
    raw = {
        "task": "cifar10",
        "study": {"enqueue": "point.toml"},
        "space": {"lr": {"low": 1e-3, "high": 1.0, "log": True}},
    }
    with pytest.raises(SpecError, match="lr = 9.0 is outside"):
        parse_spec(raw, str(tmp_path / "search.toml"))
    (tmp_path / "point.toml").write_text('task = "cifar10"\n[space]\nlr = 0.5\n')
    assert parse_spec(raw, str(tmp_path / "search.toml")).enqueue == {"lr": 0.5}


def test_tta_only_at_the_last_epochs_validation() -> None:
    config = RECIPE.replace(stem="none", tta=2, epochs=2)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    data = TaskData(Split(x, y), Split(x[:16], y[:16]), "classification", 10)
    trainer = Trainer(config, data, device=CPU, augment=True)
    levels: list[tuple[int, int]] = []
    trainer.model.register_forward_pre_hook(
        lambda m, args: None if m.training else levels.append((len(trainer.history), m.tta))
    )
    trainer.run_epoch()
    trainer.run_epoch()
    assert {level for done, level in levels if done == 0} == {0}  # epoch 1: plain
    assert {level for done, level in levels if done == 1} == {2}  # the last: with tta
    assert trainer.model.tta == 2  # a saved model predicts as it was finally evaluated


def test_a_gpu_sized_trial_timeout_is_off_on_the_cpu() -> None:
    from hpo.study.options import Options
    from hpo.study.runner import StudyRunner as Runner
    from hpo.tasks import get_task

    raw = {"task": "box", "study": {"trial_timeout": 12, "trial_timeout_device": "cuda"}}
    spec = parse_spec(raw)
    lines: list[str] = []
    runner = Runner(get_task("box"), spec, Options(device="cpu"), lines.append)
    assert runner.spec.trial_timeout is None and "sized for a GPU" in lines[0]
    kept = Runner(get_task("box"), spec, Options(device="cpu", trial_timeout=5), print)
    assert kept.spec.trial_timeout == 12  # resolve_spec lays --trial-timeout over the spec
    assert (
        parse_spec({"task": "box", "study": {"trial_timeout": 12}}).trial_timeout_device == "any"
    )
    with pytest.raises(SpecError, match="trial_timeout_device"):
        parse_spec({"task": "box", "study": {"trial_timeout_device": "tpu"}})
