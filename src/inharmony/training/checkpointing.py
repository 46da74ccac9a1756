"""Checkpoints that are never lost: atomic writes, a ``last.ckpt`` that is the last state, a safe resume.

Three pieces, each usable with plain Lightning as well as by ``inharmony fit`` (which installs all three):

* :class:`AtomicCheckpointIO`: a ``CheckpointIO`` plugin that writes every checkpoint through
  :func:`inharmony.files.atomic_write` (a temporary file in the checkpoint's own folder, fsync, rename),
  so a kill or a full disk never leaves a truncated file under a checkpoint's name. Lightning's default
  writes to the system temp folder and *moves* the file, which is a copy when the two are on different
  filesystems: a kill or a full disk during that copy truncates the checkpoint.
* :class:`LastCheckpoint`: a callback that keeps ``last.ckpt`` the last training state: after every
  validation and epoch, at the end of fit, every N steps and/or every M minutes, and on SIGINT/SIGTERM
  (save at the next step boundary, then stop). ``ModelCheckpoint(save_last=True)`` rewrites ``last.ckpt``
  only when it also saves a top-k checkpoint, i.e. when the monitored score improves.
* :func:`find_resume_checkpoint`: the newest *intact* checkpoint under a folder (cheap checks first:
  the zip directory, then the payload's keys), with the broken ones it skipped and why.

Example:
    >>> from lightning.pytorch import Trainer
    >>> trainer = Trainer(  # doctest: +SKIP
    ...     callbacks=[LastCheckpoint(every_n_train_steps=1000, every_n_minutes=30)],
    ...     plugins=[AtomicCheckpointIO()],
    ... )
    >>> path, skipped = find_resume_checkpoint("runs/dirl")  # doctest: +SKIP
    >>> trainer.fit(model, datamodule=data, ckpt_path=path)  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..errors import CheckpointError, find_cause
from ..files import atomic_write

__all__ = [
    "RESUME_KEYS",
    "AtomicCheckpointIO",
    "LastCheckpoint",
    "checkpoint_problem",
    "find_os_error",
    "find_resume_checkpoint",
    "is_disk_full",
    "newest_intact_checkpoint",
]

RESUME_KEYS = ("state_dict", "global_step", "epoch", "loops", "optimizer_states")
"""Keys a Lightning checkpoint needs for training to resume from it (a ``save_weights_only`` file lacks some)."""


def find_os_error(error: BaseException) -> OSError | None:
    """The first ``OSError`` in ``error``'s chain (``__cause__``/``__context__``), ``error`` itself included.

    torch reports a failing write as ``RuntimeError: [enforce fail ...]`` with the ``OSError`` (a full disk,
    a quota) as its context; this finds it.

    Example:
        >>> find_os_error(RuntimeError("x")) is None
        True
    """
    return find_cause(error, OSError)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO``, but a local checkpoint is written atomically in its own folder.

    The payload is streamed by ``torch.save`` into a temporary file beside the destination, fsynced and
    renamed over it (:func:`inharmony.files.atomic_write`): the previous file of that name stays intact
    until the new one is complete, and no copy crosses a filesystem. A failing write raises the
    ``OSError`` behind it (e.g. ``errno.ENOSPC``), not torch's ``RuntimeError`` wrapper. Remote paths
    (``s3://``, ...) go through Lightning's own writer.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> trainer = Trainer(plugins=[AtomicCheckpointIO()], logger=False)  # doctest: +SKIP
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_write(path) as fh:
                torch.save(checkpoint, fh)
        except Exception as err:
            cause = find_os_error(err)
            if cause is not None and (cause is not err or not cause.filename):
                raise OSError(cause.errno, cause.strerror or str(cause), str(path)) from err
            raise


class LastCheckpoint(Checkpoint):
    """Keep ``last.ckpt`` the last training state: the file to resume from, always.

    Saved (atomically with :class:`AtomicCheckpointIO`):

    * at the end of every training epoch (after its validation and the ``ModelCheckpoint``), and after
      every validation run in the middle of an epoch (``val_check_interval``);
    * at the end of fit (whatever the monitored score did);
    * every ``every_n_train_steps`` optimizer steps and every ``every_n_minutes`` minutes (0: off);
    * on SIGTERM and, with ``on_signal``, on the first Ctrl+C (SIGINT): the step in progress finishes,
      ``last.ckpt`` is written, then fit stops (a second Ctrl+C stops at once, without saving).

    A checkpoint taken in the middle of an optimizer step would mix old and new weights, so the
    signals are only acted upon between steps. Saves are skipped during the sanity check, with
    ``fast_dev_run`` and before the first step.

    Args:
        dirpath: Folder of ``last.ckpt``. Default: the folder of the trainer's first ``ModelCheckpoint``,
            else ``<log_dir or default_root_dir>/checkpoints`` (where ``ModelCheckpoint`` would write).
        filename: File name without ``.ckpt``.
        every_n_train_steps: Also save every N training steps (0: only at the points above).
        every_n_minutes: Also save when this many minutes passed since the last save (0: off).
        on_signal: Handle Ctrl+C as above (Lightning's own SIGTERM handling triggers the save either way).

    Attributes:
        last_model_path: The file written last ("" before the first save).
        interrupted_by: ``"SIGINT"`` or ``"SIGTERM"`` after fit was stopped by a signal, else ``None``.

    Example:
        >>> callback = LastCheckpoint(every_n_train_steps=1000, every_n_minutes=30)
        >>> callback.filename
        'last'
    """

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str = "last",
        every_n_train_steps: int = 0,
        every_n_minutes: float = 30.0,
        on_signal: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(every_n_train_steps, int) or every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be a whole number >= 0 (0: off), got {every_n_train_steps!r}")
        if every_n_minutes is None or not every_n_minutes >= 0:
            raise ValueError(f"every_n_minutes must be >= 0 (0: off), got {every_n_minutes!r}")
        if not filename or "/" in filename or filename.endswith(".ckpt"):
            raise ValueError(f"filename must be a bare name without '.ckpt' (e.g. 'last'), got {filename!r}")
        self.dirpath = dirpath
        self.filename = filename
        self.every_n_train_steps = every_n_train_steps
        self.every_n_minutes = float(every_n_minutes)
        self.on_signal = on_signal
        self.last_model_path = ""
        self.interrupted_by: str | None = None
        self._saved_step = -1
        self._saved_where = ""
        self._last_time = time.monotonic()
        self._stop_requested = False
        self._raised_stop = False
        self._previous_sigint: Any = None

    @property
    def state_key(self) -> str:
        return f"{type(self).__name__}{{'filename': {self.filename!r}}}"

    # --------------------------------------------------------------------------------- set-up
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if self.dirpath is None:
            self.dirpath = _default_dirpath(trainer)
        self.interrupted_by = None
        self._stop_requested = self._raised_stop = False
        if self.on_signal and threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._restore_sigint()

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) == self._on_sigint:
                signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last_time = time.monotonic()

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._stop_requested:  # the second Ctrl+C: stop now, no save
            signal.signal(signal.SIGINT, self._previous_sigint or signal.default_int_handler)
            raise KeyboardInterrupt
        self._stop_requested = True
        print(
            "\ninharmony: Ctrl+C: finishing this step, saving last.ckpt, then stopping "
            "(Ctrl+C again to stop at once without saving)",
            file=sys.stderr,
            flush=True,
        )

    # ---------------------------------------------------------------------------------- hooks
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stop = self.on_signal and self._sync_any(trainer, self._stop_requested)
        if stop or trainer.received_sigterm:
            self._save(trainer, "signal")
            if stop:  # on SIGTERM, Lightning raises SIGTERMException itself after this hook
                self._raised_stop = True
                raise KeyboardInterrupt
            return
        where = "step" if self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0 else ""
        if self.every_n_minutes > 0:
            now = time.monotonic()
            on_time = now - self._last_time >= 60.0 * self.every_n_minutes
            if trainer.world_size > 1:  # clocks differ between processes: rank 0 decides for all
                on_time = trainer.strategy.broadcast(on_time)
            if on_time:
                self._last_time = now
                where = where or "time"
        if where:
            self._save(trainer, where)

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.on_signal and trainer.state.fn == "fit" and self._sync_any(trainer, self._stop_requested):
            self._raised_stop = True  # the weights are a finished step's: on_exception saves them
            raise KeyboardInterrupt

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # A validation at the end of an epoch is followed by on_train_epoch_end, which saves after the
        # ModelCheckpoint has recorded its best there: last.ckpt then carries that record too.
        at_epoch_end = getattr(trainer.fit_loop.epoch_loop.batch_progress, "is_last_batch", False)
        if trainer.state.fn == "fit" and not at_epoch_end:
            self._save(trainer, "validation")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer, "epoch")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not (self._saved_step == trainer.global_step and self._saved_where in ("validation", "epoch", "signal")):
            self._save(trainer, "end")

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore_sigint()
        if isinstance(exception, SIGTERMException):
            self.interrupted_by = "SIGTERM"
        elif isinstance(exception, KeyboardInterrupt) and self._raised_stop:
            self.interrupted_by = "SIGINT"
        else:
            return  # a crash (or a second Ctrl+C) may come mid-step: keep the last consistent state
        if self._saved_step != trainer.global_step:
            self._save(trainer, "signal")
        if trainer.is_global_zero:
            where = self.last_model_path or "nothing (no training step was finished)"
            print(
                f"inharmony: fit stopped by {self.interrupted_by} at step {trainer.global_step}; "
                f"last state saved to {where}",
                file=sys.stderr,
                flush=True,
            )

    # ------------------------------------------------------------------------------- helpers
    def _save(self, trainer: Trainer, where: str) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.global_step == 0:
            return
        if self.dirpath is None:
            self.dirpath = _default_dirpath(trainer)
        path = os.path.join(self.dirpath, f"{self.filename}.ckpt")
        trainer.save_checkpoint(path)
        self.last_model_path = path
        self._saved_step, self._saved_where = trainer.global_step, where
        self._last_time = time.monotonic()

    @staticmethod
    def _sync_any(trainer: Trainer, flag: bool) -> bool:
        # Ctrl+C reaches every process, not always within the same step: stop together, or a save deadlocks.
        if trainer.world_size > 1:
            return bool(trainer.strategy.reduce_boolean_decision(flag, all=False))
        return flag


def _default_dirpath(trainer: Trainer) -> str:
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            return str(callback.dirpath)
    return os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")


# -------------------------------------------------------------------------------------------- resume
def checkpoint_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be resumed from, or ``None`` when it is an intact Lightning training checkpoint.

    Cheap checks first (the file is not empty and its zip directory, at the end of the file, reads: a
    truncated file fails here), then :func:`inharmony.models.converters.lightning.read_lightning_checkpoint` (safe,
    weights-only loading) and the keys training needs (:data:`RESUME_KEYS`).

    Example:
        >>> checkpoint_problem("no/such/file.ckpt")
        'not found'
    """
    return _inspect(Path(path))[0]


def _inspect(path: Path) -> tuple[str | None, int]:
    """``(problem or None, global_step)``."""
    if not path.is_file():
        return "not found", -1
    if path.stat().st_size == 0:
        return "empty (0 bytes): its write was cut short", -1
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "truncated or corrupt: its zip directory cannot be read", -1
    if not any(name.endswith("data.pkl") for name in names):
        return "not a PyTorch checkpoint (no data.pkl in the archive)", -1
    from ..models.converters.lightning import read_lightning_checkpoint

    try:
        payload = read_lightning_checkpoint(path, trust=False)
    except CheckpointError as err:
        return str(err), -1
    missing = [key for key in RESUME_KEYS if key not in payload]
    if missing:
        return f"no training state to resume from ({', '.join(missing)} missing: saved with weights only?)", -1
    return None, int(payload["global_step"])


def _candidates(folder: Path) -> list[Path]:
    found = [p for p in folder.rglob("*.ckpt") if p.is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name.startswith("last")), reverse=True)


def find_resume_checkpoint(folder: str | os.PathLike[str]) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest intact checkpoint under ``folder`` (searched recursively), and the broken ones skipped.

    Checkpoints are tried newest first (by modification time; ``last*.ckpt`` first on a tie) until one
    passes :func:`checkpoint_problem`.

    Returns:
        ``(path or None, [(skipped path, why), ...])``.

    Example:
        >>> path, skipped = find_resume_checkpoint("runs/dirl")  # doctest: +SKIP
    """
    found = _find(Path(folder))
    return found[0], found[2]


def _find(folder: Path) -> tuple[Path | None, int, list[tuple[Path, str]]]:
    skipped: list[tuple[Path, str]] = []
    for path in _candidates(folder):
        problem, step = _inspect(path)
        if problem is None:
            return path, step, skipped
        skipped.append((path, problem))
    return None, -1, skipped


def newest_intact_checkpoint(folder: str | os.PathLike[str]) -> tuple[Path, int] | None:
    """``(path, global_step)`` of the newest intact checkpoint under ``folder``, or ``None``.

    Example:
        >>> newest_intact_checkpoint("no/such/folder") is None
        True
    """
    path, step, _ = _find(Path(folder))
    return None if path is None else (path, step)


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a full disk or an exceeded quota.

    Example:
        >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
        True
    """
    cause = find_os_error(error)
    return cause is not None and cause.errno in (errno.ENOSPC, errno.EDQUOT)
