"""hpo as a user installs it: a wheel built from this checkout, installed on its own, runs a study
from a folder with no studies/ of its own (the specs ship inside the package), and a studies/
folder there overrides them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT


def test_a_wheel_ships_the_study_specs(tmp_path: Path):
    dist, target, work = tmp_path / "dist", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(
        [*pip, "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(dist)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("hpo-*.whl")
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target), "HPO_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("HPO_STORAGE", None)
    tiny = ["--data", "n_train=64", "--data", "n_val=32", "--data", "image_size=16"]
    args = ["study", "box", "--trials", "1", "--epochs", "1", "--no-original", "--no-baseline"]
    args += [*tiny, "--data", "square_size=4", "--storage", "memory"]
    args += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    where = "import hpo, sys; print(hpo.__file__)"
    found = subprocess.run([sys.executable, "-c", where], capture_output=True, text=True, env=env)
    assert found.stdout.startswith(str(target)), found.stdout  # the wheel's hpo, not the repo's
    out = subprocess.run(
        [sys.executable, "-m", "hpo", *args], capture_output=True, text=True, env=env, cwd=work
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1/1 trials finished" in out.stdout
    assert "pruner hyperband" in out.stderr  # the shipped box.toml's
    (work / "studies").mkdir()  # a studies/ folder of the user's own wins
    own = (ROOT / "studies" / "box.toml").read_text().replace('"hyperband"', '"median"')
    (work / "studies" / "box.toml").write_text(own)
    mine = subprocess.run(
        [sys.executable, "-m", "hpo", *args], capture_output=True, text=True, env=env, cwd=work
    )
    assert mine.returncode == 0 and "pruner median" in mine.stderr, mine.stderr[-2000:]
