"""``inharmony fit``: LightningCLI's ``fit``; see :func:`inharmony.commands.train.run_lightning`."""

from __future__ import annotations

import argparse

from .train import EXAMPLES

NAME = "fit"
HELP = "Train a model (LightningCLI): a YAML config plus --trainer.*, --model.*, --data.* overrides."
EXAMPLE = EXAMPLES[NAME]
PASSTHROUGH = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """LightningCLI parses the arguments; ``inharmony fit --help`` lists them."""


def run(argv: list[str]) -> int:
    from .train import run_lightning

    return run_lightning(NAME, argv)
