"""``inharmony validate``: LightningCLI's ``validate``; see :func:`inharmony.commands.train.run_lightning`."""

from __future__ import annotations

import argparse

from .train import EXAMPLES

NAME = "validate"
HELP = "Evaluate a checkpoint on the validation split (LightningCLI)."
EXAMPLE = EXAMPLES[NAME]
PASSTHROUGH = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """LightningCLI parses the arguments; ``inharmony validate --help`` lists them."""


def run(argv: list[str]) -> int:
    from .train import run_lightning

    return run_lightning(NAME, argv)
