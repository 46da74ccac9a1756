"""LightningCLI behind ``inharmony fit / validate / test`` (and ``predict --config ...``).

The subcommands ``fit``, ``validate`` and ``test`` are thin modules (``fit.py`` ...) that hand
their raw arguments to :func:`run_lightning`. This module is not a subcommand itself.

Every run gets, besides what the config says:

* ``--checkpoint.*``: a :class:`~lightning.pytorch.callbacks.ModelCheckpoint` keeping the best
  epoch by ``val/iou`` and ``last.ckpt`` (``--ckpt_path last`` resumes from it);
* ``--metrics.*``: :class:`inharmony.callbacks.LocalizationMetricsCallback` (AP, F1, IoU, official
  protocol), per subset on test;
* ``--samples.*``: :class:`inharmony.visualize.SamplePredictionsCallback`, prediction images every
  N training steps;
* ``--ckpt_path`` and ``--out`` (where ``test`` writes ``metrics.json`` / ``metrics.md``).
"""

from __future__ import annotations

import errno
import os
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["TRAINING_SUBCOMMANDS", "TrainingCommandError", "build_cli", "execute", "run_lightning"]

TRAINING_SUBCOMMANDS = ("fit", "validate", "test", "predict")

_RUN = "--config configs/dirl.yaml --data.root /data/iHarmony4"
EXAMPLES = {
    "fit": f"inharmony fit {_RUN}",
    "validate": f"inharmony validate {_RUN} --ckpt_path runs/dirl/version_0/checkpoints/last.ckpt",
    "test": f"inharmony test {_RUN} --ckpt_path runs/dirl/version_0/checkpoints/last.ckpt",
    "predict": f"inharmony predict {_RUN} --ckpt_path runs/dirl/version_0/checkpoints/last.ckpt",
}


def _error(message: str) -> int:
    print(f"inharmony: error: {message}", file=sys.stderr)
    return 2


def _corrupt(path: str, err: Exception) -> str:
    return (
        f"cannot read checkpoint {path}: it is corrupt, truncated or not a PyTorch file "
        f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
        f"Use an intact copy, e.g. the run's last.ckpt."
    )


def _find_last_checkpoint(cli: Any) -> str:
    """The newest ``last*.ckpt`` of earlier runs (Lightning's own ``"last"`` only looks in this run's folder)."""
    dirpath = cli.config.get("checkpoint", {}).get("dirpath")
    where = Path(dirpath) if dirpath else Path(cli.trainer.default_root_dir)
    found = sorted(where.rglob("last*.ckpt"), key=lambda p: p.stat().st_mtime) if where.is_dir() else []
    if not found:
        raise TrainingCommandError(
            f"--ckpt_path last: no last.ckpt under {where}. Give the same --trainer.default_root_dir (or "
            f"--checkpoint.dirpath) as the interrupted run, or the checkpoint's path."
        )
    print(f"resuming from {found[-1]}")
    return str(found[-1])


def _check_ckpt_path(ckpt_path: str | None) -> str | None:
    """Return an error message if ``ckpt_path`` is a file path that cannot be a checkpoint."""
    if ckpt_path is None or ckpt_path in ("best", "last", "hpc", "registry"):
        return None
    if not os.path.isfile(ckpt_path):
        return f"checkpoint not found: {ckpt_path} (give a .ckpt written by 'inharmony fit', 'best' or 'last')"
    import torch

    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            return None  # a readable file holding extra Python objects: Lightning decides
        return _corrupt(ckpt_path, err)
    except Exception as err:
        return _corrupt(ckpt_path, err)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        return (
            f"{ckpt_path} is not a Lightning checkpoint (no 'state_dict'). For bare network weights use "
            f"--model.model_kwargs or 'inharmony predict --weights {ckpt_path}'."
        )
    return None


def _make_cli_class() -> type:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    from ..callbacks import LocalizationMetricsCallback
    from ..visualize import SamplePredictionsCallback

    class InharmonyCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults(
                {
                    "checkpoint.monitor": "val/iou",
                    "checkpoint.mode": "max",
                    "checkpoint.save_last": True,
                    "checkpoint.filename": "best-{epoch:03d}-{step:06d}",
                    "checkpoint.auto_insert_metric_name": False,
                }
            )
            parser.add_lightning_class_args(LocalizationMetricsCallback, "metrics")
            parser.add_lightning_class_args(SamplePredictionsCallback, "samples")
            parser.add_argument(
                "--ckpt_path",
                type=str | None,
                default=None,
                help="checkpoint to resume (fit) or evaluate: a path, 'best' or 'last'",
            )
            parser.add_argument(
                "--out",
                type=str | None,
                default=None,
                help="where 'test' writes metrics.json and metrics.md (default: beside the checkpoint); "
                "where 'predict' writes mask PNGs",
            )

    return InharmonyCLI


def _trainer_defaults() -> dict[str, Any]:
    # logger=True (Lightning's default) is TensorBoard when installed, else a CSVLogger, both under
    # default_root_dir. The rich progress bar only where there is a terminal to draw on.
    from lightning.pytorch.callbacks import RichProgressBar

    return {
        "callbacks": [RichProgressBar()] if sys.stderr.isatty() else [],
        "default_root_dir": "runs",
    }


class TrainingCommandError(RuntimeError):
    """A training command cannot run; the message says why and what to do."""


def build_cli(subcommand: str, argv: list[str]) -> Any:
    """Parse ``argv`` with LightningCLI and instantiate model, data and trainer (nothing runs yet).

    Raises:
        SystemExit: on ``--help`` or an argument error (jsonargparse prints the reason).
        TrainingCommandError: on a bad checkpoint path.
    """
    if subcommand not in TRAINING_SUBCOMMANDS:
        raise ValueError(f"unknown training subcommand {subcommand!r}; expected one of {TRAINING_SUBCOMMANDS}")
    from ..data import IHarmony4DataModule
    from ..task import LocalizationTask

    # LightningCLI warns when sys.argv also holds arguments; here they are the same ones, and
    # sys.argv must stay intact because DDP re-launches the command from it.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter", category=UserWarning)
    cli = _make_cli_class()(
        LocalizationTask,
        IHarmony4DataModule,
        args=argv,
        run=False,
        trainer_defaults=_trainer_defaults(),
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "prog": f"inharmony {subcommand}",
            "description": f"inharmony {subcommand} (LightningCLI). Example: {EXAMPLES[subcommand]}",
            "default_env": False,
        },
    )
    if cli.config.get("ckpt_path") == "last":
        cli.config["ckpt_path"] = _find_last_checkpoint(cli)
    problem = _check_ckpt_path(cli.config.get("ckpt_path"))
    if problem:
        raise TrainingCommandError(problem)
    return cli


def execute(cli: Any, subcommand: str) -> dict[str, Any]:
    """Run ``subcommand`` on a :func:`build_cli` result.

    Returns:
        ``{"best_model_path": ...}`` after ``fit``; ``{"results": ..., "files": [...]}`` after ``test``
        (the per-subset dict and the table files written); ``{}`` otherwise.
    """
    ckpt_path = cli.config.get("ckpt_path")
    trainer = cli.trainer
    if subcommand == "fit":
        trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best and trainer.is_global_zero:
            print(f"best checkpoint: {best}")
        return {"best_model_path": best}
    if subcommand == "validate":
        trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
        return {}
    if subcommand == "test":
        trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
        return _write_test_results(cli, ckpt_path)
    from ..visualize import PredictionMaskWriter

    out = cli.config.get("out")
    if out is None:
        raise TrainingCommandError("predict with --config needs --out DIR (where the mask PNGs go)")
    trainer.callbacks.append(PredictionMaskWriter(out))
    trainer.predict(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, return_predictions=False)
    if trainer.is_global_zero:
        print(f"wrote predicted masks under {out}")
    return {}


def run_lightning(subcommand: str, argv: list[str]) -> int:
    """Run ``inharmony <subcommand> ARGS`` through LightningCLI; returns the exit code.

    Args:
        subcommand: ``"fit"``, ``"validate"``, ``"test"`` or ``"predict"``.
        argv: The arguments after the subcommand, e.g. ``["--config", "configs/dirl.yaml"]``.

    Example:
        >>> run_lightning("fit", ["--config", "configs/demo.yaml"])  # doctest: +SKIP
        0
    """
    from ..data import DataError
    from ..models._checkpoint import CheckpointError

    try:
        cli = build_cli(subcommand, argv)
    except SystemExit as exit_:  # argparse / jsonargparse already printed the reason
        return exit_.code if isinstance(exit_.code, int) else _error(str(exit_.code))
    except (TrainingCommandError, DataError, CheckpointError) as err:
        return _error(str(err))
    try:
        execute(cli, subcommand)
    except (TrainingCommandError, DataError, CheckpointError) as err:
        return _error(str(err))
    except OSError as err:
        if err.errno == errno.ENOSPC:
            return _error(
                f"no space left on the device while writing {err.filename or 'a checkpoint'}. Free space or "
                f"point --trainer.default_root_dir / --checkpoint.dirpath elsewhere, then resume with "
                f"--ckpt_path last (the last complete checkpoint is intact)."
            )
        raise
    return 0


def _write_test_results(cli: Any, ckpt_path: str | None) -> dict[str, Any]:
    from ..callbacks import LocalizationMetricsCallback
    from ..results import print_results_table, write_results

    trainer = cli.trainer
    callback = next((c for c in trainer.callbacks if isinstance(c, LocalizationMetricsCallback)), None)
    results = getattr(callback, "test_results", None)
    if not results or not trainer.is_global_zero:
        return {"results": results, "files": []}
    out = cli.config.get("out")
    if out is None:
        if ckpt_path and os.path.isfile(ckpt_path):
            out = str(Path(ckpt_path).parent)
        else:
            out = trainer.log_dir or trainer.default_root_dir
    title = f"{cli.model.model_name}" + (f" — {Path(ckpt_path).name}" if ckpt_path else "")
    print_results_table(results, title=title)
    paths = write_results(results, out, title=title)
    print("wrote " + ", ".join(str(p) for p in paths))
    return {"results": results, "files": paths}
