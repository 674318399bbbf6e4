"""`hpo init PATH`: write the study spec derived from a data set, to read and edit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hpo.cli.app import Kind, SkipBad, Target, app, echo_err
from hpo.util.errors import UserError


@app.command()
def init(
    path: Annotated[str, typer.Argument(help="The data set's path.")],
    name: Annotated[
        str | None,
        typer.Option(help="The study's name. [default: the folder's name or the file's stem]"),
    ] = None,
    target: Target = None,
    kind: Kind = None,
    skip_bad: SkipBad = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing spec.")] = False,
) -> None:
    """Write studies/NAME.toml: the search space, sampler, pruner, epochs and time budget that
    `hpo study PATH` derives from the data, commented, naming the data (data = "PATH"). Edit
    it; `hpo study PATH` (or `hpo study --spec studies/NAME.toml`) then reads it."""
    from hpo.study.task_of import from_path
    from hpo.tasks.dataset.space import to_toml

    task, _ = from_path(
        path,
        "memory",
        name,
        tuple(target or ()),
        kind.value if kind else None,
        skip_bad,
        None,
        True,
    )
    out = Path("studies") / f"{task.name}.toml"
    if out.exists() and not force:
        raise UserError(f"{out} exists; --force overwrites it")
    spec = {"data": path, **{k: v for k, v in task.spec.items() if k != "task"}}
    header = (
        f"The study spec of {path}, derived by `hpo init` from what was found:\n{task.found}\n\n"
        "[study]: sampler, pruner, epochs per trial, trial_timeout (seconds a trial may run);\n"
        "[space]: the knobs searched (`hpo study --help` lists them all): a range is\n"
        "{ low = .., high = .., log = true }, a list is the choices, a value is fixed.\n"
        "[data] image_size = N / split_seed = N set how the data is read."
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_toml(spec, header))
    echo_err(f"wrote {out}: `hpo study {path}` reads it")
