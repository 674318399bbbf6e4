"""The training loop: it learns, it is deterministic, it stops on NaN and on time."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import pytest
import torch

from hpo.tasks import TASKS
from hpo.tasks.pixel import pixel_position
from hpo.train.config import Config
from hpo.train.limits import WALL_GUARD, work_clock
from hpo.train.loop import FIRST_EPOCH_ALLOWANCE, TimeLimit, Trainer, train
from hpo.train.models import build_model
from hpo.train.optim import l1_thresholds, lr_factor, make_optimizer, shrink_l1
from hpo.util.outcomes import Diverged, OutOfTime

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def box_data():
    task = TASKS["box"]
    settings = task.settings({"n_train": 512, "n_val": 128, "image_size": 16, "square_size": 4})
    return task.load(settings, CPU)


def test_dense_net_learns_box_and_reports_every_epoch(box_data):
    seen = []
    config = Config(dense_units=(64,), lr=3e-3, epochs=5, batch_size=32)
    result = train(config, box_data, device=CPU, report=lambda e, m: seen.append((e, m)))
    assert [e for e, _ in seen] == [1, 2, 3, 4, 5]
    assert result.metrics["val_r2"] > 0.8  # R2 ~ 0 would be the mean
    for key in ("train_loss", "val_loss", "val_mse", "lr", "epoch_seconds", "images_per_second"):
        assert key in result.metrics


def test_same_seed_same_metric_on_cpu(box_data):
    config = Config(conv_channels=(4,), dense_units=(8,), epochs=2, batch_size=64)
    a = train(config, box_data, device=CPU, seed=3).metrics["val_mse"]
    b = train(config, box_data, device=CPU, seed=3).metrics["val_mse"]
    c = train(config, box_data, device=CPU, seed=4).metrics["val_mse"]
    assert a == b
    assert a != c


def test_nan_loss_stops_at_once(box_data):
    config = Config(dense_units=(32,), optimizer="sgd", lr=1e8, momentum=0.0, epochs=50)
    t0 = time.monotonic()
    with pytest.raises(Diverged, match="loss became"):
        train(config, box_data, device=CPU)
    assert time.monotonic() - t0 < 10  # not after 50 epochs


def test_deadline_raises_out_of_time_with_finished_epochs(box_data):
    config = Config(dense_units=(32,), epochs=10_000, batch_size=32)
    with pytest.raises(OutOfTime) as info:  # no time at all: stops in epoch 1
        train(config, box_data, device=CPU, time_limit=TimeLimit(0.0))
    assert info.value.history == []
    trainer = Trainer(config, box_data, device=CPU)  # no wall-clock race: one epoch, then due
    trainer.run_epoch()
    trainer.deadline = time.monotonic()
    with pytest.raises(OutOfTime, match="during epoch 2") as info:
        trainer.run_epoch()
    assert len(info.value.history) == 1


def test_a_gpu_time_limit_counts_from_the_first_epochs_end(box_data, monkeypatch):
    """On a GPU the first epoch pays one-off costs (CUDA's start-up): it has its own,
    larger allowance (FIRST_EPOCH_ALLOWANCE x the limit), and the limit starts at its end. On
    a CPU the limit counts from the start. The trainer's clock is a stand-in that moves only
    when the first epoch's start-up cost is paid, so a loaded machine cannot change the
    outcome."""
    import hpo.train.loop as trainer_module

    clock = {"now": 1000.0, "first_epoch_costs": 1.5}
    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(monotonic=lambda: clock["now"]))
    run_epoch = Trainer.run_epoch

    def run_epoch_slow_at_first(self):
        if not self.history:  # stands in for a first epoch's start-up cost
            clock["now"] += clock["first_epoch_costs"]
        return run_epoch(self)

    monkeypatch.setattr(Trainer, "run_epoch", run_epoch_slow_at_first)
    config = Config(dense_units=(16,), epochs=3, batch_size=64)
    gpu_like, cpu_like = TimeLimit(1.0, warm_up=True), TimeLimit(1.0)
    # the first epoch alone takes longer than the limit, and the trial still finishes
    result = train(config, box_data, device=CPU, time_limit=gpu_like)
    assert len(result.history) == 3
    with pytest.raises(OutOfTime, match="during epoch 1"):  # on a CPU: from the start
        train(config, box_data, device=CPU, time_limit=cpu_like)
    # past its allowance (3 x 1 s) the first epoch is stopped
    clock["first_epoch_costs"] = FIRST_EPOCH_ALLOWANCE * 1.0 + 0.2
    with pytest.raises(OutOfTime, match="during epoch 1"):
        train(config, box_data, device=CPU, time_limit=gpu_like)
    # and later epochs are held to the limit itself, from the first epoch's end
    clock["first_epoch_costs"] = 0.5
    run_epoch_later = Trainer.run_epoch

    def slow_second(self):
        if len(self.history) == 1:
            clock["now"] += 1.2  # over the 1 s limit
        return run_epoch_later(self)

    monkeypatch.setattr(Trainer, "run_epoch", slow_second)
    with pytest.raises(OutOfTime, match="during epoch 2"):
        train(config, box_data, device=CPU, time_limit=gpu_like)
    assert TimeLimit.on(torch.device("cuda"), 12) == TimeLimit(12, warm_up=True)
    on_cpu = TimeLimit.on(CPU, 12, workers=3)
    assert on_cpu.seconds == 12 and on_cpu.clock is not None and not on_cpu.warm_up
    assert on_cpu.guard == 12 * WALL_GUARD * 3 and TimeLimit.on(CPU, None) is None


def test_the_work_clock_does_not_run_while_the_process_waits():
    """A CPU budget is this process's CPU time over the cores: time the process spends
    waiting (the cores busy with other workers or jobs) is not charged to its trial."""
    clock = work_clock()
    before, wall = clock(), time.monotonic()
    time.sleep(0.3)
    assert clock() - before < 0.1 < time.monotonic() - wall
    x = 0.0
    for i in range(2_000_000):  # work moves it
        x += i * 0.5
    assert clock() > before


def test_a_cpu_budget_is_work_and_the_wall_guard_stops_a_hung_run(box_data, monkeypatch):
    """The wall clock flies (a machine shared three ways, an outage's retries) while the
    budget's clock barely moves: the run finishes; only the wall-clock guard stops it."""
    import hpo.train.loop as trainer_module

    wall = {"now": 0.0}

    def monotonic():
        wall["now"] += 10.0  # every reading, 10 s later
        return wall["now"]

    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(monotonic=monotonic))
    config = Config(dense_units=(16,), epochs=2, batch_size=64)
    work = {"now": 0.0}
    busy = TimeLimit(1.0, clock=lambda: work["now"])  # no guard: the work decides
    assert len(train(config, box_data, device=CPU, time_limit=busy).history) == 2
    guarded = TimeLimit(1.0, clock=lambda: work["now"], guard=50.0)
    with pytest.raises(OutOfTime, match="the wall clock ran out during epoch 1"):
        train(config, box_data, device=CPU, time_limit=guarded)


def test_report_can_stop_training(box_data):
    class Stop(Exception):
        pass

    def report(epoch, metrics):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(Config(epochs=10), box_data, device=CPU, report=report)


def test_box_original_collapses_to_the_mean():
    # docs/scenarios.md §1, checked at the task's real image size on a reduced sample.
    task = TASKS["box"]
    data = task.load(task.settings({"n_train": 2000, "n_val": 250}), CPU)
    result = train(task.original.replace(epochs=1), data, device=CPU)
    assert abs(result.metrics["val_r2"]) < 0.05 and result.metrics["val_pred_spread"] < 0.01
    fixed = train(task.original.replace(epochs=1, lr=1e-3), data, device=CPU)
    assert fixed.metrics["val_r2"] > 0.9  # same net, Adam 1e-3: solved in one epoch


def test_schedules():
    onecycle = Config(schedule="onecycle")
    factors = [lr_factor(onecycle, s, 100, 10) for s in range(100)]
    assert max(factors) == pytest.approx(1.0) and factors[-1] < 0.05
    assert factors.index(max(factors)) == 24
    cosine = Config(schedule="cosine", warmup_epochs=1)
    assert lr_factor(cosine, 0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(cosine, 99, 100, 10) < 0.01
    keras = Config(schedule="keras_decay", lr_decay=0.01)
    assert lr_factor(keras, 100, 1000, 10) == pytest.approx(0.5)
    assert all(math.isfinite(f) for f in factors)


def test_shrink_l1_is_a_soft_threshold():
    w = torch.tensor([[-1.0, -0.05, 0.05, 0.5]])
    shrink_l1([(w, False)], 0.1)
    assert torch.allclose(w, torch.tensor([[-0.9, 0.0, 0.0, 0.4]]))
    assert (w == 0).sum() == 2  # exact zeros, not small values


def test_shrink_l1_takes_per_weight_thresholds():
    w = torch.tensor([[-1.0, -0.05, 0.05, 0.5]])
    shrink_l1([(w, False)], [torch.tensor([[0.5, 0.01, 0.1, 0.1]])])
    assert torch.allclose(w, torch.tensor([[-0.5, -0.04, 0.0, 0.4]]))


def test_l1_threshold_is_relative_to_each_optimizers_own_step():
    net = build_model(Config(dense_units=(4,)), (3, 4, 4), 2)
    weights = net.l1_weights()
    x, y = torch.rand(8, 3, 4, 4), torch.arange(8) % 2
    for optimizer in ("sgd", "adam"):
        opt = make_optimizer(Config(optimizer=optimizer, lr=0.1), net)
        assert l1_thresholds(opt, weights, 0.5) == [pytest.approx(0.05)] * 2
    opt = make_optimizer(Config(optimizer="adadelta", lr=2.0), net)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
    thresholds = l1_thresholds(opt, weights, 0.5)
    for (w, _), t in zip(weights, thresholds, strict=True):
        step = (opt.state[w]["acc_delta"] + opt.param_groups[0]["eps"]).sqrt()
        assert torch.allclose(t, 2.0 * 0.5 * step)  # per weight, far below lr * l1 = 1.0
        assert t.max() < 0.01


def test_adadelta_with_l1_finds_the_pixel_on_centred_inputs():
    """With the shrink at lr * l1, Adadelta (steps ~1e-3 * lr) lost every weight: val 0.5."""
    task = TASKS["pixel"]
    settings = task.settings({"n_train_per_class": 300, "n_val_per_class": 100, "image_size": 16})
    data = task.load(settings, CPU)
    config = Config(
        input_norm="centred", optimizer="adadelta", lr=1.0, l1=0.6, batch_size=32, epochs=6
    )
    assert train(config, data, device=CPU).metrics["val_accuracy"] >= 0.95
    # unit inputs: every noise weight's gradient shares the sign of the batch error, so the
    # net swings between the two classes (val 0.5 / 1.0 from epoch to epoch)
    unit = train(config.replace(input_norm="unit"), data, device=CPU)
    assert min(h["val_accuracy"] for h in unit.history) <= 0.6


def test_shrink_l1_before_batch_norm_keeps_each_units_norm():
    """Batch norm undoes a unit's scale: there the step sparsifies, it does not shrink."""
    w = torch.tensor([[-1.0, -0.05, 0.05, 0.5], [0.02, -0.03, 0.0, 0.01]])
    norms = w.norm(dim=1)
    shrink_l1([(w, True)], 0.1)
    assert (w[0] == 0).sum() == 2 and torch.allclose(w[0].norm(), norms[0])
    assert torch.allclose(w[0, 0] / w[0, 3], torch.tensor(-0.9 / 0.4))  # shrunk, then rescaled
    assert (w[1] == 0).all()  # every weight under the threshold: the unit goes to zero


def test_l1_weights_know_which_layers_batch_norm_follows():
    net = build_model(Config(conv_channels=(4,), dense_units=(8,), batch_norm=True), (3, 8, 8), 2)
    assert [normalised for _, normalised in net.l1_weights()] == [True, True, False]
    plain = build_model(Config(dense_units=(8,)), (3, 8, 8), 2)
    assert [normalised for _, normalised in plain.l1_weights()] == [False, False]


def test_l1_keeps_the_one_informative_pixel():
    """pixel: a decoupled L1 step zeroes the noise weights and keeps the class pixel."""
    task = TASKS["pixel"]
    settings = task.settings({"n_train_per_class": 300, "n_val_per_class": 100, "image_size": 16})
    data = task.load(settings, CPU)
    config = Config(l1=0.5, lr=3e-3, batch_size=32, epochs=6)
    result = train(config, data, device=CPU, keep_model=True)
    assert result.metrics["val_accuracy"] >= 0.95
    weight = result.model.l1_weights()[0][0]  # (2 classes, 3 * 16 * 16 inputs)
    assert weight.shape == (2, 3 * 16 * 16)
    used = (weight != 0).any(dim=0).reshape(3, 16, 16).any(dim=0)  # pixels with a weight
    row, col = pixel_position(settings)
    assert used[row, col]
    assert used.sum() <= 3  # the class pixel, and at most a couple of stragglers
    plain = train(config.replace(l1=0.0), data, device=CPU, keep_model=True)
    assert (plain.model.l1_weights()[0][0] != 0).all()  # without it: every weight in use


def test_grad_clip_bounds_every_step(box_data):
    """A searched knob added as one row of hpo.search.space.KNOBS plus the code that uses it:
    with the gradients' norm clipped to c, plain SGD at lr 1 moves the weights by at most c a
    step, where lr 1e3 without it diverges."""
    config = Config(dense_units=(16,), optimizer="sgd", momentum=0.0, lr=1.0, epochs=1)
    trainer = Trainer(config.replace(grad_clip=1e-3), box_data, device=CPU)
    before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
    trainer.run_epoch()
    after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    assert 0 < (after - before).norm() <= 1e-3 * trainer.steps_per_epoch * (1 + 1e-4)
    with pytest.raises(Diverged):
        train(config.replace(lr=1e3, epochs=3), box_data, device=CPU)
    assert math.isfinite(
        train(config.replace(lr=1e3, grad_clip=1e-3), box_data, device=CPU).metrics["val_mse"]
    )
    with pytest.raises(ValueError, match="grad_clip must be >= 0"):
        config.replace(grad_clip=-1.0)
