"""The papers' metrics for any LightningModule, as Lightning callbacks: localization and harmonization.

* :class:`LocalizationMetricsCallback`: AP, F1 and IoU of the predicted masks (DIRL's protocol), per subset on test.
* :class:`HarmonizationMetricsCallback`: MSE, fMSE and PSNR of the harmonized images (iHarmony4's protocol) and,
  for a model that also predicts a mask, AP/F1/IoU, in one table.

Example:
    >>> from lightning.pytorch import Trainer
    >>> from inharmony.training.callbacks import LocalizationMetricsCallback
    >>> trainer = Trainer(callbacks=[LocalizationMetricsCallback()], logger=False)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback

from ...constants import ALL_ROW, METRIC_NAMES
from ...metrics import LocalizationMetrics, PerSubsetMetrics, results_to_markdown
from ...metrics.harmonization import HARMONIZATION_METRIC_NAMES, HarmonizationMetrics, PerSubsetHarmonizationMetrics

__all__ = ["HarmonizationMetricsCallback", "LocalizationMetricsCallback"]


class LocalizationMetricsCallback(Callback):
    """Score validation and test predictions with the official AP, F1 and IoU.

    The module's ``validation_step`` and ``test_step`` must return a dict with ``"mask"``
    (B, 1, H, W) probabilities at network resolution, ``"target"`` (B, 1, H, W) masks and, for a
    per-subset table on test, ``"subset"`` (one name per image). Each batch is scored as it arrives
    and only sums and counts are kept, never pixels.

    To score several outputs (RSRNet's Table 3), the steps also return ``"masks"``: ``{output key:
    (B, 1, H, W)}`` in the module's ``eval_outputs`` order (as :class:`inharmony.training.localization.LocalizationTask`
    does); the first is the one scored on validation and logged without a prefix.

    Logged at the end of each epoch (values are fractions, synchronised across processes):
    ``val/ap``, ``val/f1``, ``val/iou``; ``test/ap``, ``test/f1``, ``test/iou`` over all images and
    ``test/<Subset>/<metric>`` per subset; for each further output ``test/<output>/<metric>`` and
    ``test/<output>/<Subset>/<metric>``. After testing, :attr:`test_results` holds
    :meth:`inharmony.metrics.PerSubsetMetrics.compute`'s dict and :attr:`test_table` its markdown (the
    first output); :attr:`results_by_output` and :attr:`tables` hold them for every output.

    Args:
        protocol: ``"official"`` (per-image min-max normalisation) or ``"raw"``.
        threshold: binarisation threshold for F1 and IoU.
        prog_bar: show the validation metrics in the progress bar.

    Example:
        >>> callback = LocalizationMetricsCallback(protocol="official")
        >>> callback.test_results
        {}
    """

    def __init__(
        self, protocol: Literal["official", "raw"] = "official", threshold: float = 0.5, prog_bar: bool = True
    ) -> None:
        super().__init__()
        self.protocol = protocol
        self.threshold = threshold
        self.prog_bar = prog_bar
        self.val_metrics = LocalizationMetrics(protocol, threshold)
        self.test_metrics = PerSubsetMetrics(protocol, threshold)
        self.test_metrics_by_output: dict[str, PerSubsetMetrics] = {}
        self.test_results: dict[str, dict[str, float]] = {}
        self.test_table = ""
        self.results_by_output: dict[str, dict[str, dict[str, float]]] = {}
        self.tables: dict[str, str] = {}

    # -- validation --------------------------------------------------------------------------

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.val_metrics = self.val_metrics.to(pl_module.device)
        self.val_metrics.reset()

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        masks, target, _ = _unpack(outputs, "validation_step")
        self.val_metrics.update(next(iter(masks.values())), target)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Every process computes (a collective under DDP), even one that saw no batch.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*before the ``update``.*")
            values = {f"val/{k}": float(v) for k, v in self.val_metrics.compute().items()}
        self.val_metrics.reset()
        _log(pl_module, values, prog_bar=self.prog_bar)

    # -- test --------------------------------------------------------------------------------

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The names are known before any batch, so a process that gets no batch still joins every sync.
        names = list(getattr(pl_module, "eval_outputs", None) or ["mask"])
        self.test_metrics = self.test_metrics.to(pl_module.device)
        self.test_metrics.reset()
        self.test_metrics_by_output = {names[0]: self.test_metrics}
        for name in names[1:]:
            self.test_metrics_by_output[name] = PerSubsetMetrics(self.protocol, self.threshold).to(pl_module.device)
        self.test_results, self.test_table = {}, ""
        self.results_by_output, self.tables = {}, {}

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        masks, target, subsets = _unpack(outputs, "test_step")
        if subsets is None:
            subsets = [ALL_ROW] * target.shape[0]  # no subset names: only the overall row
        if len(masks) == 1 and len(self.test_metrics_by_output) == 1:
            masks = {next(iter(self.test_metrics_by_output)): next(iter(masks.values()))}
        for name, metrics in self.test_metrics_by_output.items():
            if name not in masks:
                raise ValueError(
                    f"LocalizationMetricsCallback: test_step returned no {name!r} in 'masks' (got {sorted(masks)}); "
                    "it must hold every key of the module's eval_outputs"
                )
            metrics.update(masks[name], target, subsets)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        values = {}
        for i, (name, metrics) in enumerate(self.test_metrics_by_output.items()):
            with warnings.catch_warnings():  # a process that saw no test batch still joins the sync
                warnings.filterwarnings("ignore", message=".*before the ``update``.*")
                results = metrics.compute()
            self.results_by_output[name] = results
            self.tables[name] = results_to_markdown(results)
            base = "test" if i == 0 else f"test/{name}"
            for subset, scores in results.items():
                prefix = base if subset == ALL_ROW else f"{base}/{subset}"
                values.update({f"{prefix}/{k}": scores[k] for k in METRIC_NAMES})
        first = next(iter(self.results_by_output), None)
        if first is not None:
            self.test_results, self.test_table = self.results_by_output[first], self.tables[first]
        _log(pl_module, values, prog_bar=False)


class HarmonizationMetricsCallback(LocalizationMetricsCallback):
    """MSE, fMSE, PSNR (per subset and overall on test) and, for a model that predicts a mask, AP, F1, IoU.

    The module's validation and test steps return ``"image"`` (harmonized, (B, 3, H, W) in [0, 1]),
    ``"real"``, ``"target"`` (the ground-truth mask), optionally ``"subset"`` and, to be scored as a
    localizer too, ``"mask"`` (as :class:`~inharmony.training.HarmonizationTask` does). Logged: ``val/mse``,
    ``val/fmse``, ``val/psnr`` (and ``val/ap|f1|iou``); ``test/<metric>`` and ``test/<Subset>/<metric>``.
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
        self,
        protocol: Literal["official", "raw"] = "official",
        threshold: float = 0.5,
        prog_bar: bool = True,
        quantize: bool = True,
    ) -> None:
        super().__init__(protocol, threshold, prog_bar)
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
        _log(pl_module, values, prog_bar=self.prog_bar)
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
        _log(pl_module, values, prog_bar=False)
        self.test_results = merged
        self.results_by_output = {}
        self.test_table = results_to_markdown(merged)
        self.tables = {"image": self.test_table}


def _unpack(outputs: Any, hook: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[str] | None]:
    if not isinstance(outputs, Mapping) or "mask" not in outputs or "target" not in outputs:
        got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
        raise ValueError(
            f"LocalizationMetricsCallback needs the LightningModule's {hook} to return a dict with "
            f"'mask' (B,1,H,W probabilities) and 'target' (B,1,H,W masks), optionally 'subset'; got {got}"
        )
    subsets = outputs.get("subset")
    if subsets is not None:
        subsets = [str(s) for s in subsets]
    masks = outputs.get("masks")
    if not isinstance(masks, Mapping) or not masks:
        masks = {"mask": outputs["mask"]}
    return {k: v.detach() for k, v in masks.items()}, outputs["target"].detach(), subsets


def _log(pl_module: LightningModule, values: dict[str, float], prog_bar: bool) -> None:
    # The values are already reduced over processes by torchmetrics and equal on every rank, so
    # sync_dist's mean leaves them unchanged (it only silences Lightning's epoch-level warning).
    # NaN (no scorable image) is not logged; every rank skips the same keys.
    for name, value in values.items():
        if not math.isnan(value):
            pl_module.log(name, value, prog_bar=prog_bar, on_step=False, on_epoch=True, batch_size=1, sync_dist=True)
