"""Every docstring example in the package runs and prints what it shows (``doctest``).

Examples marked ``# doctest: +SKIP`` (downloads, a real dataset, a browser) are not run; all the others
are, so an example a user copies from ``help()`` or the docs cannot silently go stale.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import inharmony


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module, name) if t.examples]


def _runnable(tests: list[doctest.DocTest]) -> bool:
    return any(not e.options.get(doctest.SKIP) for t in tests for e in t.examples)


# Modules with at least one example that runs (``__main__`` modules would run the command line on import).
MODULES = [
    info.name
    for info in pkgutil.walk_packages(inharmony.__path__, "inharmony.")
    if not info.name.endswith("__main__") and _runnable(_examples(info.name))
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in _examples(name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, f"{name}: {runner.failures} failing docstring example(s)\n" + "".join(report)


def test_the_walk_found_the_package_examples():
    # Guards the test above against finding nothing (a renamed package, a broken walk).
    assert len(MODULES) >= 30
    assert {"inharmony.metrics.functional", "inharmony.losses", "inharmony.inference"} <= set(MODULES)
