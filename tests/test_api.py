"""hpo from Python (issue 34): hpo.run on a built-in task, a data set's path and arrays, its
Result read back; the CLI and the API make the same study from the same arguments; errors
are hpo.UserError; `import hpo` stays light."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from .conftest import ROOT, cli, write_spec

ARGS = dict(trials=3, epochs=1, seed=4, original=False)


def _params(storage: str, name: str) -> list[dict]:
    import optuna

    study = optuna.load_study(study_name=name, storage=storage)
    return [t.params for t in sorted(study.trials, key=lambda t: t.number)]


def test_import_hpo_does_not_import_torch_or_optuna():
    code = "import sys, hpo; hpo.run; print(sorted({'torch', 'optuna'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_run_on_a_built_in_task_reads_its_result_back_like_the_cli(scratch):
    import hpo

    write_spec(scratch / "tiny.toml")
    lines: list[str] = []
    result = hpo.run("box", spec="tiny.toml", storage="sqlite:///api.db", progress=lines.append,
                     **ARGS)  # fmt: skip
    assert result.best is not None and result.best.config.epochs == 1
    assert "linear_regression" in result.baseline and result.original is None
    frame = result.report()
    assert len(frame) == 3 and "val_mse" in frame.columns
    assert any(line.startswith("study 'box'") for line in lines)
    ran = cli("study", "box", "--spec", "tiny.toml", "--storage", "sqlite:///cli.db",
              "--trials", "3", "--epochs", "1", "--seed", "4", "--no-original")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert _params("sqlite:///api.db", "box") == _params("sqlite:///cli.db", "box")


def test_run_on_arrays_and_on_a_path_then_retrain(scratch, capsys):
    import hpo

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype("float32")
    task = hpo.Task.from_arrays(x, x @ np.array([1, -1, 2, 0.5], "float32"), name="sums")
    assert task.kind == "regression" and task.n_outputs == 1
    result = hpo.run(task, **ARGS)
    assert result.study_name == "sums" and result.best.value < 10
    final = hpo.retrain(result, finalists=0)
    assert "test_r2" in final.test_metrics
    capsys.readouterr()
    again = hpo.run(task.source, study_name="sums", progress="bar", **{**ARGS, "trials": 4})
    assert again.summary.finished == 4
    bar = capsys.readouterr().err  # tqdm's text bar: 3 of 4 were finished before
    assert "hpo:" in bar and "4/4" in bar and "best " in bar, bar
    with pytest.raises(hpo.UserError, match="progress must be a callable, 'bar' or None"):
        hpo.run(task, progress="loud", **ARGS)


def test_errors_are_user_errors_not_system_exit(scratch):
    import hpo

    with pytest.raises(hpo.UserError, match="unknown task 'nosuch'"):
        hpo.run("nosuch", trials=1)
    with pytest.raises(hpo.UserError, match="no such file or folder"):
        hpo.run("./missing", trials=1)
    with pytest.raises(hpo.UserError, match="hpo.run: .*colour"):
        hpo.run("box", trials=1, colour="red")
