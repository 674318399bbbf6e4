"""The shape of hpo/ that lets it grow (issue 26): a package per capability and nothing loose at
the top; packages that import only those below them, and no module that imports itself round
a circle (imports inside functions and under TYPE_CHECKING count); modules of at most 300
lines, functions of at most 60; the study's record spelled in one module; Optuna's private
API in one module; the packages that pyproject.toml ships are the tree's."""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

from .conftest import ROOT

HPO = ROOT / "hpo"
# Top to bottom: a package imports only the packages below it (and its own modules).
LAYERS = (
    "cli",
    "api",
    "ui",
    "report",
    "final",
    "diagnose",
    "study",
    "search",
    "track",
    "tasks",
    "train",
    "util",
)
MAX_LINES = 300
MAX_FUNCTION_LINES = 60
RECORD = "hpo/search/record.py"  # the only module that spells a key of the study's attrs
OPTUNA_PRIVATE = "hpo/search/optuna_private.py"  # the only module that uses Optuna's internals


def modules() -> dict[str, Path]:
    """{dotted name: path} of every module under hpo/."""
    out = {}
    for path in sorted(HPO.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """The hpo modules that module `name` imports, wherever the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            # `from pkg import mod` imports the module; `from mod import name`, the module
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("hpo"):
                yield target


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imports(path, name, known)) for name, path in found.items()}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_nothing_loose_at_the_top_of_hpo():
    loose = sorted(p.name for p in HPO.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]
    packages = {p.parent.name for p in HPO.glob("*/__init__.py")}
    assert packages == set(LAYERS)


def test_packages_import_only_the_packages_below_them():
    wrong = []
    for module, targets in graph().items():
        mine = layer(module)
        for target in targets:
            theirs = layer(target)
            if mine and theirs and LAYERS.index(theirs) < LAYERS.index(mine):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    assert not circles, circles


def is_cli_command(node: ast.FunctionDef) -> bool:
    return any("command" in ast.unparse(d) for d in node.decorator_list)


def test_modules_and_functions_stay_small():
    long_modules, long_functions = [], []
    for path in modules().values():
        text = path.read_text()
        if len(text.splitlines()) > MAX_LINES:
            long_modules.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())}")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            start = node.lineno
            if is_cli_command(node):  # its options are declarations: count the body only
                start = node.body[0].lineno
            length = node.end_lineno - start + 1
            if length > MAX_FUNCTION_LINES:
                long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long_modules, long_modules
    assert not long_functions, long_functions


def test_one_module_spells_the_studys_record():
    spelled = re.compile(r"user_attrs|set_user_attr|system_attrs")
    found = [
        str(path.relative_to(ROOT))
        for path in modules().values()
        if spelled.search(path.read_text())
    ]
    assert sorted(found) == sorted({RECORD, OPTUNA_PRIVATE} & set(found)), found


def test_optunas_private_api_in_one_module():
    private = re.compile(r"optuna\.[\w.]*\._\w|\._(storage|study_id|trial_id|get_trials)\b")
    found = [
        str(path.relative_to(ROOT))
        for path in modules().values()
        if private.search(path.read_text())
    ]
    assert found == [OPTUNA_PRIVATE], found


def test_pyproject_ships_every_package_and_bounds_optuna_and_mlflow():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = set(project["tool"]["setuptools"]["packages"])
    tree = {".".join(p.parent.relative_to(ROOT).parts) for p in HPO.rglob("__init__.py")}
    assert shipped == tree | {"hpo.studies"}
    pins = {
        re.split(r"[<>=!~ \[]", d, maxsplit=1)[0]: d for d in project["project"]["dependencies"]
    }
    for name in ("optuna", "mlflow"):
        assert ">=" in pins[name] and "<" in pins[name].replace("<=", "<"), pins[name]
