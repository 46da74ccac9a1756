"""Training and evaluation of a harmonizer (S2AM): the LightningModule and what the CLI changes for it.

* :class:`HarmonizationTask`: a :class:`~inharmony.training._base.TaskBase` for networks that return a harmonized
  ``"image"``. It feeds the composite (and, to a mask-guided model such as ``s2am``, the mask), computes the
  loss against the real image (the data module adds ``batch["real"]`` because the task says
  ``needs_real = True``), and returns what its metrics callback,
  :class:`~inharmony.training.callbacks.HarmonizationMetricsCallback`, scores: MSE, fMSE and PSNR of the
  iHarmony4 protocol, plus AP/F1/IoU when the model also predicts a ``"mask"``.
* :class:`HarmonizationCLIMixin`: what ``inharmony fit/validate/test`` changes for a harmonizer beyond the task's
  own metrics callback and monitored metric (:func:`inharmony.cli.lightning.lightning_cli` mixes it into its
  CLI when the config's model is one, see :func:`wants_harmonization`).

Example:
    >>> task = HarmonizationTask("s2am", model_kwargs={"num_downs": 5})
    >>> image, mask = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    >>> task(image, mask)["image"].shape
    torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import TrainingCommandError, UnknownModelError
from ._base import TaskBase
from .callbacks import HarmonizationMetricsCallback

__all__ = [
    "HarmonizationCLIMixin",
    "HarmonizationTask",
    "is_harmonizer",
    "wants_harmonization",
]


def _takes_mask(model: nn.Module) -> bool:
    try:
        return "mask" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


class HarmonizationTask(TaskBase):
    """Train, validate and test a harmonizer (``s2am``, ``s2am_maskfree`` or any module returning ``"image"``).

    The network gets the composite in its own normalisation (its ``pretrained_cfg.mean/std``; the batches
    arrive normalised with ``data_mean/data_std``, the data module's) and, if its ``forward`` has a ``mask``
    parameter, the ground-truth mask; it returns ``{"image": RGB in [0, 1]}`` (and, mask-free, ``"mask"``).
    A model whose ``forward`` takes no mask is taken to predict one (the mask-free contract): its
    ``"mask"`` is scored with AP/F1/IoU too.

    Args:
        model: Registered name (``"s2am"``, ``"s2am_maskfree"``) or an ``nn.Module``.
        model_kwargs: Constructor arguments of a registered model (e.g. ``{"num_downs": 8}``).
        loss: ``loss(outputs, {"real", "mask", "composite"}) -> {"loss", ...}``; default: the model's
            registered loss (:class:`~inharmony.losses.S2AMLoss` / :class:`~inharmony.losses.S2AMMaskFreeLoss`).
            With an adversarial term (``loss.discriminator``) the task trains the discriminator with a second
            optimizer built by ``optimizer`` (manual optimization).
        optimizer: Optimizer callable (default ``torch.optim.Adam``).
        lr_scheduler: Optional scheduler callable (the generator's).
        lr_scheduler_interval: ``"epoch"`` or ``"step"``.
        paste: On validation and test, paste the network's output into the composite with the given mask
            (``out·M + composite·(1 − M)``), the post-processing of the paper (§3.3, "pp") and of the authors'
            iHarmony4 evaluation, for a mask-guided model. Mask-free models blend themselves (``blend``).
        data_mean: Mean the batches' ``image`` was normalised with (the data module's: ImageNet).
        data_std: Std the batches' ``image`` was normalised with.

    Example:
        >>> task = HarmonizationTask("s2am_maskfree", model_kwargs={"num_downs": 5})
        >>> sorted(task(torch.rand(1, 3, 32, 32)))
        ['attention', 'image', 'mask']
    """

    metrics_callback = HarmonizationMetricsCallback
    monitor = "val/psnr"

    #: The data module reads this: batches must hold ``real`` (the ground-truth image).
    needs_real = True

    def __init__(
        self,
        model: str | nn.Module = "s2am",
        model_kwargs: dict[str, Any] | None = None,
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: str = "epoch",
        paste: bool = True,
        data_mean: Sequence[float] = IMAGENET_MEAN,
        data_std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__(model, model_kwargs, loss, optimizer, lr_scheduler, lr_scheduler_interval)
        self.paste = bool(paste)
        self.takes_mask = _takes_mask(self.model)
        self.predicts_mask = not self.takes_mask
        cfg = getattr(self.model, "pretrained_cfg", None)
        model_mean = getattr(cfg, "mean", IMAGENET_MEAN)
        model_std = getattr(cfg, "std", IMAGENET_STD)
        for name, values in (
            ("data_mean", data_mean),
            ("data_std", data_std),
            ("mean", model_mean),
            ("std", model_std),
        ):
            if len(values) != 3:
                raise ValueError(f"{name} must have 3 values (RGB), got {values!r}")
        self.register_buffer("_data_mean", torch.tensor(data_mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("_data_std", torch.tensor(data_std, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("_model_mean", torch.tensor(model_mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("_model_std", torch.tensor(model_std, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.adversarial = getattr(self.loss, "discriminator", None) is not None
        if self.adversarial:
            self.automatic_optimization = False

    # ----------------------------------------------------------------------------- forward
    def composite(self, image: torch.Tensor) -> torch.Tensor:
        """The composite in RGB [0, 1] from a batch image normalised with ``data_mean/data_std``."""
        return image * self._data_std + self._data_mean

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, Any]:
        """The network's outputs for a batch ``image`` (normalised as the data module does) and ``mask``."""
        x = (self.composite(image) - self._model_mean) / self._model_std
        if self.takes_mask:
            if mask is None:
                raise ValueError(f"{self.model_name} harmonizes a given region: pass the mask (B, 1, H, W)")
            return self._run_network(x, mask.to(x.dtype))
        return self._run_network(x)

    def _forward_batch(self, batch: Mapping[str, Any], stage: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        if "real" not in batch:
            raise TrainingCommandError(
                "the batch holds no 'real' image: a harmonizer trains against the real images; use "
                "IHarmony4DataModule (it adds them for this task) or a data module whose batches have 'real'"
            )
        image, mask = batch["image"], batch["mask"]
        outputs = self(image, mask)
        targets = {"real": batch["real"], "mask": mask, "composite": self.composite(image)}
        return outputs, targets

    # ----------------------------------------------------------------------------- steps
    def _manual_optimization_step(
        self, outputs: dict[str, Any], targets: dict[str, torch.Tensor], losses: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        # the adversarial loss: the generator's step, then the discriminator's
        opt_g, opt_d = self.optimizers()
        opt_g.zero_grad()
        self.manual_backward(losses["loss"])
        opt_g.step()
        loss_d = self.loss.discriminator_loss(outputs["image"], targets)
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        return {"loss_d": loss_d.detach()}

    def _scored(self, outputs: dict[str, Any], targets: dict[str, torch.Tensor], keep: int) -> dict[str, Any]:
        pred = outputs["image"].detach().float()  # float32 whatever the autocast precision
        if self.paste and self.takes_mask:
            mask = targets["mask"].to(pred.dtype)
            pred = pred * mask + targets["composite"] * (1 - mask)
        result: dict[str, Any] = {
            "image": pred[:keep],
            "real": targets["real"][:keep],
            "target": targets["mask"][:keep],
        }
        if self.predicts_mask:
            predicted = self._output(outputs, "mask")[:keep].detach().float()
            result.update(mask=predicted, masks={"mask": predicted})
        return result

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        outputs = self(batch["image"], batch.get("mask"))
        result = {"image": outputs["image"], "path": list(batch.get("path", []))}
        if "mask" in outputs:
            result["mask"] = outputs["mask"]
        return result

    # ----------------------------------------------------------------------------- optimizers
    def _optimized_parameters(self) -> list[nn.Parameter]:
        own = getattr(self.loss, "generator_parameters", None)
        loss_params = own() if callable(own) else list(self.loss.parameters())
        return [*self.model.parameters(), *loss_params]

    def _other_optimizers(self) -> list[torch.optim.Optimizer]:
        # the authors' GAN machine gives D an optimizer of its own with G's settings
        return [self.optimizer(self.loss.discriminator.parameters())] if self.adversarial else []


# ------------------------------------------------------------------------------------------------- CLI
def is_harmonizer(name: str) -> bool:
    """Whether registered model ``name`` is a harmonizer (its registry entry's ``task`` is ``"harmonization"``).

    Example:
        >>> is_harmonizer("s2am"), is_harmonizer("dirl")
        (True, False)
    """
    from ..models import get_pretrained_cfg

    try:
        return get_pretrained_cfg(name).task == "harmonization"
    except UnknownModelError:
        return False


def _config_model_name(argv: Sequence[str]) -> str | None:
    """The ``model.model`` a LightningCLI command line ends up with: ``--config`` files and ``--model.model``
    overrides, read in order (the last one wins, as in LightningCLI). ``None`` when none names one or a
    config cannot be read (LightningCLI then reports that itself)."""
    name: str | None = None
    args = list(argv)
    for i, arg in enumerate(args):
        key, eq, value = arg.partition("=")
        if not eq:
            value = args[i + 1] if i + 1 < len(args) else ""
        if key == "--config":
            try:
                config = yaml.safe_load(Path(value).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            model = config.get("model") if isinstance(config, dict) else None
            if isinstance(model, dict) and isinstance(model.get("model"), str):
                name = model["model"]
        elif key == "--model.model" and value:
            name = value
    return name


def wants_harmonization(argv: Sequence[str]) -> bool:
    """Whether ``inharmony <fit|validate|test|predict> ARGV`` runs a harmonizer (its model's registry entry says so).

    Example:
        >>> wants_harmonization(["fit", "--config", "configs/dirl.yaml", "--model.model", "s2am"])
        True
    """
    name = _config_model_name(argv)
    return isinstance(name, str) and is_harmonizer(name)


class HarmonizationCLIMixin:
    """Mixed before :class:`~inharmony.cli.lightning.InharmonyCLI` for a harmonizer (a mixin, so that this module
    never imports the CLI): ``--precision``/``--tta`` refused, no mask-sample panels for a mask-guided model,
    and the image size checked against a smaller UNet's multiple (``model_kwargs.num_downs``). The metrics
    callback and the monitored metric are the task's own (:attr:`HarmonizationTask.metrics_callback`,
    :attr:`HarmonizationTask.monitor`)."""

    config: Any
    model: Any

    def before_instantiate_classes(self) -> None:
        config = self.config[self.config.subcommand]
        for option in ("precision", "tta"):
            if config.get(option) is not None:  # HarmonizationTask tests its plain network: refuse, never ignore
                raise TrainingCommandError(
                    f"--{option} is for the localization models' test; a harmonizer is tested as trained "
                    f"(drop --{option})"
                )
        model = config.get("model") or {}
        downs = (model.get("model_kwargs") or {}).get("num_downs")
        data = config.get("data") or {}
        args = data.get("init_args") or {}
        size = args.get("image_size")
        if isinstance(downs, int) and isinstance(size, int):
            # the registry's size multiple is the default UNet's (2**8); a smaller UNet takes smaller sizes
            if size % 2**downs:
                raise TrainingCommandError(
                    f"--data.image_size {size}: with num_downs {downs} the size must be a multiple of {2**downs}"
                )
            args["image_size"] = None
            try:
                super().before_instantiate_classes()  # type: ignore[misc]
            finally:
                args["image_size"] = size
            return
        super().before_instantiate_classes()  # type: ignore[misc]

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)  # type: ignore[misc]
        from .callbacks.predictions import SamplePredictionsCallback

        if getattr(self.model, "takes_mask", False):  # its panels are masks of a localizer; this model predicts none
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, SamplePredictionsCallback)]
        return trainer
