"""The ``inharmony`` command.

Tool subcommands (``models``, ``synth``, ``data``, ``convert``, ``export``, ``push``, ``predict``,
``demo``, ``bench``, ...) are modules in :mod:`inharmony.commands`, discovered at start-up: each
defines ``NAME``, ``HELP``, ``EXAMPLE``, ``add_arguments(parser)`` and ``run(args) -> int``, and
imports its heavy dependencies inside ``run`` so that ``inharmony --help`` stays fast.
The training subcommands (``fit``, ``validate``, ``test``) are LightningCLI's, in
:mod:`inharmony.commands` too, under the same entry point.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from . import __version__, commands

__all__ = ["build_parser", "discover_commands", "main"]


def discover_commands() -> dict[str, ModuleType]:
    """Every command module in :mod:`inharmony.commands`, keyed by its ``NAME``."""
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        name = getattr(module, "NAME", None)
        if name is None:
            continue
        if name in found:
            raise RuntimeError(f"two command modules define the subcommand {name!r}")
        found[name] = module
    return dict(sorted(found.items()))


def build_parser(found: dict[str, ModuleType] | None = None) -> argparse.ArgumentParser:
    """The top-level parser with one subparser per discovered command."""
    found = discover_commands() if found is None else found
    parser = argparse.ArgumentParser(
        prog="inharmony",
        description="Inharmonious region localization: models, data, training and inference.",
        epilog="Run 'inharmony COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"inharmony {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in found.items():
        example = getattr(module, "EXAMPLE", "")
        child = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=f"example:\n  {example}" if example else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=not getattr(module, "PASSTHROUGH", False),
        )
        module.add_arguments(child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inharmony`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    found = discover_commands()
    # Commands that parse their own arguments (LightningCLI) get the raw argv.
    if argv and argv[0] in found and getattr(found[argv[0]], "PASSTHROUGH", False):
        return int(found[argv[0]].run(argv[1:]) or 0)
    parser = build_parser(found)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(found[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
