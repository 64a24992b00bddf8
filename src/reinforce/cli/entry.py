"""The commands of ``reinforce``, registered on its group, and `run`: what `reinforce.cli.main` runs."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from reinforce.cli import export, show, sweep, train  # noqa: F401 (importing them registers the commands)
from reinforce.cli.app import CtrlC, cli
from reinforce.cli.options import flag_text
from reinforce.errors import ReinforceError, TrainingInterrupted


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"reinforce: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def run(argv: Sequence[str] | None = None) -> None:
    """Run the ``reinforce`` command on ``argv`` (default: the process's arguments) and exit with its status."""
    from reinforce.cli import interrupted

    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="reinforce", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx is not None else "see `reinforce --help`")
        sys.exit(0)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "reinforce"
        _fail(f"{exc.format_message()} (see `{command} --help`)")
    except click.ClickException as exc:
        _fail(exc.format_message())
    except ReinforceError as exc:
        _fail(flag_text(str(exc), exc.fields))
    except OSError as exc:  # a full disk, a read-only run directory, ...: the file and the reason, one line
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}: check the path, its permissions and the free space", code=1)
    except TrainingInterrupted as exc:
        click.echo(f"reinforce: interrupted: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (CtrlC, KeyboardInterrupt, click.Abort):
        interrupted()
    sys.exit(code if isinstance(code, int) else 0)
