"""Harmonization metrics of the iHarmony4 protocol: per-image MSE, foreground MSE and PSNR on 0–255 RGB.

The convention of the harmonization papers (DoveNet's iHarmony4 evaluation, followed by S2AM's
``eval_s2am_iharmony4.ipynb``): every image is scored on its own at 256×256, on 8-bit RGB, and the
scores are averaged over images (never pooled over pixels).

Per image, with ``p`` the harmonized and ``r`` the real image as 0–255 values and ``F`` the
foreground pixels (mask > 0.5):

* **MSE** = mean over all pixels and the 3 channels of ``(p − r)²``;
* **fMSE** = the same mean over the foreground pixels only, ``Σ_F (p − r)² / (3·|F|)`` (DoveNet's
  ``mse(p·m, r·m)·H·W / |F|`` per channel); an image with an empty foreground has no fMSE and is
  counted in ``empty_target`` (its MSE and PSNR are still scored);
* **PSNR** = ``10·log10(255² / MSE)`` from the image's own MSE (data range 255), capped at
  :data:`PSNR_CAP` dB so that an exact match (MSE 0, PSNR +∞) does not turn the average into +∞.

Predictions are networks' floats in [0, 1]: with ``quantize=True`` (default) they are clamped and
rounded to the 8-bit values a saved result would hold (the papers score saved images), then scored.

Example:
    >>> import torch
    >>> real = torch.zeros(1, 3, 4, 4)
    >>> mask = torch.zeros(1, 1, 4, 4)
    >>> mask[..., :2, :] = 1
    >>> pred = real.clone()
    >>> pred[..., :2, :] = 10 / 255  # off by 10 levels on the foreground (half the image)
    >>> metrics = HarmonizationMetrics()
    >>> metrics.update(pred, real, mask)
    >>> {k: round(float(v), 2) for k, v in metrics.compute().items()}
    {'mse': 50.0, 'fmse': 100.0, 'psnr': 31.14}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from ..constants import ALL_ROW
from ._subset_rows import SubsetRows

__all__ = [
    "HARMONIZATION_METRIC_NAMES",
    "PSNR_CAP",
    "HarmonizationMetrics",
    "PerSubsetHarmonizationMetrics",
    "harmonization_scores",
]

#: Keys of the harmonization metrics, in the papers' column order.
HARMONIZATION_METRIC_NAMES: tuple[str, ...] = ("mse", "fmse", "psnr")
#: Highest PSNR (dB) an image scores; an exact 8-bit match would otherwise score +∞.
PSNR_CAP = 100.0
_MAX = 255.0


def _to_255(image: Tensor, quantize: bool) -> Tensor:
    values = image.detach().to(torch.float64).clamp(0.0, 1.0) * _MAX
    return torch.round(values) if quantize else values


def harmonization_scores(
    preds: Tensor, target: Tensor, mask: Tensor, *, quantize: bool = True, threshold: float = 0.5
) -> dict[str, Tensor]:
    """Per-image ``mse``, ``fmse`` and ``psnr`` (float64 ``(B,)``) of images in [0, 1].

    Args:
        preds: Harmonized images ``(B, 3, H, W)``, RGB in [0, 1] (clamped).
        target: Real images, same shape, RGB in [0, 1].
        mask: Foreground masks ``(B, 1, H, W)`` (or ``(B, H, W)``); foreground is ``mask > threshold``.
        quantize: Round both images to 8-bit levels first, as saved images hold them.
        threshold: Foreground threshold of the mask.

    Returns:
        ``{"mse", "fmse", "psnr"}``, each ``(B,)`` float64; ``fmse`` is NaN for an empty foreground.

    Example:
        >>> scores = harmonization_scores(torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8), torch.ones(2, 1, 8, 8))
        >>> [round(float(v), 2) for v in scores["psnr"]]
        [0.0, 0.0]
    """
    if preds.ndim != 4 or preds.shape[1] != 3 or preds.shape != target.shape:
        raise ValueError(
            f"preds and target must be (B, 3, H, W) images of one shape, got {tuple(preds.shape)} and "
            f"{tuple(target.shape)}"
        )
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != preds.shape[0] or mask.shape[2:] != preds.shape[2:]:
        raise ValueError(f"mask must be (B, 1, H, W) matching the images {tuple(preds.shape)}, got {tuple(mask.shape)}")
    squared = (_to_255(preds, quantize) - _to_255(target, quantize).to(preds.device)) ** 2
    fg = (mask.detach().to(squared.device) > threshold).to(torch.float64)
    mse = squared.mean(dim=(1, 2, 3))
    area = fg.sum(dim=(1, 2, 3))
    fg_sum = (squared * fg).sum(dim=(1, 2, 3))
    fmse = torch.where(area > 0, fg_sum / (3.0 * area.clamp_min(1.0)), math.nan)
    psnr = torch.where(mse > 0, 10.0 * torch.log10(_MAX**2 / mse.clamp_min(1e-300)), PSNR_CAP).clamp_max(PSNR_CAP)
    return {"mse": mse, "fmse": fmse, "psnr": psnr}


class HarmonizationMetrics(Metric):
    """MSE, fMSE and PSNR of the iHarmony4 protocol over all images (keys ``mse``, ``fmse``, ``psnr``).

    State: float64 sums of the per-image scores, the number of ``images`` scored and of images with an
    empty foreground (``empty_target``, left out of fMSE only). See the module notes for the rules.

    Args:
        quantize: Round to 8-bit levels before scoring (default, as saved results are scored).
        threshold: Foreground threshold of the mask.
        prefix: Prefix of the keys of :meth:`compute` (e.g. ``"val/"``).
        **kwargs: Passed to ``torchmetrics.Metric``.

    Example:
        >>> metric = HarmonizationMetrics(prefix="val/")
        >>> metric.update(torch.full((1, 3, 8, 8), 0.5), torch.full((1, 3, 8, 8), 0.5), torch.ones(1, 1, 8, 8))
        >>> {k: float(v) for k, v in metric.compute().items()}
        {'val/mse': 0.0, 'val/fmse': 0.0, 'val/psnr': 100.0}
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    sums: Tensor
    images: Tensor
    empty_target: Tensor

    def __init__(self, quantize: bool = True, threshold: float = 0.5, prefix: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quantize = bool(quantize)
        self.threshold = float(threshold)
        self.prefix = prefix or ""
        self._add_states(())

    def _add_states(self, leading: tuple[int, ...]) -> None:
        n = len(HARMONIZATION_METRIC_NAMES)
        self.add_state("sums", torch.zeros(*leading, n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", torch.zeros(leading, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("empty_target", torch.zeros(leading, dtype=torch.long), dist_reduce_fx="sum")

    def _score(self, preds: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, 3)`` scores with NaN fMSE replaced by 0, and the ``(B,)`` empty-foreground flags."""
        scores = harmonization_scores(preds, target, mask, quantize=self.quantize, threshold=self.threshold)
        stacked = torch.stack([scores[name] for name in HARMONIZATION_METRIC_NAMES], dim=1)
        empty = torch.isnan(stacked[:, 1])
        return torch.nan_to_num(stacked, nan=0.0).to(self.sums.device), empty.to(self.sums.device)

    def update(self, preds: Tensor, target: Tensor, mask: Tensor) -> None:
        """Add a batch: harmonized ``preds`` and real ``target`` (B, 3, H, W) in [0, 1], ``mask`` (B, 1, H, W)."""
        scores, empty = self._score(preds, target, mask)
        self.sums += scores.sum(dim=0)
        self.images += scores.shape[0]
        self.empty_target += empty.sum()

    @staticmethod
    def _means(sums: Tensor, images: Tensor, empty: Tensor) -> Tensor:
        counts = torch.stack([images, images - empty, images], dim=-1).to(sums.dtype)
        return torch.where(counts > 0, sums / counts.clamp_min(1), math.nan)

    def compute(self) -> dict[str, Tensor]:
        """``{prefix + name: mean over images}`` as float64 scalars (NaN before any image)."""
        means = self._means(self.sums, self.images, self.empty_target)
        return {f"{self.prefix}{name}": means[i] for i, name in enumerate(HARMONIZATION_METRIC_NAMES)}


class PerSubsetHarmonizationMetrics(SubsetRows, HarmonizationMetrics):
    """MSE, fMSE and PSNR per sub-dataset and over all images, in the table layout of the localization metrics.

    :meth:`compute` returns ``{subset: {"mse", "fmse", "psnr", "images", "empty_target"}}`` with ``"All"``
    last, the layout :func:`inharmony.metrics.report.normalise_results` and the result files take. Rows are
    created as subsets appear; the subset names are a state too, so DDP processes that saw different
    subsets are aligned to the union before their sums are added.

    Example:
        >>> metric = PerSubsetHarmonizationMetrics()
        >>> real = torch.zeros(2, 3, 8, 8)
        >>> metric.update(real + 1 / 255, real, torch.ones(2, 1, 8, 8), ["HFlickr", "HCOCO"])
        >>> {k: v["mse"] for k, v in metric.compute().items()}
        {'HCOCO': 1.0, 'HFlickr': 1.0, 'All': 1.0}
    """

    full_state_update = True
    subset_names: Tensor

    def __init__(self, quantize: bool = True, threshold: float = 0.5, **kwargs: Any) -> None:
        Metric.__init__(self, **kwargs)
        self.quantize = bool(quantize)
        self.threshold = float(threshold)
        self.prefix = ""
        self._add_states((0,))
        self._add_subset_names_state()

    def update(self, preds: Tensor, target: Tensor, mask: Tensor, subsets: Sequence[str] | None = None) -> None:  # type: ignore[override]
        """Add a batch; ``subsets[i]`` names the sub-dataset of image ``i`` (None: the ``"All"`` row only)."""
        if subsets is None:
            subsets = [ALL_ROW] * preds.shape[0]
        if isinstance(subsets, str) or len(subsets) != preds.shape[0]:
            raise ValueError(f"subsets must be a list with one name per image, got {subsets!r}")
        scores, empty = self._score(preds, target, mask)
        names = [str(s) for s in subsets]
        row = self._use_subsets(names)
        rows = torch.tensor([row[n] for n in names], dtype=torch.long, device=self.sums.device)
        self.sums.index_add_(0, rows, scores)
        self.images.index_add_(0, rows, torch.ones_like(rows))
        self.empty_target.index_add_(0, rows, empty.long())

    def compute(self) -> dict[str, dict[str, float]]:  # type: ignore[override]
        """``{subset: {"mse", "fmse", "psnr", "images", "empty_target"}}``, ``"All"`` last."""

        def row(sums: Tensor, images: Tensor, empty: Tensor) -> dict[str, float]:
            means = self._means(sums, images, empty).tolist()
            return {**dict(zip(HARMONIZATION_METRIC_NAMES, means, strict=True)), "images": float(images),
                    "empty_target": float(empty)}  # fmt: skip

        results = {
            name: row(self.sums[i], self.images[i], self.empty_target[i])
            for i, name in enumerate(self._names())
            if name != ALL_ROW and int(self.images[i]) > 0
        }
        results[ALL_ROW] = row(self.sums.sum(dim=0), self.images.sum(), self.empty_target.sum())
        return results
