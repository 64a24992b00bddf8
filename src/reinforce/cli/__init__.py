"""The ``reinforce`` command: ``train`` (and ``--resume``), ``eval``, ``plot``, ``config``, ``sweep``, ``export``.

Every `TrainConfig` field is a ``train`` flag with the same name (``num_envs`` -> ``--num-envs``) and the
field's docstring as help. Bad input ends with one line on stderr, ``reinforce: error: ...``, and exit 2;
SIGINT, SIGTERM or SIGHUP during training with one line, ``reinforce: interrupted: ...``, and exit 130, 143 or
129; Ctrl-C before training starts (while torch imports, say) with one line and exit 130.

This module imports nothing heavy: `main` imports the commands (`reinforce.cli.entry`) inside its guard
against Ctrl-C, and the names below are imported on first use.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from reinforce.imports import lazy_names

if TYPE_CHECKING:  # the names as type checkers see them; at run time `__getattr__` imports them
    from reinforce.cli.app import cli as cli
    from reinforce.cli.app import import_long_lived as import_long_lived
    from reinforce.cli.options import flag_text as flag_text
    from reinforce.cli.runs import claim_run_dir as claim_run_dir
    from reinforce.cli.sweep import parse_seeds as parse_seeds

_MODULES = {
    "claim_run_dir": "runs",
    "cli": "app",
    "flag_text": "options",
    "import_long_lived": "app",
    "parse_seeds": "sweep",
}
"""The public names and the submodules of `reinforce.cli` that define them."""

__all__ = sorted([*_MODULES, "main"])

INTERRUPTED = "reinforce: interrupted by Ctrl-C"
"""The line of a Ctrl-C that arrives outside training (where no checkpoint is written), exit status 130."""


def interrupted() -> NoReturn:
    """Print `INTERRUPTED` on stderr and exit with 130, the shell's status for death by SIGINT."""
    sys.stderr.write(INTERRUPTED + "\n")
    sys.exit(130)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``reinforce`` console script."""
    try:
        from reinforce.cli.entry import run  # click, numpy and every command: a second or so
    except KeyboardInterrupt:
        interrupted()
    run(argv)


if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise accept any name as reinforce.cli.X
    # `entry` first: importing it registers every command on the group
    __getattr__, __dir__ = lazy_names(__name__, _MODULES, globals(), first="entry")
