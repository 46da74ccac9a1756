"""``inharmony bench TOPIC``: run a benchmark from :mod:`inharmony.benchmarks`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from types import ModuleType

NAME = "bench"
HELP = "Measure speed and memory (models, metrics, data loading); prints the figures."
EXAMPLE = "inharmony bench model --model dirl --size 224 --batch-size 1"


def _topics() -> dict[str, ModuleType]:
    from .. import benchmarks

    found = {}
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{benchmarks.__name__}.{info.name}")
            if hasattr(module, "NAME"):
                found[module.NAME] = module
    return dict(sorted(found.items()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="topic", metavar="TOPIC", required=True)
    for name, module in _topics().items():
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))


def run(args: argparse.Namespace) -> int:
    return int(_topics()[args.topic].run(args) or 0)
