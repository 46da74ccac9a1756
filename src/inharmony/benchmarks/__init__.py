"""Benchmarks run by ``inharmony bench TOPIC``; one module per topic.

Each module defines ``NAME``, ``HELP`` and a typed ``run(...) -> int`` whose signature and Google
docstring declare the command's options (the parser is built from them), and prints its figures.
Timing claims live here, never in the test suite.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["bench_modes"]


def bench_modes() -> dict[str, ModuleType]:
    """The measuring modes: each public module of this package with a ``NAME``, by name.

    Example:
        >>> sorted(bench_modes())[:2]
        ['batch', 'data']
    """
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "NAME"):
            found[module.NAME] = module
    return found
