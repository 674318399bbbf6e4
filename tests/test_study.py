"""Studies through the Python API, on every storage in use here (in-memory, SQLite file)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from hpo.report.summary import format_summary
from hpo.study.options import Options
from hpo.study.queries import cut_short
from hpo.study.session import run
from hpo.util.errors import UserError
from hpo.util.outcomes import Outcome

from .conftest import write_spec


@pytest.fixture(params=["memory", "sqlite"])
def storage(request, scratch: Path) -> str:
    return "memory" if request.param == "memory" else f"sqlite:///{scratch / 'hpo.db'}"


def options(spec: Path, storage: str, **kw) -> Options:
    base = dict(trials=4, storage=storage, spec=str(spec), seed=0, device="cpu", tracking=False)
    return Options(**(base | kw))


def test_study_reaches_its_budget_and_summarises(tiny_spec, storage):
    lines: list[str] = []
    summary = run("box", options(tiny_spec, storage), lines.append)
    assert summary.finished == 4
    assert summary.best is not None and summary.best["state"] == "COMPLETE"
    assert "linear_regression" in summary.baselines
    assert summary.original.epochs >= 1
    assert any("trial 0 (1/4)" in line for line in lines)
    assert any("best so far" in line for line in lines)


def test_local_moves_say_where_they_come_from(scratch):
    spec = write_spec(
        scratch / "moves.toml", n_startup_trials="local_moves = 1.0\nn_startup_trials"
    )
    lines: list[str] = []
    options_ = options(spec, "memory", trials=4, original=False, baselines=False)
    summary = run("box", options_, lines.append)
    assert any("sampler random + local moves 1, pruner none" in line for line in lines)
    moves = [line for line in lines if line.startswith("  a local move: trial ")]
    assert len(moves) == 3, lines  # every trial after the first (complete: no pruner here)
    assert all(" -> " in line for line in moves)
    text = format_summary(summary)  # the best trial's origin, where a move found it
    assert (summary.best["local_move"] is None) == (summary.best["number"] == 0)
    if summary.best["number"]:
        assert f"found by a local move: {summary.best['local_move']}" in text
    else:
        assert "found by a local move" not in text


@pytest.mark.parametrize("prune_moves", [False, True])
def test_local_moves_are_not_pruned_unless_the_spec_says_so(scratch, monkeypatch, prune_moves):
    """A local move is after differences its early epochs cannot show: the pruner is asked
    (its values stand at the rungs for the others) but does not stop it."""
    monkeypatch.setattr(  # a pruner that wants every trial after the first stopped
        optuna.trial.Trial, "should_prune", lambda self: self.number > 0
    )
    spec = write_spec(
        scratch / "moves.toml",
        n_startup_trials="local_moves = 1.0\n"
        + ("prune_local_moves = true\n" if prune_moves else "")
        + "n_startup_trials",
    )
    url = f"sqlite:///{scratch / 'hpo.db'}"
    summary = run("box", options(spec, url, trials=4, original=False, baselines=False), print)
    assert summary.finished == 4
    trials = optuna.load_study(study_name="box", storage=url).trials
    moves = [t for t in trials if t.user_attrs.get("local_move")]
    assert len(moves) == 3  # every trial after the first
    pruned = {t.state == optuna.trial.TrialState.PRUNED for t in moves}
    assert pruned == {prune_moves}


def test_sqlite_study_resumes_to_a_larger_budget(tiny_spec, scratch):
    url = f"sqlite:///{scratch / 'hpo.db'}"
    run("box", options(tiny_spec, url, trials=2, original=False, baselines=False), print)
    summary = run("box", options(tiny_spec, url, trials=5, original=False, baselines=False), print)
    assert summary.finished == 5
    study = optuna.load_study(study_name="box", storage=url)
    assert len(study.trials) == 5  # resumed: 2 + 3, nothing re-run


def test_diverging_trials_fail_with_their_reason_and_the_study_goes_on(scratch):
    url = f"sqlite:///{scratch / 'hpo.db'}"
    spec = write_spec(
        scratch / "nan.toml",
        **{
            'optimizer = ["sgd", "adam"]': 'optimizer = "sgd"\nmomentum = 0.0',
            "lr = { low = 1e-3, high = 1e-1, log = true }": "lr = [1e9, 0.01]",
        },
    )
    summary = run("box", options(spec, url, trials=6, original=False), print)
    assert summary.finished == 6
    trials = optuna.load_study(study_name="box", storage=url).trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed, "lr 1e9 must have been sampled at least once with seed 0"
    assert all("loss became" in t.user_attrs["fail_reason"] for t in failed)
    assert all(t.user_attrs["outcome"] == Outcome.DIVERGED for t in failed)
    assert all(t.user_attrs["diagnosis"] == "diverged" for t in failed)
    assert all(t.params["lr"] == 1e9 for t in failed)


def test_trial_timeout_prunes_with_reason(scratch, monkeypatch):
    import hpo.train.loop as trainer_module

    # the trainer's clock moves 10 ms each time it is read (a few times a step), whatever the
    # machine's load: epochs finish, and the 1 s budget runs out after a few of them
    clock = {"now": 0.0}

    def tick() -> float:
        clock["now"] += 0.01
        return clock["now"]

    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(monotonic=tick))
    # no early guess (tests below): the trial runs into its budget, a few epochs done
    monkeypatch.setattr("hpo.train.limits.PACE_MARGIN", 1e9)
    url = f"sqlite:///{scratch / 'hpo.db'}"
    spec = write_spec(scratch / "slow.toml", **{"epochs = 2": "epochs = 100000"})
    summary = run("box", options(spec, url, trials=1, trial_timeout=1.0, original=False), print)
    assert summary.finished == 1
    trial = optuna.load_study(study_name="box", storage=url).trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert "trial_timeout" in trial.user_attrs["prune_reason"]
    assert trial.user_attrs["outcome"] == Outcome.OUT_OF_TIME
    # tiny data: epochs finished before the budget ran out, so the cut trial has a value, and
    # with no complete trial the summary names it as what a larger budget would let finish
    assert trial.intermediate_values and trial.value is not None
    assert summary.best is None
    assert summary.cut["number"] == 0 and summary.cut["epochs"] == len(trial.intermediate_values)
    assert "cut short trial 0" in format_summary(summary)


def test_a_trial_that_cannot_finish_in_its_budget_is_stopped_in_its_first_steps(
    scratch, monkeypatch
):
    """At the pace of its first steps, 100,000 epochs cannot fit in 1 s: the trial is stopped
    in epoch 1 with that reason, not when the second is up (the clock moves 10 ms a read)."""
    import hpo.train.loop as trainer_module

    clock = {"now": 0.0}

    def tick() -> float:
        clock["now"] += 0.01
        return clock["now"]

    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(monotonic=tick))
    url = f"sqlite:///{scratch / 'hpo.db'}"
    spec = write_spec(scratch / "slow.toml", **{"epochs = 2": "epochs = 100000"})
    run("box", options(spec, url, trials=1, trial_timeout=1.0, original=False), print)
    trial = optuna.load_study(study_name="box", storage=url).trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED and not trial.intermediate_values
    reason = trial.user_attrs["prune_reason"]
    assert reason.startswith("trial_timeout 1 s: time budget would run out"), reason
    assert clock["now"] < 1.0  # stopped before the budget was spent


def test_a_cut_trial_is_named_only_when_it_beats_every_complete_one():
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.9))

    def pruned(value: float, outcome: Outcome):
        return optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED,
            value=value,
            intermediate_values={1: value},
            user_attrs={"outcome": outcome.value},
        )

    study.add_trial(pruned(0.95, Outcome.PRUNED))  # by the pruner, not a time-budget stop
    study.add_trial(pruned(0.8, Outcome.OUT_OF_TIME))
    assert cut_short(study) is None
    study.add_trial(pruned(1.0, Outcome.OUT_OF_TIME))
    assert cut_short(study).number == 3


def test_a_study_of_another_task_is_refused(tiny_spec, scratch):
    url = f"sqlite:///{scratch / 'hpo.db'}"
    run("box", options(tiny_spec, url, trials=1, original=False, baselines=False), print)
    pixel = write_spec(scratch / "p.toml", 'task = "pixel"\n[data]\nimage_size = 8\n')
    with pytest.raises(UserError, match="belongs to task 'box'"):
        run("pixel", options(pixel, url, trials=1, study_name="box"), print)


def test_different_data_settings_are_refused_on_resume(tiny_spec, scratch):
    url = f"sqlite:///{scratch / 'hpo.db'}"
    run("box", options(tiny_spec, url, trials=1, original=False, baselines=False), print)
    with pytest.raises(UserError, match="data settings"):
        run("box", options(tiny_spec, url, trials=2, data={"image_size": 20}), print)


def test_time_left_from_the_runs_own_pace():
    from hpo.study.progress import time_left

    assert time_left(37, 200, 37, 111.0, None) == "37/200 finished, ~8 min left"  # 163 x 3 s
    assert time_left(37, 200, 7, 70.0, None) == "37/200 finished, ~27 min left"  # resumed at 30
    assert time_left(37, 200, 37, 111.0, 60.0) == "37/200 finished, --timeout stops it in ~60 s"
    assert time_left(0, 200, 0, 5.0, None) is None  # no pace yet
    assert time_left(200, 200, 200, 600.0, None) is None  # nothing left


def test_each_trial_line_says_how_much_is_left(tiny_spec):
    lines: list[str] = []
    run("box", options(tiny_spec, "memory", original=False, baselines=False), lines.append)
    ends = [line for line in lines if " in " in line and line.startswith("trial ")]
    assert [e.split(";")[-1].split(",")[0].strip() for e in ends[:3]] == [
        "1/4 finished",
        "2/4 finished",
        "3/4 finished",
    ], ends
    assert "finished" not in ends[3]  # the budget is filled
