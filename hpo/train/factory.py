"""Where a user's own net comes from: `module:factory` (importable; the working directory on
the path) or `path/file.py:factory`, imported once per process (hpo.search.family says what a
factory is). Without torch, so that a spec naming one is read without it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpo.util.errors import UserError, first_line


def load_factory(ref: str, flag: str = "--model") -> Callable[..., Any]:
    """The callable `ref` names: 'package.module:name' (importable, the working directory on
    the path) or 'path/to/file.py:name'. Any problem is one UserError naming `ref`."""
    module_name, sep, attr = ref.rpartition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"{flag} {ref}: give it as module:factory or path/file.py:factory")
    try:
        module = _module(module_name)
    except UserError:
        raise
    except Exception as e:  # the user's module raised while it was imported
        raise UserError(
            f"{flag} {ref}: importing {module_name} failed: {type(e).__name__}: {first_line(e)}"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(f"{flag} {ref}: {module_name} has no callable {attr!r}")
    return factory


def _module(name: str) -> Any:
    if name.endswith(".py"):
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"no such file: {name}")
        key = f"hpo_user_{path.stem}"  # one module per file, for pickling and workers alike
        if key in sys.modules:
            return sys.modules[key]
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except BaseException:
            sys.modules.pop(key, None)
            raise
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # the user's code, where they run hpo
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and name.startswith(e.name):
            raise UserError(f"no module named {e.name!r} (from {Path.cwd()})") from None
        raise
