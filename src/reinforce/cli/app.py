"""The ``reinforce`` command group, its logging, and the import of long-lived modules with the GC paused."""

from __future__ import annotations

import gc
import importlib
import logging
from typing import Any

import click


def import_long_lived(*modules: str) -> None:
    """Import ``modules`` with the cyclic garbage collector paused, then leave what exists out of later collections.

    Importing torch (or matplotlib) creates hundreds of thousands of objects that live as long as the process.
    With the collector running, their creation triggers full collections that walk them again and again; frozen
    afterwards (`gc.freeze`), they are skipped by every later collection, the ones at exit included (what it
    saves: docs/benchmarks.md). Only the CLI does this: it owns its process, a library does not.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        for module in modules:
            importlib.import_module(module)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


TRAINING_MODULES = ("reinforce.agent",)
"""What training needs: torch, Gymnasium, safetensors (`import_long_lived` before the commands use them)."""
PLOTTING_MODULES = ("reinforce.run.plotting", "matplotlib.figure")
"""What `reinforce.run.plotting` draws with."""


LOG_LEVELS = ("warning", "info", "debug")


class CtrlC(Exception):
    """A KeyboardInterrupt in a command, raised past click (which would print an empty line and abort)."""


class Commands(click.Group):
    """The ``reinforce`` group: a Ctrl-C in a command leaves click as `CtrlC`, for `reinforce.cli.main`."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; KeyboardInterrupt becomes `CtrlC`."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise CtrlC from None


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="reinforce", prog_name="reinforce")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="warning",
    show_default=True,
    help="Messages on stderr: warning (problems only), info (also signals and resumes) or debug (also every "
    "checkpoint written).",
)
def cli(log_level: str) -> None:
    """REINFORCE (Monte-Carlo policy gradient) on Gymnasium environments."""
    logger = logging.getLogger("reinforce")  # only reinforce's own messages: other libraries keep their level
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("reinforce: %(levelname)s: %(message)s"))
    logger.handlers = [handler]
    logger.setLevel(log_level.upper())
    logger.propagate = False
