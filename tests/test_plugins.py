"""Tasks from other packages (issue 34): a real wheel, built here and installed into a folder
on the path, registers its tasks under the `hpo.tasks` entry-point group; `hpo tasks` lists
them with their package, `hpo study` studies them, a broken one is one line naming it and a
plugin that takes a built-in's name is left out."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ROOT, hpo

PLUGIN = '''
"""A tiny plugin: box's data at 16x16 as a task of its own."""
from dataclasses import replace

from hpo.tasks import box

SPEC = {
    "task": "tinybox",
    "study": {"sampler": "random", "pruner": "none", "epochs": 1},
    "space": {"dense_units": {"low": 4, "high": 8}, "dense_layers": {"low": 0, "high": 1}},
}
TASK = replace(
    box.TASK,
    name="tinybox",
    summary="box at 16x16, from a plugin",
    defaults={**box.DEFAULTS, "n_train": 128, "n_val": 32, "n_test": 32, "image_size": 16,
              "square_size": 4},
    spec=SPEC,
)
SHADOW = replace(TASK, name="box")
'''

PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "hpo-plugin-demo"
version = "0.1"

[project.entry-points."hpo.tasks"]
tinybox = "hpo_plugin_demo:TASK"
broken = "hpo_plugin_demo:NOT_THERE"
box = "hpo_plugin_demo:SHADOW"
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin built as a wheel and installed (pip) into a folder of its own."""
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    (src / "hpo_plugin_demo").mkdir(parents=True)
    (src / "hpo_plugin_demo" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    (src / "pyproject.toml").write_text(PYPROJECT)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    wheels, site = root / "wheels", root / "site"
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, src],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    wheel = next(wheels.glob("hpo_plugin_demo-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    return site


def test_a_plugin_task_is_listed_with_its_package_and_studied(site, scratch):
    env = {"PYTHONPATH": f"{site}:{ROOT}"}
    listed = hpo("tasks", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "tinybox" in listed.stdout and "[from hpo-plugin-demo]" in listed.stdout
    assert "box " in listed.stdout and "cifar10" in listed.stdout  # the others still load
    warnings = [s for s in listed.stderr.splitlines() if s.startswith("hpo: warning")]
    assert any("'broken' (hpo-plugin-demo) does not load" in s for s in warnings)
    assert any("'box' (hpo-plugin-demo) takes the name of a built-in" in s for s in warnings)
    ran = hpo("study", "tinybox", "--trials", "2", "--no-original", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "study tinybox: 2/2 trials finished" in ran.stdout


def test_without_the_plugin_its_task_is_unknown(scratch):
    ran = hpo("study", "tinybox", "--trials", "1")
    assert ran.returncode == 2 and "unknown task 'tinybox'" in ran.stderr
