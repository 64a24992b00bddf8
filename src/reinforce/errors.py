"""The one exception type that reinforce raises for bad input.

Every message names the problem and the fix in one line; the CLI prints it as
``reinforce: error: <message>`` and exits with status 2, without a traceback.
"""

from __future__ import annotations


class ReinforceError(ValueError):
    """Bad input: an invalid hyperparameter, an unknown environment, an unsupported space, a bad run dir."""


class NonFiniteError(ReinforceError):
    """A NaN or an infinity in the observations, rewards, actions, loss or gradient: training stopped.

    Raised before the optimizer step, so the policy's parameters are the last finite ones.
    """
