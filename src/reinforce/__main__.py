"""``python -m reinforce``: the ``reinforce`` command."""

from reinforce.cli import main

main()
