"""The `hpo` command line (typer): thin commands that parse, call one function of the package
below them, and print. One module a command; `app` holds the options they share.

Heavy libraries (torch, optuna, mlflow, sklearn) are imported inside the commands, so that
`hpo --help` answers at once.
"""

from hpo.cli.app import app
from hpo.cli.main import main

__all__ = ["app", "main"]
