"""LightningCLI behind ``inharmony fit / validate / test / predict``.

LightningCLI parses and runs its own subcommands. The data module is chosen by ``class_path``
(``data: {class_path: inharmony.data.IHarmony4DataModule, init_args: {root: ...}}`` in YAML, any
``LightningDataModule``); without one it is :class:`~inharmony.data.IHarmony4DataModule`, so
``--data.root DIR`` alone works. Every run also gets:

* ``--checkpoint.*``: a :class:`~lightning.pytorch.callbacks.ModelCheckpoint` keeping the best
  epoch by ``val/iou`` and ``last.ckpt``;
* ``--metrics.*``: :class:`inharmony.callbacks.LocalizationMetricsCallback` (AP, F1, IoU, official
  protocol), per subset on test;
* ``--samples.*``: :class:`inharmony.visualize.SamplePredictionsCallback`, prediction images every
  N training steps;
* ``--ckpt_path last``: the newest ``last*.ckpt`` under the run folder, earlier runs included (to
  resume); a checkpoint path is checked before anything is built;
* ``--out``: where ``test`` writes ``metrics.json`` / ``metrics.md`` (default: beside the
  checkpoint) and ``predict`` writes mask PNGs.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from ..callbacks import LocalizationMetricsCallback
from ..errors import TrainingCommandError
from ..task import LocalizationTask
from ..visualize import PredictionMaskWriter, SamplePredictionsCallback

__all__ = ["DEFAULT_DATAMODULE", "EXAMPLES", "InharmonyCLI", "TrainingCommandError", "lightning_cli", "run_lightning"]

DEFAULT_DATAMODULE = "inharmony.data.IHarmony4DataModule"
_RUN = "--config configs/dirl.yaml --data.root /data/iHarmony4"
_CKPT = "--ckpt_path runs/dirl/lightning_logs/version_0/checkpoints/last.ckpt"
EXAMPLES = {
    "fit": f"inharmony fit {_RUN}",
    "validate": f"inharmony validate {_RUN} {_CKPT}",
    "test": f"inharmony test {_RUN} {_CKPT} --out results/dirl",
    "predict": f"inharmony predict {_RUN} {_CKPT} --out masks/",
}


class InharmonyCLI(LightningCLI):
    """LightningCLI with inharmony's callbacks, checkpoint checks and result files (see the module docstring)."""

    test_results: dict[str, dict[str, float]] | None = None
    """The per-subset table of the last ``test`` run (rank 0), also written to ``--out``."""
    result_files: list[Path]

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults({"data": {"class_path": DEFAULT_DATAMODULE}})
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
            "--out",
            type=str | None,
            default=None,
            help="where 'test' writes metrics.json and metrics.md (default: beside the checkpoint); "
            "where 'predict' writes mask PNGs",
        )

    def _parse_ckpt_path(self) -> None:
        # Replaces LightningCLI's, which reads the checkpoint's hyper-parameters into the config: here
        # the config decides the architecture, and a checkpoint of another one is an error, not a switch.
        config = self.config[self.config.subcommand]
        if config.get("ckpt_path") == "last":
            config["ckpt_path"] = _find_last_checkpoint(config)
        check_checkpoint(config.get("ckpt_path"))
        if self.config.subcommand == "predict" and not config.get("out"):
            raise TrainingCommandError("predict with --config needs --out DIR (where the mask PNGs go)")

    def after_fit(self) -> None:
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        if best and self.trainer.is_global_zero:
            print(f"best checkpoint: {best}")

    def after_test(self) -> None:
        self.result_files = []
        callback = next((c for c in self.trainer.callbacks if isinstance(c, LocalizationMetricsCallback)), None)
        self.test_results = getattr(callback, "test_results", None)
        if not self.test_results or not self.trainer.is_global_zero:
            return
        from ..metrics.report import print_results_table, write_results

        ckpt_path = self.config.test.get("ckpt_path")
        out = self.config.test.get("out")
        if out is None:
            on_disk = ckpt_path and os.path.isfile(ckpt_path)
            out = str(Path(ckpt_path).parent) if on_disk else self.trainer.log_dir or self.trainer.default_root_dir
        title = f"{getattr(self.model, 'model_name', type(self.model).__name__)}" + (
            f" — {Path(ckpt_path).name}" if ckpt_path else ""
        )
        print_results_table(self.test_results, title=title)
        self.result_files = list(write_results(self.test_results, out, title=title))
        print("wrote " + ", ".join(str(p) for p in self.result_files))

    def before_predict(self) -> None:
        self.trainer.callbacks.append(PredictionMaskWriter(self.config.predict.out))
        if self.config_init.predict.get("return_predictions") is None:
            self.config_init.predict["return_predictions"] = False

    def after_predict(self) -> None:
        if self.trainer.is_global_zero:
            print(f"wrote predicted masks under {self.config.predict.out}")


def _find_last_checkpoint(config: Any) -> str:
    """The newest ``last*.ckpt`` of earlier runs (Lightning's own ``"last"`` only looks in this run's folder)."""
    dirpath = config.get("checkpoint", {}).get("dirpath")
    where = Path(dirpath) if dirpath else Path(config.trainer.get("default_root_dir") or os.getcwd())
    found = sorted(where.rglob("last*.ckpt"), key=lambda p: p.stat().st_mtime) if where.is_dir() else []
    if not found:
        raise TrainingCommandError(
            f"--ckpt_path last: no last.ckpt under {where}. Give the same --trainer.default_root_dir (or "
            f"--checkpoint.dirpath) as the interrupted run, or the checkpoint's path."
        )
    print(f"resuming from {found[-1]}")
    return str(found[-1])


def check_checkpoint(ckpt_path: str | None) -> None:
    """Fail early, with a clear message, on a ``--ckpt_path`` file that cannot be a Lightning checkpoint.

    Raises:
        TrainingCommandError: the file does not exist.
        CheckpointError: it is corrupt, holds pickled objects, or is not a Lightning checkpoint.
    """
    if ckpt_path is None or ckpt_path in ("best", "last", "hpc", "registry"):
        return
    if not os.path.isfile(ckpt_path):
        raise TrainingCommandError(
            f"checkpoint not found: {ckpt_path} (give a .ckpt written by 'inharmony fit', 'best' or 'last')"
        )
    from ..converters import read_lightning_checkpoint

    read_lightning_checkpoint(ckpt_path, trust=False)


def _trainer_defaults() -> dict[str, Any]:
    # logger=True (Lightning's default) is TensorBoard when installed, else a CSVLogger, both under
    # default_root_dir. The rich progress bar only where there is a terminal to draw on.
    return {"callbacks": [RichProgressBar()] if sys.stderr.isatty() else [], "default_root_dir": "runs"}


def lightning_cli(argv: list[str]) -> InharmonyCLI:
    """Parse ``argv`` (``["fit", "--config", ...]``) and run it; returns the finished CLI object.

    Raises:
        SystemExit: after ``--help`` or ``--print_config`` (code 0).
        argparse.ArgumentError: an unknown or invalid option or config key.
        InharmonyError: a bad checkpoint path, dataset, or checkpoint of another model.

    Example:
        >>> cli = lightning_cli(["fit", "--config", "configs/demo.yaml", "--data.root", "data/s"])  # doctest: +SKIP
        >>> cli.trainer.checkpoint_callback.best_model_path  # doctest: +SKIP
    """
    # LightningCLI warns when sys.argv also holds arguments; here they are the same ones, and
    # sys.argv must stay intact because DDP re-launches the command from it.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter", category=UserWarning)
    subcommand_kwargs = {
        name: {
            "description": f"inharmony {name} (LightningCLI). Example: {example}\n"
            f"'--data.help {DEFAULT_DATAMODULE}' lists the data module's options.",
            "exit_on_error": False,
        }
        for name, example in EXAMPLES.items()
    }
    return InharmonyCLI(
        LocalizationTask,
        LightningDataModule,
        subclass_mode_data=True,
        args=argv,
        trainer_defaults=_trainer_defaults(),
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "inharmony", "default_env": False, "exit_on_error": False, **subcommand_kwargs},
    )


def run_lightning(subcommand: str, argv: list[str]) -> int:
    """Run ``inharmony <subcommand> ARGV`` through LightningCLI; returns 0 (errors raise, see :func:`lightning_cli`).

    Example:
        >>> run_lightning("fit", ["--config", "configs/demo.yaml", "--data.root", "data/hsynth"])  # doctest: +SKIP
        0
    """
    lightning_cli([subcommand, *argv])
    return 0
