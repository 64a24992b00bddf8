"""``python -m reinforce.cli``: the ``reinforce`` command."""

from reinforce.cli import main

main()
