"""The LightningModule that trains and evaluates every registered architecture.

:class:`LocalizationTask` is a thin layer over a plain network: the network, its loss recipe,
the optimizer and the learning-rate schedule are all arguments, so one class serves DIRL,
RSRNet and any model registered later, from Python or from ``inharmony fit --config ...``.
Metrics are computed by :class:`inharmony.training.callbacks.LocalizationMetricsCallback` (its
:attr:`~LocalizationTask.metrics_callback`) from what the evaluation steps return; the shared machinery
(optimizers, checkpoints, the evaluation loop) is :class:`~inharmony.training._base.TaskBase`'s.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ._base import TaskBase
from .callbacks import LocalizationMetricsCallback

__all__ = ["LocalizationTask"]


class LocalizationTask(TaskBase):
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

    metrics_callback = LocalizationMetricsCallback
    monitor = "val/iou"

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
        outputs = ["mask"] if eval_outputs is None else list(eval_outputs)
        if not outputs or len(set(outputs)) != len(outputs) or not all(isinstance(k, str) for k in outputs):
            raise ValueError(f"eval_outputs must be one or more distinct output keys, got {eval_outputs!r}")
        super().__init__(
            model, model_kwargs, loss, optimizer, lr_scheduler, lr_scheduler_interval,
            channels_last=channels_last, compile=compile, grad_checkpointing=grad_checkpointing,
        )  # fmt: skip
        self.eval_outputs = outputs
        self.__dict__["_inference_model"] = None

    def forward(self, image: torch.Tensor) -> dict[str, Any]:
        """The network's output dict for a normalised ``(B, 3, H, W)`` batch."""
        return self._run_network(image)

    def _forward_batch(self, batch: dict[str, Any], stage: str) -> tuple[dict[str, Any], torch.Tensor]:
        image = batch["image"]
        fast = self._inference_model if stage == "test" else None
        return (fast(image) if fast is not None else self(image)), batch["mask"]

    def _scored(self, outputs: dict[str, Any], targets: torch.Tensor, keep: int) -> dict[str, Any]:
        # float32 whatever the autocast precision: the metrics' per-image sort and sums need it.
        masks = {name: self._output(outputs, name)[:keep].detach().float() for name in self.eval_outputs}
        return {"mask": masks[self.eval_outputs[0]], "masks": masks, "target": targets[:keep]}

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return {"mask": self(batch["image"])["mask"], "path": list(batch.get("path", []))}

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
