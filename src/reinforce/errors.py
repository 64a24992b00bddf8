"""The one exception type that reinforce raises for bad input.

Every message names the problem and the fix in one line; the CLI prints it as
``reinforce: error: <message>`` and exits with status 2, without a traceback.
"""

from __future__ import annotations


class ReinforceError(ValueError):
    """Bad input: an invalid hyperparameter, an unknown environment, an unsupported space, a bad run dir."""
