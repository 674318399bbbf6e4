"""Every command's flags and every environment variable, as one Markdown reference made from
the CLI itself, so that it cannot drift from it: `python -m hpo.cli.reference > docs/cli.md`
(tests/test_cli.py checks that docs/cli.md is this output)."""

from __future__ import annotations

import sys

import typer

from hpo.cli.app import ENVIRONMENT
from hpo.cli.main import app


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def reference() -> str:
    """The Markdown page: a table of flags per command, then the environment."""
    group = typer.main.get_command(app)
    lines = [
        "# `hpo` command reference",
        "",
        "Made from the CLI itself (`python -m hpo.cli.reference > docs/cli.md`); `hpo COMMAND "
        "--help` says the same.",
    ]
    order = ("tasks", "init", "study", "report", "train", "diagnose", "ui")
    for name, command in sorted(group.commands.items(), key=lambda nc: order.index(nc[0])):
        lines += ["", f"## `hpo {name}`", "", _cell(command.help or ""), ""]
        lines += ["| flag | what it does | default |", "| --- | --- | --- |"]
        for param in command.params:
            if param.name == "help":
                continue
            flags = ", ".join(f"`{f}`" for f in [*param.opts, *param.secondary_opts])
            if param.param_type_name == "argument":
                flags = f"`{param.name.upper()}` (argument)"
            env = f" [env: {param.envvar}]" if getattr(param, "envvar", None) else ""
            default = param.default if param.default not in (None, False, ()) else ""
            default = getattr(default, "value", default)
            text = _cell(getattr(param, "help", "") or "")
            lines.append(f"| {flags} | {text}{env} | {default} |")
    lines += ["", "## Environment", "", "| variable | what it does |", "| --- | --- |"]
    lines += [f"| `{k}` | {_cell(v)} |" for k, v in ENVIRONMENT.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
