"""``inharmony test``: LightningCLI's ``test``; see :func:`inharmony.commands.train.run_lightning`."""

from __future__ import annotations

import argparse

from .train import EXAMPLES

NAME = "test"
HELP = "Evaluate on the test split and write the per-subset table (console, metrics.json, metrics.md)."
EXAMPLE = EXAMPLES[NAME]
PASSTHROUGH = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """LightningCLI parses the arguments; ``inharmony test --help`` lists them."""


def run(argv: list[str]) -> int:
    from .train import run_lightning

    return run_lightning(NAME, argv)
