"""Griffe extension for the API pages: the library's ``Example:`` docstring sections render as code.

The docstrings follow Google style with a singular ``Example:`` heading, which griffe's Google parser reads as
an admonition of free Markdown (so ``>>> x[0]`` would become a broken link). Renaming the heading to
``Examples:`` before parsing makes griffe render the doctest lines as Python code blocks.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Turn every ``Example:`` section heading into ``Examples:``."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None and "Example:" in docstring.value:
            docstring.value = _EXAMPLE_HEADING.sub(r"\1Examples:", docstring.value)
