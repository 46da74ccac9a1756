"""Localization metrics of the official evaluation protocol: per-image AP, F1 and IoU, and their tables.

Every image is scored on its own and the scores are averaged over images (not pooled over pixels),
as in the authors' evaluation code (the rules are in :mod:`inharmony.metrics.functional`).

* :mod:`~inharmony.metrics.functional`: per-image kernels (torch + numpy).
* :mod:`~inharmony.metrics.localization`: the streaming torchmetrics metrics
  (:class:`LocalizationMetrics`, :class:`PerSubsetMetrics`, ``PerImage*``).
* :mod:`~inharmony.metrics.harmonization`: the harmonization metrics of the iHarmony4 protocol
  (per-image MSE, fMSE, PSNR on 0–255 RGB: :class:`HarmonizationMetrics`, :class:`PerSubsetHarmonizationMetrics`).
* :mod:`~inharmony.metrics.report`: the one table renderer (console, markdown, JSON, model card).

The torchmetrics-backed names are imported on first access (PEP 562), so ``import inharmony.metrics``
and the table renderer need torch only, not torchmetrics.

Example:
    >>> import torch
    >>> from inharmony.metrics import per_image_scores, results_to_markdown
    >>> target = torch.zeros(2, 1, 16, 16)
    >>> target[:, :, 4:12, 4:12] = 1
    >>> scores = per_image_scores(target * 0.8, target)  # functional: no torchmetrics needed
    >>> print(results_to_markdown({"All": {k: float(v.mean()) for k, v in scores.items()}}))
    | Subset | Images | AP (%) | F1 | IoU (%) |
    |---|---:|---:|---:|---:|
    | All | - | 100.00 | 1.0000 | 100.00 |
"""

from __future__ import annotations

import importlib
from typing import Any

from ..constants import ALL_ROW, METRIC_NAMES, METRIC_SPECS, SUBSET_ORDER
from .functional import (
    NORMALIZE_EPS,
    PROTOCOLS,
    SCORE_EPS,
    average_precision_per_image,
    f1_per_image,
    iou_per_image,
    normalize_per_image,
    per_image_scores,
)
from .report import (
    HARMONIZATION_SPECS,
    format_results_table,
    normalise_results,
    order_subsets,
    print_results_table,
    results_markdown,
    results_to_json,
    results_to_markdown,
    write_results,
)

__all__ = [
    "ALL_ROW",
    "HARMONIZATION_METRIC_NAMES",
    "HARMONIZATION_SPECS",
    "METRIC_NAMES",
    "METRIC_SPECS",
    "NORMALIZE_EPS",
    "PROTOCOLS",
    "SCORE_EPS",
    "SUBSET_ORDER",
    "HarmonizationMetrics",
    "LocalizationMetrics",
    "PerImageAveragePrecision",
    "PerImageF1Score",
    "PerImageIoU",
    "PerSubsetHarmonizationMetrics",
    "PerSubsetMetrics",
    "average_precision_per_image",
    "f1_per_image",
    "format_results_table",
    "harmonization_scores",
    "iou_per_image",
    "localization_metrics",
    "normalise_results",
    "normalize_per_image",
    "order_subsets",
    "per_image_scores",
    "print_results_table",
    "results_markdown",
    "results_to_json",
    "results_to_markdown",
    "write_results",
]

# Backed by torchmetrics: imported from their module on first access.
_LAZY_FROM = {
    "LocalizationMetrics": "localization",
    "PerImageAveragePrecision": "localization",
    "PerImageF1Score": "localization",
    "PerImageIoU": "localization",
    "PerSubsetMetrics": "localization",
    "localization_metrics": "localization",
    "HARMONIZATION_METRIC_NAMES": "harmonization",
    "HarmonizationMetrics": "harmonization",
    "PerSubsetHarmonizationMetrics": "harmonization",
    "harmonization_scores": "harmonization",
}
_LAZY = set(_LAZY_FROM)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY_FROM[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
