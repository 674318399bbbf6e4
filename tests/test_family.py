"""A user's own PyTorch net (issue 34): `--original-model` replays it as the original and
`--model` searches its family (its SPACE knobs with hpo's training knobs), through hpo's loop,
MLflow and `hpo train` unchanged; a factory that cannot be imported, raises or gives the wrong
shape is one line and exit 2, checked before any trial."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from hpo.search.family import family_space, load_factory, with_model
from hpo.search.space import suggest
from hpo.search.spec import parse_spec
from hpo.train.config import Config
from hpo.util.errors import UserError

from .conftest import ROOT, cli, write_spec


def hpo_process(*args: str, cwd: Path):
    """A Python script in a fresh interpreter, hpo importable from this checkout."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


BOX_NET = f"{ROOT / 'examples' / 'box_net.py'}:box_net"
# the box user's data at a size that trains in seconds; their net at 32x32 still collapses
SMALL_BOX = TINY = ("--data", "n_train=1024", "--data", "n_val=256", "--data", "n_test=256",
                    "--data", "image_size=32", "--storage", "memory")  # fmt: skip

NETS = """
from torch import nn

def mlp(input_shape, n_outputs, hidden=8, dropout=0.0):
    n = 1
    for d in input_shape:
        n *= d
    return nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, n_outputs))
mlp.SPACE = {"hidden": {"low": 4, "high": 16}}

def wrong_shape(input_shape, n_outputs):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(n_outputs + 1))

def raises(input_shape, n_outputs):
    raise RuntimeError("no GPU here")

def not_a_module(input_shape, n_outputs):
    return 42

def clashes(input_shape, n_outputs, lr=0.1):
    return nn.Linear(1, 1)
clashes.SPACE = {"lr": {"low": 0.1, "high": 1.0}}
"""


@pytest.fixture
def nets(scratch: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """mynets.py in the working directory, imported afresh by each test that names it."""
    (scratch / "mynets.py").write_text(textwrap.dedent(NETS))
    monkeypatch.delitem(sys.modules, "mynets", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield "mynets"
    sys.modules.pop("mynets", None)


def test_a_factory_s_space_is_its_own_and_dropout_is_searched_where_it_takes_one(nets):
    space = family_space(load_factory("mynets:mlp"), "mynets:mlp")
    assert set(space) == {"hidden", "dropout"}
    assert (space["hidden"].low, space["hidden"].high) == (4, 16)
    assert (space["dropout"].low, space["dropout"].high) == (0.0, 0.5)


def test_the_family_replaces_hpo_s_architecture_and_keeps_its_training_knobs(nets):
    spec = parse_spec(
        {
            "task": "box",
            "space": {
                "depth": {"low": 0, "high": 2},
                "lr": {"low": 1e-4, "high": 1e-1, "log": True},
                "optimizer": ["sgd", "adam"],
            },
        }  # fmt: skip
    )
    family, line = with_model(spec, "mynets:mlp")
    assert set(family.space) == {"lr", "optimizer"} and "depth" in line
    trial = optuna.trial.FixedTrial({"lr": 0.01, "optimizer": "sgd", "hidden": 5, "dropout": 0.2})
    config = suggest(trial, family, Config.from_dict(family.base))
    assert config.model == "mynets:mlp" and dict(config.model_params) == {
        "hidden": 5,
        "dropout": 0.2,
    }
    assert (config.lr, config.optimizer) == (0.01, "sgd")
    again = Config.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and config.params()["hidden"] == 5


def test_a_spec_file_searches_a_factory_s_knobs_given_in_its_space(nets, scratch):
    spec = parse_spec(
        {
            "task": "box",
            "base": {"model": "mynets:mlp"},
            "space": {"hidden": [6, 7], "lr": {"low": 1e-3, "high": 1e-2}},
        }  # fmt: skip
    )
    assert spec.model_table == {"hidden": [6, 7]} and "lr" in spec.space
    family, _ = with_model(spec, spec.base["model"], spec.model_table)
    assert family.model_space["hidden"].choices == (6, 7) and "lr" in family.space


@pytest.mark.parametrize(
    "ref, words",
    [
        ("nowhere:mlp", "no module named 'nowhere'"),
        ("mynets:absent", "has no callable 'absent'"),
        ("mynets", "give it as module:factory"),
        ("mynets:clashes", "has the name of one of hpo's own"),
    ],
)
def test_a_factory_that_cannot_be_used_is_one_line(nets, ref, words):
    with pytest.raises(UserError, match=words):
        with_model(parse_spec({"task": "box"}), ref)


@pytest.mark.parametrize(
    "flag, ref, words",
    [
        ("--model", "mynets:wrong_shape", "it gives (4, 3) on a batch of 4, not (4, 2)"),
        ("--model", "mynets:raises", "building it failed: RuntimeError: no GPU here"),
        ("--original-model", "mynets:not_a_module", "returned a int, not an nn.Module"),
        ("--original-model", "nowhere.py:f", "no such file: nowhere.py"),
    ],
)
def test_a_bad_factory_stops_the_study_before_any_trial(nets, flag, ref, words):
    ran = cli("study", "box", "--trials", "1", *TINY, "--no-baseline", flag, ref)
    assert ran.returncode == 2, ran.stderr
    errors = [s for s in ran.stderr.splitlines() if s.startswith("hpo: error")]
    assert len(errors) == 1 and words in errors[0], ran.stderr
    assert "Traceback" not in ran.stderr and "trial 0" not in ran.stderr


def test_the_users_box_net_collapses_as_the_original_and_its_searched_family_fixes_it(
    scratch, tracking_uri
):
    """The box user's Keras net as a module: at its own Adam lr 0.01 it predicts the mean
    (R² ~ 0, docs/scenarios.md §1); searching its family with hpo's training knobs finds one
    that locates the square. Then `hpo train` retrains the best and registers it."""
    spec = write_spec(
        scratch / "family.toml",
        f"""
        task = "box"
        [study]
        sampler = "tpe"
        pruner = "none"
        epochs = 2
        original_epochs = 1
        n_startup_trials = 4
        [data]
        n_train = 2000
        n_val = 250
        n_test = 250
        [base]
        model = "{BOX_NET}"
        [space]
        width = [8, 16]
        optimizer = ["adam"]
        lr = {{ low = 3e-4, high = 3e-3, log = true }}
        batch_size = [32, 64]
        """,
    )  # the real image size (64): at 32 the user's net does not always collapse
    ran = cli("study", "box", "--trials", "3", "--seed", "0", "--spec", str(spec),
              "--original-model", BOX_NET, "--study-name", "mine",
              "--tracking-uri", tracking_uri)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    report = json.loads(cli("report", "mine", "--format", "json").stdout)
    original = report["original"]
    assert abs(original["val_r2"]) < 0.05, original  # the collapse, replayed
    best = report["best"]
    assert best["metrics"]["val_r2"] > 0.9, best
    assert best["params"]["width"] in (8, 16)
    assert report["original_replay"]["diagnosis"] == "collapsed_to_mean", report["original_replay"]
    final = cli("train", "mine", "--best", "--finalists", "0", "--tracking-uri", tracking_uri)
    assert final.returncode == 0, final.stderr
    assert "test_r2" in final.stdout and "registered" in (final.stdout + final.stderr)


def test_the_notebook_sized_example_runs_from_python_at_smoke_size(scratch):
    """examples/own_model.py: arrays through hpo.Task.from_arrays, the user's CNN searched
    (model=) and replayed (original_model=) from hpo.run, its result read back."""
    ran = hpo_process(str(ROOT / "examples" / "own_model.py"), "--smoke", cwd=scratch)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "best val accuracy" in ran.stdout and "'channels'" in ran.stdout, ran.stdout
    assert "small_cnn(" in ran.stdout + ran.stderr and "pca_logistic_regression" in ran.stdout
