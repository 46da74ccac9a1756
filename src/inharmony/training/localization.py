"""The LightningModule that trains and evaluates every registered architecture.

:class:`LocalizationTask` is a thin layer over a plain network: the network, its loss recipe,
the optimizer and the learning-rate schedule are all arguments, so one class serves DIRL,
RSRNet and any model registered later, from Python or from ``inharmony fit --config ...``.
Metrics are computed by :class:`inharmony.training.callbacks.LocalizationMetricsCallback` from what the
evaluation steps return.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.utils.data import DistributedSampler

from ..errors import CheckpointError, TrainingCommandError
from ..models import create_model

__all__ = ["LocalizationTask"]


class LocalizationTask(L.LightningModule):
    """Train, validate, test and predict an inharmonious-region localization network.

    Args:
        model: A registered model name (see :func:`inharmony.list_models`) or a ready ``nn.Module``
            whose forward returns at least ``{"mask": (B,1,H,W) probabilities}``.
        model_kwargs: Constructor arguments for a registered model, e.g.
            ``{"pretrained_backbone": True}``.
        loss: Module mapping ``(outputs, target)`` to a dict with key ``"loss"``; default:
            :func:`inharmony.losses.loss_for_model` for the model name.
        optimizer: Callable building the optimizer from the parameters (default: ``torch.optim.Adam``
            with its defaults; the paper recipes are in ``configs/``).
        lr_scheduler: Optional callable building a scheduler from the optimizer; stepped per epoch
            unless ``lr_scheduler_interval="step"``.
        lr_scheduler_interval: ``"epoch"`` or ``"step"``.
        eval_outputs: The output keys scored on validation and test, each a ``(B, 1, H, W)`` map in
            [0, 1] (default ``["mask"]``). With several, e.g. RSRNet's ``["mask", "mask_dec", "mask_rsr"]``
            (its paper's Table 3), the test gives one per-subset table per key; the first is the one
            logged as ``test/ap`` and monitored on validation, the others are logged as
            ``test/<key>/ap``. A key the network does not return is an error at the first batch.
        channels_last: Keep the network's weights and every input batch in the ``channels_last``
            memory format (faster convolutions with oneDNN on CPU and cuDNN on GPU). Outputs and
            checkpoints are the same.
        compile: ``torch.compile`` the network for training and evaluation: ``True`` (inductor,
            torch's defaults) or a dict of ``torch.compile`` arguments, e.g. ``{"mode":
            "max-autotune"}`` or ``{"backend": "eager"}``. The first step of each input shape compiles
            (tens of seconds on CPU); checkpoint keys are unchanged.
        grad_checkpointing: Recompute the full-resolution stage's activations in backward instead of
            storing them (``set_grad_checkpointing`` of the network and its parts, e.g. the
            encoder's stem and ``layer1``): much less memory per image for some extra compute;
            outputs, gradients and BatchNorm statistics are unchanged.

    Mixed precision is the trainer's: ``trainer.precision: bf16-mixed`` (CPU and GPU) or ``16-mixed``
    (GPU) runs the network under autocast; the losses compute in float32 whatever the precision.
    :attr:`inference_precision` (set by ``inharmony test --precision bf16``) tests through
    :func:`inharmony.inference.optimize` instead of the plain network, and :attr:`inference_tta`
    (``inharmony test --tta hv``) through :class:`inharmony.inference.tta.FlipAverage`.

    The network is ``self.model``, so checkpoint keys are ``"model.<network key>"``; the model name
    and ``model_kwargs`` are saved as hyper-parameters, so :meth:`load_from_checkpoint` rebuilds
    the network without the command line.

    Example:
        >>> task = LocalizationTask("dirl_resnet18")
        >>> out = task(torch.randn(1, 3, 64, 64))
        >>> out["mask"].shape
        torch.Size([1, 1, 64, 64])
        >>> fast = LocalizationTask("dirl_resnet18", channels_last=True, grad_checkpointing=True)
    """

    inference_precision: str | None = None
    """``"fp32"``, ``"bf16"`` or ``"fp16"``: test through :func:`inharmony.inference.optimize` (BatchNorm
    folded, channels_last, autocast) at that precision; ``None`` (default): the plain network."""

    inference_tta: str | None = None
    """``"h"``, ``"v"`` or ``"hv"``: test through :class:`inharmony.inference.tta.FlipAverage` (the masks of flipped
    copies averaged; set by ``inharmony test --tta hv``); ``None`` (default): one pass per image."""

    def __init__(
        self,
        model: str | nn.Module = "dirl",
        model_kwargs: dict[str, Any] | None = None,
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: str = "epoch",
        eval_outputs: list[str] | None = None,
        channels_last: bool = False,
        compile: bool | dict[str, Any] = False,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(compile, (bool, dict)):
            raise ValueError(f"compile must be true/false or a dict of torch.compile arguments, got {compile!r}")
        if lr_scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"lr_scheduler_interval must be 'epoch' or 'step', got {lr_scheduler_interval!r}")
        outputs = ["mask"] if eval_outputs is None else list(eval_outputs)
        if not outputs or len(set(outputs)) != len(outputs) or not all(isinstance(k, str) for k in outputs):
            raise ValueError(f"eval_outputs must be one or more distinct output keys, got {eval_outputs!r}")
        # Callables and modules are not hyper-parameters: LightningCLI records them in config.yaml.
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
        if loss is None:
            from ..losses import loss_for_model

            loss = loss_for_model(self.model_name)
        self.loss = loss
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.lr_scheduler_interval = lr_scheduler_interval
        self.eval_outputs = outputs
        self._eval_seen = 0
        self.channels_last = bool(channels_last)
        self.compile_options: dict[str, Any] | None = (
            (dict(compile) if isinstance(compile, dict) else {}) if compile is not False else None
        )
        self.__dict__["_compiled"] = None  # not a submodule: checkpoint keys stay "model.*"
        self.__dict__["_inference_model"] = None
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

    # ----------------------------------------------------------------------------- forward / steps
    def forward(self, image: torch.Tensor) -> dict[str, Any]:
        """The network's output dict for a normalised ``(B, 3, H, W)`` batch."""
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self._network()(image)

    def _network(self) -> nn.Module:
        if self.compile_options is None:
            return self.model
        if self._compiled is None:
            self.__dict__["_compiled"] = torch.compile(self.model, **self.compile_options)
        return self._compiled

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        image, target = batch["image"], batch["mask"]
        losses = self.loss(self(image), target)
        for key, value in losses.items():
            self.log(f"train/{key}", value.detach(), prog_bar=key == "loss", batch_size=image.shape[0])
        return losses["loss"]

    def _eval_step(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        image, target = batch["image"], batch["mask"]
        fast = self._inference_model if stage == "test" else None
        outputs = fast(image) if fast is not None else self(image)
        loss = self.loss(outputs, target)["loss"]
        self.log(f"{stage}/loss", loss, batch_size=image.shape[0], sync_dist=True)
        keep = self._unpadded(image.shape[0], stage)
        # float32 whatever the autocast precision: the metrics' per-image sort and sums need it.
        masks = {name: self._output(outputs, name)[:keep].detach().float() for name in self.eval_outputs}
        result = {"mask": masks[self.eval_outputs[0]], "masks": masks, "target": target[:keep]}
        if "subset" in batch:
            result["subset"] = list(batch["subset"])[:keep]
        if "path" in batch:
            result["path"] = list(batch["path"])[:keep]
        return result

    def _output(self, outputs: dict[str, Any], name: str) -> torch.Tensor:
        value = outputs.get(name) if isinstance(outputs, dict) else None
        if isinstance(value, torch.Tensor) and value.ndim == 4 and value.shape[1] == 1:
            return value
        maps = [k for k, v in outputs.items() if isinstance(v, torch.Tensor) and v.ndim == 4 and v.shape[1] == 1]
        raise TrainingCommandError(
            f"--model.eval_outputs: {name!r} is not a (B,1,H,W) output of {self.model_name!r}; "
            f"its (B,1,H,W) outputs are: {', '.join(maps) or '(none)'}"
        )

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return {"mask": self(batch["image"])["mask"], "path": list(batch.get("path", []))}

    # --------------------------------------------------------------------- no sample scored twice
    def on_validation_epoch_start(self) -> None:
        self._eval_seen = 0

    def on_test_epoch_start(self) -> None:
        self._eval_seen = 0

    def on_test_start(self) -> None:
        # Built here, after Lightning has loaded --ckpt_path's weights and moved the network.
        network = None
        if self.inference_precision is not None:
            from ..inference import optimize

            network = optimize(self.model, precision=self.inference_precision, channels_last=True)
        if self.inference_tta is not None:
            from ..inference.tta import FlipAverage

            network = FlipAverage(network if network is not None else self.model, flips=self.inference_tta)
        self.__dict__["_inference_model"] = network

    def on_test_end(self) -> None:
        self.__dict__["_inference_model"] = None

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
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.parameters())
        if self.lr_scheduler is None:
            return optimizer
        scheduler = self.lr_scheduler(optimizer)
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
