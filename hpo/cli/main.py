"""The entry point of the `hpo` command: user errors are one line and exit code 2."""

from __future__ import annotations

import sys
import time

import typer

# each command module registers its command on the app
from hpo.cli import diagnose, init, report, study, tasks, train, ui  # noqa: F401
from hpo.cli.app import ARGV, STARTED, _click, app, echo_err
from hpo.util import interrupts
from hpo.util.errors import UserError


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors are one line on stderr and exit code 2, never a traceback."""
    ARGV[:] = sys.argv[1:] if argv is None else argv
    STARTED[:] = [time.time()]
    from hpo.util import logs as quiet

    quiet.libraries()  # library warnings that tell the user nothing stay off the terminal
    from hpo.util.process import tune_malloc

    tune_malloc()
    command = typer.main.get_command(app)
    # SIGTERM (docker stop, a scheduler) ends a run like Ctrl-C: the trial is recorded as
    # failed; neither lands in the middle of a store call
    interrupts.install()
    interrupted = (
        "hpo: interrupted; the running trial was recorded as failed. "
        "Run the same command again to resume."
    )
    try:
        # non-standalone: typer returns an exit code (130 for Ctrl-C) or raises for usage errors
        code = command.main(args=argv, prog_name="hpo", standalone_mode=False)
    except _click.NoArgsIsHelpError as e:  # `hpo` alone: the help, as --help
        typer.echo(e.ctx.get_help())
        return 0
    except _click.UsageError as e:
        echo_err(f"hpo: error: {e.format_message()}")
        return 2
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        echo_err(interrupted)
        return 130
    except UserError as e:
        echo_err(f"hpo: error: {e}")
        return 2
    if code == 130:
        echo_err(interrupted)
    return code if isinstance(code, int) else 0
