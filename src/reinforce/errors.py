"""The one exception type that reinforce raises for bad input.

Every message names the problem and the fix in one line; the CLI prints it as
``reinforce: error: <message>`` and exits with status 2, without a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

DAMAGED = "the run directory is damaged; restore the file or start a new run"
"""How a message about a damaged run file ends: the problem, then the fix."""


def one_line(text: object) -> str:
    """``str(text)`` on one line: a space's repr, whose NumPy bounds wrap over lines, in a one-line error."""
    return " ".join(str(text).split())


class ReinforceError(ValueError):
    """Bad input: an invalid hyperparameter, an unknown environment, an unsupported space, a bad run dir.

    Messages name settings by their Python names (``lr``, ``value_lr``, ``backend='ray'``), never by a
    command-line flag; ``fields`` lists the setting names a message mentions, so that the CLI can show them as
    its flags (``--lr``, ``--backend ray``).

    Args:
        message: one line: the problem and the fix.
        fields: the setting names that ``message`` mentions.

    Example:
        >>> try:
        ...     reinforce.TrainConfig(lr=-1.0)
        ... except reinforce.ReinforceError as error:
        ...     print(error.fields)
        ('lr',)
    """

    def __init__(self, message: str, *, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


class RunDirectoryBusy(ReinforceError):
    """Another process is training the run directory (only one may at a time); nothing was written.

    Example:
        >>> try:  # doctest: +SKIP
        ...     reinforce.resume("runs/X").learn(100_000, run_dir="runs/X")
        ... except reinforce.RunDirectoryBusy as error:
        ...     print(error)  # names the pid of the process that trains runs/X
    """


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT, SIGTERM or SIGHUP; the run directory holds a checkpoint to resume from.

    Attributes:
        signal_number: the signal that stopped training.
        run_dir: the run directory (None when `Reinforce.learn` had none); a population's: its members' parent
            (each member resumes from ``run_dir/seed-S``).
        update: the update count of the last checkpoint written (None if there is none yet), or of the agent
            when there is no run directory; None for a population (each member has its own).

    Example:
        >>> try:  # doctest: +SKIP
        ...     agent.learn(1_000_000, run_dir="runs/X")
        ... except reinforce.TrainingInterrupted as stop:  # Ctrl-C: the update finished, the checkpoint written
        ...     agent = reinforce.resume(stop.run_dir)
    """

    def __init__(
        self, signal_number: int, run_dir: str | None, update: int | None, *, message: str | None = None
    ) -> None:
        self.signal_number = signal_number
        self.run_dir = run_dir
        self.update = update
        if run_dir is None:
            default = f"training stopped after update {update}"
        elif update is None:
            default = (
                f"training stopped before its first checkpoint; start it again from update 0 with "
                f"`reinforce train --resume {run_dir}`"
            )
        else:
            default = (
                f"checkpoint saved in {run_dir} at update {update}; resume with `reinforce train --resume {run_dir}`"
            )
        super().__init__(default if message is None else message)  # ``message``: a population's (one per member)

    @property
    def exit_code(self) -> int:
        """The shell's exit status for death by this signal: 128 + its number (130 SIGINT, 143 SIGTERM, 129 SIGHUP)."""
        return 128 + self.signal_number


class NonFiniteError(ReinforceError):
    """A NaN or an infinity in the observations, rewards, actions, loss or gradient: training stopped.

    Raised before the optimizer step, so the policy's parameters are the last finite ones.

    Example:
        >>> try:  # doctest: +SKIP
        ...     agent.learn(100_000)
        ... except reinforce.NonFiniteError as error:
        ...     print(error)  # where the NaN or inf appeared, and its likely cause
    """
