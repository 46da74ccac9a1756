"""What every inharmony LightningModule shares: the network and its loss, optimizers, evaluation glue, checkpoints.

:class:`TaskBase` holds the machinery; a task subclasses it and says what is its own: which metrics
callback scores it (``metrics_callback``) and which of its metrics picks the best checkpoint
(``monitor``), how a batch reaches the network (``_forward_batch``) and what its evaluation steps
hand to that callback (``_scored``)."""

from __future__ import annotations

import random
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.utils.data import DistributedSampler

from ..errors import CheckpointError, TrainingCommandError
from ..losses import loss_for_model
from ..models import create_model
from .callbacks import LocalizationMetricsCallback

__all__ = ["TaskBase"]


class TaskBase(L.LightningModule):
    """The shared LightningModule of :class:`~inharmony.training.LocalizationTask` and
    :class:`~inharmony.training.HarmonizationTask`; not used on its own.

    The network is ``self.model`` and the loss ``self.loss``, so checkpoint keys are ``"model.<network key>"``
    (and ``"loss.<key>"`` for a loss with parameters); the model name and ``model_kwargs`` are saved as
    hyper-parameters, so ``load_from_checkpoint`` rebuilds the network without the command line. Each
    checkpoint also keeps the global RNG states, so a resumed run draws what an uninterrupted one would.

    Args:
        model: A registered model name (see :func:`inharmony.list_models`) or a ready ``nn.Module``.
        model_kwargs: Constructor arguments for a registered model, e.g. ``{"pretrained_backbone": True}``.
        loss: Module mapping ``(outputs, targets)`` to a dict with key ``"loss"``; default:
            :func:`inharmony.losses.loss_for_model` for the model name.
        optimizer: Callable building the optimizer from the parameters (default: ``torch.optim.Adam``).
        lr_scheduler: Optional callable building a scheduler from the (first) optimizer.
        lr_scheduler_interval: ``"epoch"`` or ``"step"``.
        channels_last: Keep the network's weights and every input batch in ``channels_last`` memory format.
        compile: ``torch.compile`` the network: ``True`` or a dict of ``torch.compile`` arguments.
        grad_checkpointing: Turn on the network's ``set_grad_checkpointing`` (less memory, same gradients).

    Example:
        >>> from inharmony.training import LocalizationTask
        >>> issubclass(LocalizationTask, TaskBase), LocalizationTask.monitor
        (True, 'val/iou')
    """

    metrics_callback: ClassVar[type[LocalizationMetricsCallback]]
    """The callback that scores what the evaluation steps return (``inharmony fit``'s ``--metrics.*``); each task
    names its own."""

    monitor: ClassVar[str]
    """The logged metric whose maximum picks the best checkpoint (``inharmony fit``'s default
    ``--checkpoint.monitor``); each task names its own."""

    def __init__(
        self,
        model: str | nn.Module,
        model_kwargs: dict[str, Any] | None = None,
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: str = "epoch",
        channels_last: bool = False,
        compile: bool | dict[str, Any] = False,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(compile, (bool, dict)):
            raise ValueError(f"compile must be true/false or a dict of torch.compile arguments, got {compile!r}")
        if lr_scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"lr_scheduler_interval must be 'epoch' or 'step', got {lr_scheduler_interval!r}")
        # Callables and modules are not hyper-parameters: LightningCLI records them in config.yaml. Lightning
        # collects the arguments of every __init__ up the subclass chain, as they are now (before any change).
        ignore = ["loss", "optimizer", "lr_scheduler"]
        if isinstance(model, nn.Module):
            ignore.append("model")
        self.save_hyperparameters(ignore=ignore)
        model_kwargs = dict(model_kwargs or {})
        if isinstance(model, str):
            self.model_name = model
            self.model = create_model(model, **model_kwargs)
        elif isinstance(model, nn.Module):
            if model_kwargs:
                raise ValueError("model_kwargs only apply when the model is given by name")
            self.model_name = getattr(getattr(model, "pretrained_cfg", None), "architecture", type(model).__name__)
            self.model = model
        else:
            raise TypeError(f"model must be a registered name or an nn.Module, got {type(model).__name__}")
        self.loss = loss if loss is not None else loss_for_model(self.model_name)
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.lr_scheduler_interval = lr_scheduler_interval
        self._eval_seen = 0
        self.channels_last = bool(channels_last)
        self.compile_options: dict[str, Any] | None = (
            (dict(compile) if isinstance(compile, dict) else {}) if compile is not False else None
        )
        self.__dict__["_compiled"] = None  # not a submodule: checkpoint keys stay "model.*"
        if grad_checkpointing:
            parts = [m for m in self.model.modules() if callable(getattr(m, "set_grad_checkpointing", None))]
            if not parts:
                raise ValueError(
                    f"grad_checkpointing: {self.model_name!r} has no set_grad_checkpointing method (nothing to "
                    "checkpoint); the registered models have one"
                )
            for part in parts:
                part.set_grad_checkpointing(True)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------------- what a task says
    def _forward_batch(self, batch: dict[str, Any], stage: str) -> tuple[Any, Any]:
        """``(network outputs, the loss's targets)`` for a batch; ``stage`` is ``"train"``, ``"val"`` or ``"test"``."""
        raise NotImplementedError

    def _scored(self, outputs: Any, targets: Any, keep: int) -> dict[str, Any]:
        """What an evaluation step returns to :attr:`metrics_callback`: the first ``keep`` samples' predictions."""
        raise NotImplementedError

    def _manual_optimization_step(self, outputs: Any, targets: Any, losses: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Step the optimizers of a task with ``automatic_optimization = False``; returns extra values to log."""
        raise NotImplementedError(f"{type(self).__name__} optimizes manually but defines no _manual_optimization_step")

    # ----------------------------------------------------------------------------- network
    def _network(self) -> nn.Module:
        if self.compile_options is None:
            return self.model
        if self._compiled is None:
            self.__dict__["_compiled"] = torch.compile(self.model, **self.compile_options)
        return self._compiled

    def _run_network(self, image: torch.Tensor, *args: Any) -> Any:
        """The network (compiled if asked) on ``image`` (``channels_last`` if asked) and further inputs."""
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self._network()(image, *args)

    def _output(self, outputs: dict[str, Any], name: str) -> torch.Tensor:
        value = outputs.get(name) if isinstance(outputs, dict) else None
        if isinstance(value, torch.Tensor) and value.ndim == 4 and value.shape[1] == 1:
            return value
        maps = [k for k, v in outputs.items() if isinstance(v, torch.Tensor) and v.ndim == 4 and v.shape[1] == 1]
        raise TrainingCommandError(
            f"--model.eval_outputs: {name!r} is not a (B,1,H,W) output of {self.model_name!r}; "
            f"its (B,1,H,W) outputs are: {', '.join(maps) or '(none)'}"
        )

    # ----------------------------------------------------------------------------- steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        outputs, targets = self._forward_batch(batch, "train")
        losses = self.loss(outputs, targets)
        if not self.automatic_optimization:
            losses.update(self._manual_optimization_step(outputs, targets, losses))
            if self.lr_scheduler_interval == "step":
                self._step_scheduler()
        for key, value in losses.items():
            self.log(f"train/{key}", value.detach(), prog_bar=key == "loss", batch_size=batch["image"].shape[0])
        return losses["loss"]

    def on_train_epoch_end(self) -> None:
        if not self.automatic_optimization and self.lr_scheduler_interval == "epoch":
            self._step_scheduler()

    def _step_scheduler(self) -> None:
        # Lightning steps schedulers itself only under automatic optimization.
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    def _eval_step(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        outputs, targets = self._forward_batch(batch, stage)
        size = batch["image"].shape[0]
        self.log(f"{stage}/loss", self.loss(outputs, targets)["loss"], batch_size=size, sync_dist=True)
        keep = self._unpadded(size, stage)
        result = self._scored(outputs, targets, keep)
        for key in ("subset", "path"):
            if key in batch:
                result[key] = list(batch[key])[:keep]
        return result

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "test")

    # --------------------------------------------------------------------- no sample scored twice
    def on_validation_epoch_start(self) -> None:
        self._eval_seen = 0

    def on_test_epoch_start(self) -> None:
        self._eval_seen = 0

    def _unpadded(self, batch_size: int, stage: str) -> int:
        """How many samples of this batch are real, not DistributedSampler padding.

        Under DDP, Lightning gives evaluation loaders a ``DistributedSampler`` that repeats the
        first samples so every rank gets as many; rank ``r`` receives global positions
        ``r, r + R, r + 2R, ...`` and positions ``>= len(dataset)`` are the repeats. Dropping them
        here means every sample is scored exactly once (metrics are then summed over ranks).
        """
        seen, self._eval_seen = self._eval_seen, self._eval_seen + batch_size
        if self._trainer is None:
            return batch_size
        loaders = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        if isinstance(loaders, (list, tuple)):
            loaders = loaders[0] if len(loaders) == 1 else None
        sampler = getattr(loaders, "sampler", None)
        if not isinstance(sampler, DistributedSampler) or sampler.drop_last:
            return batch_size
        n = len(sampler.dataset)
        keep = 0
        for i in range(seen, seen + batch_size):
            if sampler.rank + i * sampler.num_replicas < n:
                keep += 1
        return keep

    # --------------------------------------------------------------------------------- optimizers
    def _optimized_parameters(self) -> list[nn.Parameter]:
        """The parameters :attr:`optimizer` trains (default: all, the loss's included)."""
        return list(self.parameters())

    def _other_optimizers(self) -> list[torch.optim.Optimizer]:
        """Optimizers besides the main one (e.g. a GAN's discriminator's); none by default."""
        return []

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self._optimized_parameters())
        scheduler = self.lr_scheduler(optimizer) if self.lr_scheduler is not None else None
        others = self._other_optimizers()
        if others:
            optimizers = [optimizer, *others]
            return (optimizers, [scheduler]) if scheduler is not None else optimizers
        if scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.lr_scheduler_interval},
        }

    # ------------------------------------------------------------------------- checkpoint hygiene
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning does not save the global RNG states; keeping them makes a resumed run draw
        # the same shuffles and augmentations as an uninterrupted one.
        # Stored as tensors and plain tuples so that weights-only loading accepts them.
        np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
        checkpoint["inharmony_rng"] = {
            "torch": torch.get_rng_state(),
            "numpy": (np_kind, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss),
            "python": random.getstate(),
        }
        checkpoint["inharmony_model_name"] = self.model_name

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("inharmony_model_name") or checkpoint.get("hyper_parameters", {}).get("model")
        state = checkpoint.get("state_dict")
        if not isinstance(state, dict):
            raise CheckpointError("the checkpoint has no 'state_dict': it is not a Lightning checkpoint")
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        misshapen = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
        if missing or unexpected or misshapen:
            what = f"a checkpoint of {saved!r}" if isinstance(saved, str) else "a checkpoint"
            details = "; ".join(
                f"{label} ({len(keys)}): {', '.join(keys[:5])}"
                for label, keys in (
                    ("missing", missing),
                    ("unexpected", unexpected),
                    ("wrong shape", misshapen),
                )
                if keys
            )
            raise CheckpointError(
                f"{what} does not fit the model {self.model_name!r} being trained/evaluated ({details}). "
                f"Use the config the checkpoint was trained with, e.g. --model.model {saved}"
                if isinstance(saved, str)
                else f"{what} does not fit the model {self.model_name!r} ({details})"
            )
        rng = checkpoint.get("inharmony_rng")
        if rng is not None and self._trainer is not None and self.trainer.state.fn == "fit":
            # Restored now, before Lightning builds the first resumed epoch's loader iterator, so the
            # iterator's base seed and the shuffle draw what an uninterrupted run would have drawn.
            # (Not on test/validate, and not in load_from_checkpoint: no hidden global side effect.)
            torch.set_rng_state(rng["torch"])
            kind, keys, pos, has_gauss, gauss = rng["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
            random.setstate(rng["python"])
