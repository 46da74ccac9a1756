"""The papers' localization metrics for any LightningModule, as a Lightning callback.

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

__all__ = ["LocalizationMetricsCallback"]


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
