"""LightningCLI behind ``inharmony fit / validate / test / predict``.

LightningCLI parses and runs its own subcommands. The data module is chosen by ``class_path``
(``data: {class_path: inharmony.data.IHarmony4DataModule, init_args: {root: ...}}`` in YAML, any
``LightningDataModule``); without one it is :class:`~inharmony.data.IHarmony4DataModule`, so
``--data.root DIR`` alone works. Every run also gets:

* ``--checkpoint.*``: a :class:`~lightning.pytorch.callbacks.ModelCheckpoint` keeping the best
  epoch by the task's ``monitor`` (``val/iou``; a harmonizer's ``val/psnr``) (``best-*.ckpt``);
* ``--last.*``: :class:`inharmony.training.checkpointing.LastCheckpoint`, ``last.ckpt`` in the same folder, always
  the last state: after every validation and epoch, at the end of fit, every
  ``--last.every_n_train_steps`` steps (default 0: off) and every ``--last.every_n_minutes`` minutes
  (default 30; 0: off), and on Ctrl+C / SIGTERM (the step finishes, ``last.ckpt`` is written, fit stops
  with exit code 130 / 143). ``--checkpoint.save_last`` is ignored: ``--last`` writes ``last.ckpt``;
* ``--metrics.*``: the task's ``metrics_callback``: :class:`inharmony.training.callbacks.LocalizationMetricsCallback`
  (AP, F1, IoU, official protocol; a harmonizer's :class:`~inharmony.training.callbacks.HarmonizationMetricsCallback`),
  per subset on test;
* ``--samples.*``: :class:`inharmony.training.callbacks.predictions.SamplePredictionsCallback`, prediction images every
  N training steps;
* every checkpoint written atomically in its own folder (:class:`inharmony.training.checkpointing.AtomicCheckpointIO`,
  unless ``--trainer.plugins`` names another ``CheckpointIO``): a kill or a full disk never leaves a
  truncated file under a checkpoint's name;
* ``--ckpt_path last``: the newest *intact* checkpoint under the run folder, earlier runs included (to
  resume); broken ones are skipped with the reason, and the one chosen is printed;
* arguments checked before anything is built (data root, batch and image sizes against the model's
  size multiple, the model name, ``--ckpt_path``): a one- or two-line error naming the option, exit 2;
* ``--out``: where ``test`` writes ``metrics.json`` / ``metrics.md`` (default: beside the
  checkpoint) and ``predict`` writes mask PNGs. With ``--model.eval_outputs '[mask, mask_dec]'`` the
  test prints one table per output; ``metrics.md`` has a section per output, ``metrics.json`` holds the
  first and ``metrics-<output>.json`` each other one.
"""

from __future__ import annotations

import difflib
import importlib
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Literal

from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from .. import data as data_package
from ..errors import CheckpointError, TrainingCommandError, UnknownModelError
from ..files import atomic_write
from ..training import HarmonizationTask, LocalizationTask, TaskBase
from ..training.callbacks import LocalizationMetricsCallback
from ..training.callbacks.predictions import PredictionMaskWriter, SamplePredictionsCallback
from ..training.checkpointing import (
    RESUME_KEYS,
    AtomicCheckpointIO,
    LastCheckpoint,
    find_os_error,
    find_resume_checkpoint,
    is_disk_full,
    newest_intact_checkpoint,
)
from ..training.harmonization import HarmonizationCLIMixin, wants_harmonization
from .exit_codes import EXIT_SIGINT, EXIT_SIGTERM, warn
from .quiet import quiet_lightning, split_verbose

__all__ = [
    "DEFAULT_DATAMODULE",
    "EXAMPLES",
    "FAST_PIXELS_NOTE",
    "InharmonyCLI",
    "TrainingCommandError",
    "check_arguments",
    "check_checkpoint",
    "lightning_cli",
    "results_title",
    "run_lightning",
]

FAST_PIXELS_NOTE = "fast evaluation pixels (not the authors')"
"""Added to the test table's title when the data module evaluated with ``eval_pixels="fast"``."""

DEFAULT_DATAMODULE = f"{data_package.__name__}.{data_package.IHarmony4DataModule.__name__}"
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

    model_class: type[TaskBase]

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults({"data": {"class_path": DEFAULT_DATAMODULE}})
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": self.model_class.monitor,
                "checkpoint.mode": "max",
                "checkpoint.save_last": None,  # LastCheckpoint (--last.*) writes last.ckpt
                "checkpoint.filename": "best-{epoch:03d}-{step:06d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(LastCheckpoint, "last")
        parser.add_lightning_class_args(self.model_class.metrics_callback, "metrics")
        parser.add_lightning_class_args(SamplePredictionsCallback, "samples")
        parser.add_argument(
            "--out",
            type=str | None,
            default=None,
            help="where 'test' writes metrics.json and metrics.md (default: beside the checkpoint); "
            "where 'predict' writes mask PNGs",
        )
        parser.add_argument(
            "--precision",
            type=Literal["fp32", "bf16", "fp16", "auto"] | None,
            default=None,
            help="'test' only: evaluate through inharmony.inference.optimize (BatchNorm folded, channels_last) "
            "at this precision: fp32, bf16 (about 2x faster on CPUs with AVX512-BF16/AMX and on GPUs; masks move "
            "by a few thousandths) or fp16 (CUDA); auto: bf16 where it is native (AVX512-BF16/AMX CPUs, GPUs with "
            "bf16), else fp32. Default: the plain network as trained. Training precision is --trainer.precision "
            "(e.g. bf16-mixed)",
        )
        parser.add_argument(
            "--tta",
            type=Literal["h", "v", "hv"] | None,
            default=None,
            help="'test' only: average the masks of flipped copies of each image (inharmony.inference.FlipAverage): "
            "h = as is + left-right (2 passes), v = + upside down (2), hv = all four flips (4 passes). "
            "Default: one pass",
        )

    def _parse_ckpt_path(self) -> None:
        # Replaces LightningCLI's, which reads the checkpoint's hyper-parameters into the config: here
        # the config decides the architecture, and a checkpoint of another one is an error, not a switch.
        config = self.config[self.config.subcommand]
        if config.get("ckpt_path") == "last":
            config["ckpt_path"] = _find_last_checkpoint(config)
        else:
            check_checkpoint(config.get("ckpt_path"), resume=self.config.subcommand == "fit")
        if self.config.subcommand == "predict" and not config.get("out"):
            raise TrainingCommandError("predict with --config needs --out DIR (where the mask PNGs go)")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.config.subcommand]
        if config.get("precision") is not None and self.config.subcommand != "test":
            raise TrainingCommandError(
                f"--precision is for 'inharmony test' only (it evaluates through inharmony.inference.optimize); "
                f"for '{self.config.subcommand}' set the training precision with --trainer.precision, e.g. bf16-mixed"
            )
        if config.get("tta") is not None and self.config.subcommand != "test":
            raise TrainingCommandError(
                f"--tta is for 'inharmony test' only; '{self.config.subcommand}' runs the network once per image"
            )
        check_arguments(config)
        if (config.get("checkpoint") or {}).get("save_last"):
            config.checkpoint.save_last = None  # --last writes last.ckpt (two writers would make last-v1.ckpt)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        # Every checkpoint written atomically in its own folder, unless the user chose a CheckpointIO.
        plugins = self.config_init[self.subcommand]["trainer"].get("plugins") if self.subcommand else None
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            kwargs.setdefault("plugins", [*plugins, AtomicCheckpointIO()])
        return super().instantiate_trainer(**kwargs)

    def fit(self, model: Any, **kwargs: Any) -> None:
        """``trainer.fit``, with a signal's stop and a full disk turned into a short message and an exit code."""
        on_main_thread = threading.current_thread() is threading.main_thread()
        sigint = signal.getsignal(signal.SIGINT) if on_main_thread else None
        try:
            self.trainer.fit(model, **kwargs)
        except SystemExit:  # Lightning exits after a KeyboardInterrupt; SIGTERMException is one too
            last = next((c for c in self.trainer.callbacks if isinstance(c, LastCheckpoint)), None)
            stopped_by = getattr(last, "interrupted_by", None)
            if stopped_by is None:
                raise
            if self.trainer.is_global_zero:
                warn("to go on, run the same command with --ckpt_path last")
            raise SystemExit(EXIT_SIGINT if stopped_by == "SIGINT" else EXIT_SIGTERM) from None
        except BaseException as err:
            if is_disk_full(err):
                raise TrainingCommandError(_disk_full_message(err, self.config.fit)) from err
            raise
        finally:
            if sigint is not None:
                signal.signal(signal.SIGINT, sigint)  # Lightning leaves Ctrl+C ignored after an interrupt

    def after_fit(self) -> None:
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        if best and self.trainer.is_global_zero:
            print(f"best checkpoint: {best}")

    def before_test(self) -> None:
        precision = self.config.test.get("precision")
        if precision is not None:
            self.model.inference_precision = precision
        tta = self.config.test.get("tta")
        if tta is not None:
            self.model.inference_tta = tta

    def after_test(self) -> None:
        self.result_files = []
        callback = next((c for c in self.trainer.callbacks if isinstance(c, LocalizationMetricsCallback)), None)
        self.test_results = getattr(callback, "test_results", None)
        by_output = dict(getattr(callback, "results_by_output", None) or {})
        if not self.test_results or not self.trainer.is_global_zero:
            return
        from ..metrics.report import print_results_table, results_markdown, results_to_json

        ckpt_path = self.config.test.get("ckpt_path")
        out = self.config.test.get("out")
        if out is None:
            on_disk = ckpt_path and os.path.isfile(ckpt_path)
            out = str(Path(ckpt_path).parent) if on_disk else self.trainer.log_dir or self.trainer.default_root_dir
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        name = getattr(self.model, "model_name", type(self.model).__name__)
        tables = by_output if len(by_output) > 1 else {None: self.test_results}
        sections = []
        for i, (output, results) in enumerate(tables.items()):
            title = results_title(name, self.datamodule, ckpt_path, output=output)
            if self.config.test.get("precision"):
                title += f" — {self.config.test.precision} (inharmony.inference.optimize)"
            if self.config.test.get("tta"):
                title += f" — flip TTA {self.config.test.tta!r} (inharmony.inference.tta.FlipAverage)"
            print_results_table(results, title=title)
            json_path = out / ("metrics.json" if i == 0 else f"metrics-{output}.json")
            with atomic_write(json_path, "w") as fh:
                fh.write(results_to_json(results) + "\n")
            self.result_files.append(json_path)
            sections.append(results_markdown(results, title))
        with atomic_write(out / "metrics.md", "w") as fh:
            fh.write("\n".join(sections))
        self.result_files.insert(1, out / "metrics.md")
        print("wrote " + ", ".join(str(p) for p in self.result_files))

    def before_predict(self) -> None:
        self.trainer.callbacks.append(PredictionMaskWriter(self.config.predict.out))
        if self.config_init.predict.get("return_predictions") is None:
            self.config_init.predict["return_predictions"] = False

    def after_predict(self) -> None:
        if self.trainer.is_global_zero:
            print(f"wrote predicted masks under {self.config.predict.out}")


def results_title(model_name: str, datamodule: Any, ckpt_path: str | None, output: str | None = None) -> str:
    """The title of a test table: model, checkpoint file, output key (when several), and the pixels' note.

    Example:
        >>> results_title("rsrnet", None, "runs/x/best.ckpt", output="mask_dec")
        "rsrnet — best.ckpt — output 'mask_dec'"
    """
    parts = [model_name]
    if ckpt_path:
        parts.append(Path(ckpt_path).name)
    if output:
        parts.append(f"output {output!r}")
    hparams = getattr(datamodule, "hparams", None)
    if hparams is not None and hparams.get("eval_pixels") == "fast":
        parts.append(FAST_PIXELS_NOTE)
    return " — ".join(parts)


def _run_folder(config: Any) -> Path:
    """Where ``--ckpt_path last`` looks: ``--checkpoint.dirpath`` or ``--trainer.default_root_dir`` (recursively)."""
    dirpath = (config.get("checkpoint") or {}).get("dirpath")
    return Path(dirpath) if dirpath else Path(config.trainer.get("default_root_dir") or os.getcwd())


def _find_last_checkpoint(config: Any) -> str:
    """The newest intact checkpoint of earlier runs (Lightning's own ``"last"`` only looks in this run's folder)."""
    where = _run_folder(config)
    found, skipped = find_resume_checkpoint(where)
    for path, why in skipped:
        warn(f"--ckpt_path last: skipping {path}: {why}")
    if found is None:
        broken = f" (broken: {', '.join(str(p) for p, _ in skipped)})" if skipped else ""
        raise TrainingCommandError(
            f"--ckpt_path last: no intact checkpoint under {where}{broken}. Give the same "
            "--trainer.default_root_dir (or --checkpoint.dirpath) as the interrupted run, or a checkpoint's path."
        )
    print(f"resuming from {found}")
    return str(found)


def check_checkpoint(ckpt_path: str | None, *, resume: bool = False) -> None:
    """Fail early, with a clear message naming ``--ckpt_path``, on a file that cannot be used.

    Args:
        ckpt_path: The ``--ckpt_path`` value (``None`` and Lightning's keywords are not checked).
        resume: ``fit`` resumes training from it, so it must hold the training state too.

    Raises:
        TrainingCommandError: the file does not exist, or cannot be resumed from.
        CheckpointError: it is corrupt, holds pickled objects, or is not a Lightning checkpoint.

    Example:
        >>> check_checkpoint(None)
    """
    if ckpt_path is None or ckpt_path in ("best", "last", "hpc", "registry"):
        return
    if not os.path.isfile(ckpt_path):
        raise TrainingCommandError(
            f"--ckpt_path: checkpoint not found: {ckpt_path} (give a .ckpt written by 'inharmony fit', 'best' "
            "or 'last')"
        )
    from ..models.converters.lightning import read_lightning_checkpoint

    try:
        payload = read_lightning_checkpoint(ckpt_path, trust=False)
    except CheckpointError as err:
        if "trust" in str(err):  # the training commands have no such option: never suggest unsafe loading
            raise CheckpointError(
                f"--ckpt_path {ckpt_path}: refused, it holds Python objects beyond tensors and plain containers "
                "(a checkpoint written by 'inharmony fit' never does). Give a checkpoint of your own run."
            ) from None
        raise CheckpointError(f"--ckpt_path: {err}") from None
    missing = [key for key in RESUME_KEYS if key not in payload]
    if resume and missing:
        raise TrainingCommandError(
            f"--ckpt_path {ckpt_path}: cannot resume training from it, it holds no training state "
            f"({', '.join(missing)} missing: saved with weights only?). Give a full checkpoint of the run, "
            "e.g. its last.ckpt."
        )


def _disk_full_message(err: BaseException, config: Any) -> str:
    cause = find_os_error(err)
    file = getattr(cause, "filename", None) or "a file"
    intact = newest_intact_checkpoint(_run_folder(config))
    head = f"no space left on the device while writing {file}."
    if intact is None:
        return (
            f"{head} There is no intact checkpoint under {_run_folder(config)} yet.\n"
            "Free space (or point --trainer.default_root_dir elsewhere), then run fit again from the start."
        )
    path, step = intact
    return (
        f"{head} The newest intact checkpoint is {path} (step {step}).\n"
        "Free space (or point --trainer.default_root_dir elsewhere), then resume: the same command with "
        "--ckpt_path last."
    )


def check_arguments(config: Any) -> None:
    """Check a LightningCLI subcommand's arguments before anything is built (raises with the option's name).

    Checks the data module's root/streaming, batch and image sizes (against the model's
    ``pretrained_cfg.size_multiple``), the model name (with close matches), ``--model.eval_outputs`` and
    ``--last.*``. Values of data modules other than :class:`~inharmony.data.IHarmony4DataModule` (and
    its subclasses) are left to their own checks.

    Raises:
        TrainingCommandError: an argument is wrong; the message names the option and what to give.
        UnknownModelError: ``--model.model`` is not a registered name (close matches listed).

    Example:
        >>> check_arguments({"model": {"model": "dirl"}, "data": {}})  # nothing wrong: returns None
    """
    model = config.get("model") or {}
    name = model.get("model")
    multiple = None
    if isinstance(name, str):
        multiple = _size_multiple(name)
    outputs = model.get("eval_outputs")
    if outputs is not None and (not outputs or len(set(outputs)) != len(outputs)):
        raise TrainingCommandError(f"--model.eval_outputs {list(outputs)}: give one or more distinct output keys")
    last = config.get("last") or {}
    for key in ("every_n_train_steps", "every_n_minutes"):
        value = last.get(key)
        if value is not None and value < 0:
            raise TrainingCommandError(f"--last.{key} {value}: must be >= 0 (0: off)")
    data = config.get("data") or {}
    if _is_ihd_datamodule(data.get("class_path")):
        _check_data(data.get("init_args") or {}, name if isinstance(name, str) else None, multiple)


def _size_multiple(name: str) -> int:
    from ..models import get_pretrained_cfg, list_models, list_pretrained

    try:
        return int(get_pretrained_cfg(name).size_multiple)
    except UnknownModelError:
        close = difflib.get_close_matches(name, [*list_models(), *list_pretrained()], n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise UnknownModelError(
            f"--model.model {name!r}: unknown model; {hint}(registered: {', '.join(list_models())}; "
            "'inharmony models' lists them with their weight tags)"
        ) from None


def _is_ihd_datamodule(class_path: Any) -> bool:
    if not isinstance(class_path, str):
        return False
    module, _, attr = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(cls, type) and issubclass(cls, data_package.IHarmony4DataModule)


def _check_data(args: Any, model_name: str | None, multiple: int | None) -> None:
    root, streaming = args.get("root"), args.get("streaming")
    if root is None and streaming is None:
        raise TrainingCommandError(
            "--data.root: no dataset given. Pass --data.root DIR (the iHarmony4 folder) or --data.streaming DIR "
            "(chunks written by 'inharmony data optimize')"
        )
    if root is not None and streaming is not None:
        raise TrainingCommandError("--data.root and --data.streaming: give one of them, not both")
    if root is not None and not os.path.isdir(root):
        raise TrainingCommandError(
            f"--data.root {root}: not a directory. Give the iHarmony4 folder (the one holding HCOCO/, HAdobe5k/, ...)"
        )
    if streaming is not None and "://" not in str(streaming) and not os.path.isdir(streaming):
        raise TrainingCommandError(
            f"--data.streaming {streaming}: not a directory (write it with 'inharmony data optimize')"
        )
    for key in ("batch_size", "eval_batch_size"):
        value = args.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise TrainingCommandError(f"--data.{key} {value}: must be at least 1")
    workers = args.get("num_workers")
    if workers is not None and workers < 0:
        raise TrainingCommandError(f"--data.num_workers {workers}: must be 0 (load in the main process) or more")
    size = args.get("image_size")
    if size is None:
        return
    if not isinstance(size, int) or size < 1:
        raise TrainingCommandError(f"--data.image_size {size}: must be a positive number of pixels")
    if multiple and size % multiple:
        lower, upper = (size // multiple) * multiple, (size // multiple + 1) * multiple
        choices = f"{lower} or {upper}" if lower else str(upper)
        raise TrainingCommandError(
            f"--data.image_size {size}: {model_name} takes sizes that are multiples of {multiple} "
            f"(its pretrained_cfg.size_multiple); use e.g. {choices}"
        )


def _trainer_defaults(verbose: bool) -> dict[str, Any]:
    # logger=True (Lightning's default) is TensorBoard when installed, else a CSVLogger, both under
    # default_root_dir. The rich progress bar only where there is a terminal to draw on. Lightning's model
    # summary only with --verbose: its FLOPs column reads 0 for every inharmony model (it needs an
    # example_input_array), and `inharmony models --markdown` gives the real parameters and GFLOPs.
    return {
        "callbacks": [RichProgressBar()] if sys.stderr.isatty() else [],
        "default_root_dir": "runs",
        "enable_model_summary": verbose,
    }


def lightning_cli(argv: list[str]) -> InharmonyCLI:
    """Parse ``argv`` (``["fit", "--config", ...]``) and run it; returns the finished CLI object.

    Raises:
        SystemExit: after ``--help`` or ``--print_config`` (code 0).
        argparse.ArgumentError: an unknown or invalid option or config key.
        InharmonyError: a bad checkpoint path, dataset, or checkpoint of another model.

    A harmonizer (a model whose registered loss is a harmonization loss, e.g. ``s2am``: see
    :func:`inharmony.training.harmonization.wants_harmonization`, read from ``--config`` and ``--model.model``)
    runs with :class:`~inharmony.training.harmonization.HarmonizationTask` and its CLI; every other model with
    :class:`~inharmony.training.localization.LocalizationTask`.

    ``--verbose`` (anywhere in ``argv``) brings back Lightning's info lines, model summary, raw metric
    table and third-party warnings, which are off by default (:mod:`inharmony.cli.quiet`).

    Example:
        >>> cli = lightning_cli(["fit", "--config", "configs/demo.yaml", "--data.root", "data/s"])  # doctest: +SKIP
        >>> cli.trainer.checkpoint_callback.best_model_path  # doctest: +SKIP
    """
    argv, verbose = split_verbose(argv)
    quiet_lightning(verbose)
    if argv and argv[0] in ("test", "validate"):  # there it is Trainer.test/validate's own: the raw metric table
        argv = [*argv, "--verbose", "true" if verbose else "false"]
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
    # The task class must be known before LightningCLI builds its parser: it is read from the model's name.
    cli_class: type[InharmonyCLI] = InharmonyCLI
    task_class: type[TaskBase] = LocalizationTask
    if wants_harmonization(argv):
        cli_class = type("HarmonizationCLI", (HarmonizationCLIMixin, InharmonyCLI), {})
        task_class = HarmonizationTask
    return cli_class(
        task_class,
        LightningDataModule,
        subclass_mode_data=True,
        args=argv,
        trainer_defaults=_trainer_defaults(verbose),
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
