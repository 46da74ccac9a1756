"""The ``inharmony`` command.

Two kinds of subcommand share the entry point:

* ``fit``, ``validate``, ``test`` and ``predict --config ...`` are LightningCLI's own subcommands
  (:mod:`inharmony.cli.lightning`): a YAML config plus ``--trainer.*``, ``--model.*``, ``--data.*``
  overrides, the data module chosen by ``class_path``.
* The tools (``models``, ``synth``, ``harmonize``, ``fix``, ``score``, ``app``, ``data check|resize|optimize``,
  ``convert``, ``export``, ``push``, ``predict IMAGES``, ``demo``, ``bench``) are parsers that jsonargparse
  builds from a typed function: its signature and docstring are the one declaration of the options
  (:mod:`inharmony.cli.tools`; the table is :data:`COMMANDS`).

``inharmony predict`` is the tool unless an option only LightningCLI knows is given
(``--config``, ``--ckpt_path``, ``--trainer.*``, ``--data.*``, ``--model.*``).

Exit codes, for every command:

* ``0``: done.
* ``1``: done, but partial or flagged: some inputs skipped (``predict``), bad files found
  (``data check``), nothing matched (``models``), the ONNX check failed (``export``); stderr or the
  report says which.
* ``2``: nothing (useful) was done: a usage error, bad input data, unusable weights or checkpoint,
  or an output that cannot be written. Expected failures print one line
  ``inharmony: error: <message>`` (and at most a hint line) on stderr, never a traceback.
* ``130`` / ``143``: ``fit`` was stopped by Ctrl+C (SIGINT) / SIGTERM after saving ``last.ckpt``
  (128 + the signal's number); resume with the same command plus ``--ckpt_path last``.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence

from ..errors import InharmonyError, find_cause
from ..version import __version__
from .exit_codes import EXIT_OK, EXIT_PARTIAL, EXIT_SIGINT, EXIT_SIGTERM, EXIT_SKIPPED, EXIT_USAGE, error
from .tools import Group, Tool, run_group, run_tool

__all__ = ["COMMANDS", "EXIT_OK", "EXIT_PARTIAL", "EXIT_SIGINT", "EXIT_SIGTERM", "EXIT_SKIPPED", "EXIT_USAGE",
           "LIGHTNING", "build_parser", "discover_commands", "main"]  # fmt: skip

LIGHTNING = {
    "fit": "Train a model (LightningCLI): a YAML config plus --trainer.*, --model.*, --data.* overrides.",
    "validate": "Evaluate a checkpoint on the validation split (LightningCLI).",
    "test": "Evaluate on the test split and write the per-subset table (console, metrics.json, metrics.md).",
}
"""LightningCLI's subcommands (``predict`` too, when :func:`~inharmony.cli.predict.wants_lightning`)."""

_CMD = "inharmony.cli.commands"
_DATA = {
    "check": Tool(
        "inharmony.data.check:check_tree",
        "Count composites per subset (all, le50), find bad files (--decode), compare with a list (--compare-list).",
        "inharmony data check --root data/iHarmony4 --decode --compare-list le50_test.txt",
        report=f"{_CMD}:report_check",
    ),
    "resize": Tool(
        "inharmony.data.resize:resize_tree",
        "Write a copy with images no larger than --max-side (faster loading).",
        "inharmony data resize --root data/iHarmony4 --out data/iHarmony4-1024 --max-side 1024",
        report=f"{_CMD}:report_resize",
    ),
    "optimize": Tool(
        "inharmony.data.streaming:optimize_ihd",
        "Write litdata chunks (train/, val/, test/) for streaming.",
        "inharmony data optimize --root data/iHarmony4 --out data/ihd-chunks",
        report=f"{_CMD}:report_optimize",
        aliases={"--workers": ("--num_workers",)},
        defaults={"progress": True},
    ),
}
COMMANDS: dict[str, Tool | Group | str] = {
    **LIGHTNING,
    "predict": Tool(
        "inharmony.cli.predict:predict_images",
        "Predict inharmonious-region masks (+ overlays) for images or folders; with --config, LightningCLI's.",
        "inharmony predict photos/ --model dirl --weights dirl_hub_folder --out masks/",
        positional=("inputs",),
    ),
    "demo": Tool(
        "inharmony.cli.demo:demo",
        "Train and test a small model on synthetic composites (CPU, offline, a few minutes).",
        "inharmony demo --out ./inharmony-demo",
        rest="overrides",
    ),
    "harmonize": Tool(
        "inharmony.cli.harmonize:harmonize_images",
        "Harmonize photos: find the inharmonious region (or take --mask) and fix its colour (PCTNet; or S2AM).",
        "inharmony harmonize photo.jpg --localizer madisnet --out harmonized/",
        positional=("inputs",),
    ),
    "fix": Tool(
        "inharmony.cli.fix:fix_images",
        "Find the inharmonious region, fix it at full resolution (PCTNet), print the harmony score before -> after.",
        "inharmony fix photo.jpg --out fixed/",
        positional=("inputs",),
    ),
    "score": Tool(
        "inharmony.cli.fix:score_images",
        "Print the harmony score of photos (BargainNet) in --mask's region, or the region found first.",
        "inharmony score photo.jpg --mask photo_mask.png",
        positional=("inputs",),
    ),
    "app": Tool(
        "inharmony.cli.app:app",
        "A local web page to find (and fix) the inharmonious region of your photos (pip install 'inharmony[app]').",
        "inharmony app --model madisnet --port 7860",
    ),
    "models": Tool(
        f"{_CMD}:models",
        "List registered models, their weight tags and whether the weights are published.",
        "inharmony models --pattern 'dirl*'",
    ),
    "synth": Tool(
        "inharmony.data.synth:synthesize",
        "Make synthetic composites (colour/lighting changed in a region) in the iHarmony4 layout from photos.",
        "inharmony synth --photos my_photos/ --out data/hsynth --n 2000 --seed 0 --size 512",
        report=f"{_CMD}:report_synth",
        aliases={"--quiet": ("--progress=false",)},
    ),
    "data": Group("iHarmony4 data tools: check a tree, make a resized copy, write litdata chunks.", _DATA),
    "convert": Group(
        "Convert the authors' released checkpoints into an inharmony hub folder.", f"{_CMD}:convert_tools"
    ),
    "export": Tool(
        f"{_CMD}:export",
        "Export a model to ONNX (dynamic batch and size), checked against PyTorch.",
        "inharmony export --model dirl --weights dirl_hub_folder --format onnx --out dirl.onnx",
    ),
    "push": Tool(
        f"{_CMD}:push",
        "Upload a Lightning checkpoint (or hub folder) to the Hugging Face Hub, with a model card.",
        "inharmony push runs/dirl/checkpoints/best.ckpt --repo-id my-org/dirl-ihd --metrics metrics.json",
        positional=("checkpoint",),
    ),
    "bench": Group(
        "Measure speed and memory (models, metrics, data loading, inference, training).", f"{_CMD}:bench_tools"
    ),
}
"""Every subcommand: a LightningCLI one (its summary), a :class:`Tool` or a :class:`Group` of tools."""


def discover_commands() -> dict[str, Tool | Group | str]:
    """Every subcommand, by name (see :data:`COMMANDS`)."""
    return dict(sorted(COMMANDS.items()))


def _summary(entry: Tool | Group | str) -> str:
    return entry if isinstance(entry, str) else entry.summary


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: ``--help`` lists the subcommands (nothing heavy is imported), ``--version``."""
    parser = argparse.ArgumentParser(
        prog="inharmony",
        description="Inharmonious region localization: models, data, training and inference.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'inharmony COMMAND --help' for a command's options and an example.\n\n"
        "exit codes: 0 done; 1 done, but some inputs skipped or problems found;\n"
        "            2 usage error, bad input or unusable weights ('inharmony: error: ...' on stderr).",
    )
    parser.add_argument("--version", action="version", version=f"inharmony {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, entry in discover_commands().items():
        sub.add_parser(name, help=_summary(entry), add_help=False)
    return parser


def _dispatch(name: str, argv: list[str]) -> int:
    entry = COMMANDS[name]
    if isinstance(entry, str) or (name == "predict" and _wants_lightning(argv)):
        from . import lightning

        return lightning.run_lightning(name, argv)
    if isinstance(entry, Group):
        return run_group(f"inharmony {name}", entry, argv)
    return run_tool(f"inharmony {name}", entry, argv)


def _wants_lightning(argv: list[str]) -> bool:
    from .predict import wants_lightning

    return wants_lightning(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inharmony`` console script; returns the exit code (see the module docstring).

    Example:
        >>> main(["models", "--pattern", "dirl"])  # doctest: +SKIP
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        parser.parse_args(argv)  # --help, --version and unknown commands exit here
        parser.print_help()
        return EXIT_USAGE
    try:
        return _dispatch(argv[0], argv[1:])
    except SystemExit as exit_:  # --help, --print_config, or an argparse error already printed
        if type(exit_).__name__ == "SIGTERMException":  # Lightning's, outside fit (which saves and exits 143)
            error("stopped by SIGTERM")
            return EXIT_SIGTERM
        if exit_.code is None:
            return EXIT_OK
        return exit_.code if isinstance(exit_.code, int) else error(str(exit_.code))
    except argparse.ArgumentError as err:  # jsonargparse (LightningCLI): unknown option, bad config key or value
        return error(str(err), f"see 'inharmony {argv[0]} --help'")
    except InharmonyError as err:
        return error(str(err))
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            # fit names its newest intact checkpoint itself (a TrainingCommandError); here nothing is claimed.
            return error(
                f"no space left on the device while writing {err.filename or 'a file'}. Free space (or write "
                "elsewhere), then run the command again."
            )
        return error(f"{type(err).__name__}: {err}")
    except (ValueError, ImportError) as err:
        if (cause := find_cause(err, InharmonyError)) is not None:  # jsonargparse wraps a data module's DataError
            return error(str(cause))
        if argv[0] in LIGHTNING or (argv[0] == "predict" and _wants_lightning(argv[1:])):
            raise  # inside training, a bug: keep the traceback
        return error(str(err))  # a tool's argument check (a value out of range, an optional extra missing)


if __name__ == "__main__":
    sys.exit(main())
