"""The ablation behind `hpo diagnose`: on a tiny task whose fixing knob is known by
construction (a dense net on box whose Adam lr of 1.0 kills it), it names that knob."""

from __future__ import annotations

import torch

from hpo.diagnose import ablation
from hpo.diagnose import changes as knobs
from hpo.diagnose.runs import Run, Stopped
from hpo.search.spec import Param
from hpo.tasks import get_task
from hpo.train.config import Config

TINY = {"n_train": 512, "n_val": 128, "image_size": 16, "square_size": 4}
# Measured: this net at Adam lr 1.0 is dead (constant outputs) on seeds 0-2; at lr 1e-2 or
# 1e-3 it reaches val R2 >= 0.95 by epoch 2 on each of them; a sigmoid needs 6 epochs.
BROKEN = Config(dense_units=(32,), optimizer="adam", lr=1.0, batch_size=32, epochs=4)
SPACE = {
    "lr": Param("lr", low=1e-3, high=1.0, log=True),
    "batch_size": Param("batch_size", choices=(16, 32, 64)),
    "activation": Param("activation", choices=("relu", "sigmoid")),
}


def runner(**kw) -> ablation.Runner:
    task = get_task("box")
    settings = task.settings(TINY)
    data = task.load(settings, torch.device("cpu"))
    return ablation.Runner(task, data, settings, torch.device("cpu"), 4, lambda s: None, **kw)


def test_the_ablation_names_the_knob_that_fixes_it():
    r = runner(disk_cache=False)
    changes = knobs.single_changes(BROKEN, SPACE)
    assert changes[0].knob == "lr" and changes[0].value == 0.1  # nearest the original first
    out = ablation.forward(r, BROKEN, changes, [0, 1, 2], screen_all=False, original_value=None)
    fix = out["smallest"]
    assert fix is not None and [c["knob"] for c in fix["changes"]] == ["lr"]
    assert fix["result"]["solved"] == 3 and fix["result"]["success_value"] >= 0.9
    assert fix["changes"][0]["value"] in (0.01, 0.001)
    assert out["singles"][0]["solved"] == 0  # lr 0.1 is not enough; 0.01 is next
    assert out["screened"] == 2 < out["of"]  # the screen stops at the first fix
    # solved runs stop once solved, dead ones at once
    rows = {row["change"]: row for row in out["singles"]}
    assert max(rows[fix["changes"][0]["change"]]["epochs"]) < 4


def test_the_reverse_finds_the_necessary_change():
    r = runner(disk_cache=False)
    best = BROKEN.replace(lr=1e-3, batch_size=16)
    rows = ablation.backward(r, best, BROKEN, [0, 1])
    by_knob = {row["knob"]: row for row in rows}
    assert set(by_knob) == {"lr", "batch_size"}
    assert by_knob["lr"]["solved"] == 0 and by_knob["lr"]["seeds_run"] == 2  # necessary
    assert by_knob["batch_size"]["solved"] == 1  # not necessary (screened on one seed)


def test_representative_values_and_stops():
    assert knobs.representative(Param("lr", low=1e-5, high=1.0, log=True)) == [
        1e-5,
        1e-4,
        1e-3,
        1e-2,
        0.1,
        1.0,
    ]
    assert knobs.representative(Param("depth", low=0, high=3)) == [0, 1, 2, 3]
    assert knobs.representative(Param("dropout", low=0.0, high=0.5)) == [0.0, 0.2, 0.5]
    success = ("val_r2", 0.9)
    dead = [{"val_r2": 0.0, "val_pred_spread": 0.0}]
    assert "dead" in ablation.hopeless(dead, 10, success)
    slow = [{"val_r2": v, "val_pred_spread": 1.0} for v in (0.1, 0.12, 0.13, 0.14, 0.15)]
    assert ablation.hopeless(slow, 10, success)  # 0.15 + 2 * 0.02 * 5 < 0.9
    rising = [{"val_r2": v, "val_pred_spread": 1.0} for v in (0.1, 0.3, 0.5, 0.6, 0.7)]
    assert not ablation.hopeless(rising, 10, success)
    assert not ablation.hopeless(slow[:2], 10, success)  # too early to tell


def test_reported_failure_is_checked_against_the_replay():
    runs = [Run(0, 15, {"val_accuracy": 0.77}, False, "ok", Stopped.BUDGET)]
    cifar = ablation.reproduced("cifar10", runs)
    assert cifar["seeds"] == 0 and "60 %" in cifar["reported"]
    dead = Run(0, 1, {}, False, "collapsed_to_mean", Stopped.HOPELESS)
    assert ablation.reproduced("box", [dead])["seeds"]


def test_the_changes_the_search_made_are_screened_first():
    plain = [(c.knob, c.value) for c in knobs.single_changes(BROKEN, SPACE)]
    assert plain[0] == ("lr", 0.1) and plain.index(("activation", "sigmoid")) > 3
    best = BROKEN.replace(activation="sigmoid", batch_size=16)
    toward = [(c.knob, c.value) for c in knobs.single_changes(BROKEN, SPACE, toward=best)]
    # the best config's value of each knob it sets otherwise comes first, in the usual order
    assert toward[:3] == [("batch_size", 16), ("activation", "sigmoid"), ("lr", 0.1)]
    assert sorted(toward, key=str) == sorted(plain, key=str)  # the same changes, reordered
    best = BROKEN.replace(lr=0.003)  # a value between the screened decades is tried too
    assert knobs.single_changes(BROKEN, SPACE, toward=best)[0].value == 0.003
    unchanged = knobs.single_changes(BROKEN, SPACE, toward=BROKEN)  # nothing to go toward
    assert unchanged == knobs.single_changes(BROKEN, SPACE)
