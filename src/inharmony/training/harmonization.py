"""Training and evaluation of a harmonizer (S2AM): the LightningModule, its metrics callback, its CLI.

* :class:`HarmonizationTask`: a :class:`~inharmony.training.localization.LocalizationTask` for networks that return a
  harmonized ``"image"``. It feeds the composite (and, to a mask-guided model such as ``s2am``, the mask),
  computes the loss against the real image (the data module adds ``batch["real"]`` because the task says
  ``needs_real = True``), and returns what :class:`HarmonizationMetricsCallback` scores.
* :class:`HarmonizationMetricsCallback`: MSE, fMSE and PSNR of the iHarmony4 protocol
  (:mod:`inharmony.metrics.harmonization`) per subset and overall, plus AP/F1/IoU when the model also
  predicts a ``"mask"`` (``s2am_maskfree`` is then scored like every localizer), in one table.
* :class:`HarmonizationCLIMixin`: what ``inharmony fit/validate/test`` changes for a harmonizer
  (:func:`inharmony.cli.lightning.lightning_cli` mixes it into its CLI when the config's model is one, see
  :func:`wants_harmonization`): ``val/psnr`` monitored, the harmonization metrics swapped in.

Example:
    >>> task = HarmonizationTask("s2am", model_kwargs={"num_downs": 5})
    >>> image, mask = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    >>> task(image, mask)["image"].shape
    torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ..constants import ALL_ROW, IMAGENET_MEAN, IMAGENET_STD, METRIC_NAMES
from ..errors import TrainingCommandError, UnknownModelError
from ..metrics.harmonization import HARMONIZATION_METRIC_NAMES, HarmonizationMetrics, PerSubsetHarmonizationMetrics
from .callbacks import LocalizationMetricsCallback
from .localization import LocalizationTask

__all__ = [
    "HarmonizationCLIMixin",
    "HarmonizationMetricsCallback",
    "HarmonizationTask",
    "is_harmonizer",
    "wants_harmonization",
]


def _takes_mask(model: nn.Module) -> bool:
    try:
        return "mask" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


class HarmonizationTask(LocalizationTask):
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
            registered loss (:class:`~inharmony.losses.s2am.S2AMLoss` / ``S2AMMaskFreeLoss``). With an
            adversarial term (``loss.discriminator``) the task trains the discriminator with a second
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
        super().__init__(
            model=model,
            model_kwargs=model_kwargs,
            loss=loss,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_scheduler_interval=lr_scheduler_interval,
        )
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

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, Any]:  # type: ignore[override]
        """The network's outputs for a batch ``image`` (normalised as the data module does) and ``mask``."""
        x = (self.composite(image) - self._model_mean) / self._model_std
        network = self._network() if callable(getattr(self, "_network", None)) else self.model  # compiled if asked
        if self.takes_mask:
            if mask is None:
                raise ValueError(f"{self.model_name} harmonizes a given region: pass the mask (B, 1, H, W)")
            return network(x, mask.to(x.dtype))
        return network(x)

    def _batch(self, batch: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
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
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        outputs, targets = self._batch(batch)
        losses = self.loss(outputs, targets)
        size = batch["image"].shape[0]
        if self.adversarial:
            opt_g, opt_d = self.optimizers()
            opt_g.zero_grad()
            self.manual_backward(losses["loss"])
            opt_g.step()
            loss_d = self.loss.discriminator_loss(outputs["image"], targets)
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            opt_d.step()
            losses["loss_d"] = loss_d.detach()
            scheduler = self.lr_schedulers()
            if scheduler is not None and self.lr_scheduler_interval == "step":
                scheduler.step()
        for key, value in losses.items():
            self.log(f"train/{key}", value.detach(), prog_bar=key == "loss", batch_size=size)
        return losses["loss"]

    def on_train_epoch_end(self) -> None:
        if self.adversarial and self.lr_scheduler_interval == "epoch":
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                scheduler.step()

    def _eval_step(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        outputs, targets = self._batch(batch)
        loss = self.loss(outputs, targets)["loss"]
        size = batch["image"].shape[0]
        self.log(f"{stage}/loss", loss, batch_size=size, sync_dist=True)
        keep = self._unpadded(size, stage)
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
        if "subset" in batch:
            result["subset"] = list(batch["subset"])[:keep]
        if "path" in batch:
            result["path"] = list(batch["path"])[:keep]
        return result

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        outputs = self(batch["image"], batch.get("mask"))
        result = {"image": outputs["image"], "path": list(batch.get("path", []))}
        if "mask" in outputs:
            result["mask"] = outputs["mask"]
        return result

    # ----------------------------------------------------------------------------- optimizers
    def _generator_parameters(self) -> list[nn.Parameter]:
        own = getattr(self.loss, "generator_parameters", None)
        loss_params = own() if callable(own) else list(self.loss.parameters())
        return [*self.model.parameters(), *loss_params]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self._generator_parameters())
        scheduler = self.lr_scheduler(optimizer) if self.lr_scheduler is not None else None
        if self.adversarial:
            # the authors' GAN machine gives D an optimizer of its own with G's settings
            optimizers = [optimizer, self.optimizer(self.loss.discriminator.parameters())]
            return (optimizers, [scheduler]) if scheduler is not None else optimizers
        if scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.lr_scheduler_interval},
        }


class HarmonizationMetricsCallback(LocalizationMetricsCallback):
    """MSE, fMSE, PSNR (per subset and overall on test) and, for a model that predicts a mask, AP, F1, IoU.

    The module's validation and test steps return ``"image"`` (harmonized, (B, 3, H, W) in [0, 1]),
    ``"real"``, ``"target"`` (the ground-truth mask), optionally ``"subset"`` and, to be scored as a
    localizer too, ``"mask"`` (as :class:`HarmonizationTask` does). Logged: ``val/mse``, ``val/fmse``,
    ``val/psnr`` (and ``val/ap|f1|iou``); ``test/<metric>`` and ``test/<Subset>/<metric>``.
    :attr:`test_results` holds the merged per-subset table (``images`` counts every scored image).

    Args:
        protocol: Localization protocol of AP/F1/IoU (``"official"`` or ``"raw"``).
        threshold: Threshold of F1/IoU and of the foreground mask for fMSE.
        prog_bar: Show the validation metrics in the progress bar.
        quantize: Score 8-bit rounded images (as saved results are scored).

    Example:
        >>> callback = HarmonizationMetricsCallback()
        >>> callback.test_results
        {}
    """

    def __init__(
        self, protocol: str = "official", threshold: float = 0.5, prog_bar: bool = True, quantize: bool = True
    ) -> None:
        super().__init__(protocol, threshold, prog_bar)  # type: ignore[arg-type]
        self.quantize = quantize
        self.val_harmonization = HarmonizationMetrics(quantize, threshold)
        self.test_harmonization = PerSubsetHarmonizationMetrics(quantize, threshold)
        self._scores_masks = False

    @staticmethod
    def _unpack_harm(outputs: Any, hook: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not isinstance(outputs, Mapping) or not all(k in outputs for k in ("image", "real", "target")):
            got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
            raise ValueError(
                f"HarmonizationMetricsCallback needs the module's {hook} to return 'image' (harmonized), 'real' and "
                f"'target' (the mask), optionally 'subset' and 'mask' (a predicted mask); got {got}"
            )
        return outputs["image"].detach(), outputs["real"].detach(), outputs["target"].detach()

    # -- validation
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._scores_masks = bool(getattr(pl_module, "predicts_mask", False))
        self.val_harmonization = self.val_harmonization.to(pl_module.device)
        self.val_harmonization.reset()
        super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        image, real, target = self._unpack_harm(outputs, "validation_step")
        self.val_harmonization.update(image, real, target)
        if self._scores_masks:
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*before the ``update``.*")
            values = {f"val/{k}": float(v) for k, v in self.val_harmonization.compute().items()}
        self.val_harmonization.reset()
        _log(pl_module, values, self.prog_bar)
        if self._scores_masks:
            super().on_validation_epoch_end(trainer, pl_module)

    # -- test
    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._scores_masks = bool(getattr(pl_module, "predicts_mask", False))
        self.test_harmonization = self.test_harmonization.to(pl_module.device)
        self.test_harmonization.reset()
        super().on_test_epoch_start(trainer, pl_module)

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        image, real, target = self._unpack_harm(outputs, "test_step")
        subsets = outputs.get("subset")
        self.test_harmonization.update(image, real, target, None if subsets is None else [str(s) for s in subsets])
        if self._scores_masks:
            super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        localization: dict[str, dict[str, float]] = {}
        if self._scores_masks:
            super().on_test_epoch_end(trainer, pl_module)
            localization = dict(self.test_results)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*before the ``update``.*")
            harmonization = self.test_harmonization.compute()
        merged = {
            subset: {**{k: v for k, v in localization.get(subset, {}).items() if k in METRIC_NAMES}, **row}
            for subset, row in harmonization.items()
        }
        values = {}
        for subset, row in harmonization.items():
            prefix = "test" if subset == ALL_ROW else f"test/{subset}"
            values.update({f"{prefix}/{k}": row[k] for k in HARMONIZATION_METRIC_NAMES})
        _log(pl_module, values, False)
        self.test_results = merged
        self.results_by_output = {}
        from ..metrics.report import results_to_markdown

        self.test_table = results_to_markdown(merged)
        self.tables = {"image": self.test_table}


def _log(pl_module: LightningModule, values: dict[str, float], prog_bar: bool) -> None:
    for name, value in values.items():
        if not math.isnan(value):
            pl_module.log(name, value, prog_bar=prog_bar, on_step=False, on_epoch=True, batch_size=1, sync_dist=True)


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
    """Whether ``inharmony <fit|validate|test|predict> ARGV`` trains/evaluates a harmonizer (its model's loss says so).

    Example:
        >>> wants_harmonization(["fit", "--config", "configs/dirl.yaml", "--model.model", "s2am"])
        True
    """
    name = _config_model_name(argv)
    return isinstance(name, str) and is_harmonizer(name)


class HarmonizationCLIMixin:
    """Mixed before :class:`~inharmony.cli.lightning.InharmonyCLI` for a harmonizer (a mixin, so that this module
    never imports the CLI): ``val/psnr`` monitored, :class:`HarmonizationMetricsCallback` in place of the
    localization metrics, no mask-sample panels for a mask-guided model, and the image size checked against
    a smaller UNet's multiple (``model_kwargs.num_downs``)."""

    config: Any
    model: Any

    def add_arguments_to_parser(self, parser: Any) -> None:
        super().add_arguments_to_parser(parser)  # type: ignore[misc]
        parser.set_defaults({"checkpoint.monitor": "val/psnr", "checkpoint.mode": "max"})

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

        callbacks = []
        for callback in trainer.callbacks:
            if type(callback) is LocalizationMetricsCallback:
                callback = HarmonizationMetricsCallback(callback.protocol, callback.threshold, callback.prog_bar)
            elif isinstance(callback, SamplePredictionsCallback) and getattr(self.model, "takes_mask", False):
                continue  # its panels are masks of a localizer; a mask-guided harmonizer predicts none
            callbacks.append(callback)
        trainer.callbacks = callbacks
        return trainer
