"""A griffe extension for the API reference (mkdocstrings): ``Example:`` sections read as ``Examples:``.

The project's docstrings head their examples ``Example:``, as Gymnasium's do; griffe's Google-style parser
knows only ``Examples:`` as a section of code (``Example`` becomes an admonition of Markdown, where ``>>>``
lines would be block quotes). Renaming the heading before parsing renders them as Python sessions.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:[ \t]*$", flags=re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename each docstring's ``Example:`` heading to ``Examples:``."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Called for every object griffe loads, before any docstring is parsed."""
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
