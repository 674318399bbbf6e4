"""Spec files: the shipped ones load; every kind of mistake names itself in one line."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hpo.search.space import suggest
from hpo.search.spec import SpecError, load_spec, parse_spec
from hpo.tasks import TASKS
from hpo.train.config import Config

from .conftest import ROOT


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_specs_load_and_sample(path: Path):
    spec = load_spec(path)
    assert spec.task in TASKS
    trial = optuna.create_study().ask()
    config = suggest(trial, spec, Config())
    assert config.epochs == spec.epochs


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"task": "box", "bogus": 1}, "unknown top-level key(s): bogus"),
        ({}, "'task' must be given"),
        ({"task": "box", "study": {"sampler": "magic"}}, "sampler must be one of"),
        ({"task": "box", "study": {"epochs": 0}}, "epochs must be a positive integer"),
        ({"task": "box", "study": {"speed": 1}}, "[study] unknown key(s): speed"),
        ({"task": "box", "study": {"local_moves": 1.5}}, "local_moves must be a share between"),
        ({"task": "box", "study": {"random_share": -0.1}}, "random_share must be a share between"),
        ({"task": "box", "study": {"local_moves": True}}, "local_moves must be a share between"),
        ({"task": "box", "study": {"prune_local_moves": 1}}, "prune_local_moves must be true or"),
        ({"task": "box", "space": {"lr": {"low": 0, "high": 1, "log": True}}}, "log range needs"),
        ({"task": "box", "space": {"lr": {"low": 1.0, "high": 0.1}}}, "must not exceed"),
        ({"task": "box", "space": {"colour": ["red"]}}, "unknown parameter 'colour'"),
        ({"task": "box", "space": {"batch_norm": ["yes"]}}, "is not a bool"),
        ({"task": "box", "space": {"optimizer": []}}, "choice list is empty"),
        ({"task": "box", "space": {"depth": {"low": 0}}}, "a range is"),
        ({"task": "box", "base": {"optimizer": "lbfgs"}}, "optimizer must be one of"),
        ({"task": "box", "base": {"l1": -0.1}}, "l1 must be >= 0"),
        ({"task": "box", "space": {"optimizer": ["sgd", "lbfgs"]}}, "optimizer must be one of"),
        ({"task": "box", "space": {"input_norm": "standard"}}, "input_norm must be one of"),
    ],
)
def test_bad_specs_name_the_problem(raw, message):
    with pytest.raises(SpecError) as info:
        parse_spec(raw, "x.toml")
    text = str(info.value)
    assert text.startswith("x.toml: ") and message in text and "\n" not in text


def test_missing_and_malformed_files(tmp_path: Path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("task = box\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)


def test_space_is_conditional_and_names_are_stable():
    spec = parse_spec(
        {
            "task": "box",
            "space": {
                "depth": {"low": 0, "high": 3},
                "conv_channels": {"low": 4, "high": 64, "log": True},
                "dense_layers": {"low": 0, "high": 2},
                "dense_units": {"low": 8, "high": 32},
                "optimizer": ["sgd", "adam"],
                "lr": {"low": 1e-5, "high": 1.0, "log": True},
                "momentum": {"low": 0.0, "high": 0.99},
            },
        }
    )
    fixed = optuna.trial.FixedTrial(
        {
            "depth": 2,
            "conv_channels_0": 8,
            "conv_channels_1": 16,
            "dense_layers": 0,
            "optimizer": "adam",
            "lr": 0.01,
        }
    )
    config = suggest(fixed, spec, Config())
    assert config.conv_channels == (8, 16) and config.dense_units == () and config.lr == 0.01
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        config = suggest(trial, spec, Config())
        names = set(trial.params)
        assert {f"conv_channels_{i}" for i in range(config.params()["depth"])} <= names
        assert f"conv_channels_{len(config.conv_channels)}" not in names
        assert ("momentum" in names) == (config.optimizer == "sgd")
        study.tell(trial, 0.0)


def test_a_knob_of_the_table_is_searched_validated_and_listed():
    """grad_clip: one row of hpo.search.space.KNOBS; the spec takes it, a trial draws it, the
    ablation offers it, `hpo study --help` lists it."""
    from hpo.diagnose.changes import single_changes
    from hpo.search.space import help_lines

    spec = parse_spec({"task": "box", "space": {"grad_clip": {"low": 0.1, "high": 10.0}}})
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    config = suggest(trial, spec, Config())
    assert 0.1 <= config.grad_clip <= 10.0 == trial.distributions["grad_clip"].high
    assert any(c.knob == "grad_clip" for c in single_changes(Config(), spec.space))
    assert any(line.startswith("grad_clip (float): ") for line in help_lines())
    with pytest.raises(SpecError, match="grad_clip must be >= 0"):
        parse_spec({"task": "box", "space": {"grad_clip": {"low": -1.0, "high": 1.0}}})
