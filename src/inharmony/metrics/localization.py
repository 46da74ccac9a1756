"""Streaming torchmetrics metrics of the official protocol: per-image AP, F1 and IoU averaged over images.

:class:`LocalizationMetrics` is one ``Metric`` whose state is a float64 vector of per-metric sums
over images plus two counts (``images`` scored, ``empty_target`` left out); each batch is scored
once by :func:`inharmony.metrics.functional.per_image_scores`. :class:`PerSubsetMetrics` keeps the
same state with a leading subset axis, one row per sub-dataset seen. States are declared with
``add_state(..., dist_reduce_fx="sum")``: memory is constant in the number of images and values
synchronise under DDP.

Example:
    >>> import torch
    >>> from inharmony.metrics import localization_metrics
    >>> metrics = localization_metrics()
    >>> target = torch.zeros(2, 1, 32, 32)
    >>> target[:, :, 8:24, 8:24] = 1
    >>> metrics.update(target * 0.9 + 0.05, target)
    >>> {k: round(float(v), 4) for k, v in metrics.compute().items()}
    {'ap': 1.0, 'f1': 1.0, 'iou': 1.0}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from ..constants import ALL_ROW, METRIC_NAMES
from ._subset_rows import SubsetRows, decode_names
from .functional import _per_image_scores, check_protocol

__all__ = [
    "LocalizationMetrics",
    "PerImageAveragePrecision",
    "PerImageF1Score",
    "PerImageIoU",
    "PerSubsetMetrics",
    "localization_metrics",
]


class _ScoreSums(Metric):
    """Per-metric sums of per-image scores and image counts, with optional leading axes.

    The one state of every metric here: ``sums`` (``(*leading, M)`` float64), ``images`` and
    ``empty_target`` (``leading`` long). An image with an empty ground truth (NaN scores) adds to
    ``empty_target`` only.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    sums: Tensor
    images: Tensor
    empty_target: Tensor

    def __init__(
        self, protocol: str, threshold: float, metrics: Iterable[str], leading: tuple[int, ...], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        check_protocol(protocol, threshold)
        names = tuple(metrics)
        unknown = set(names) - set(METRIC_NAMES)
        if unknown or not names:
            raise ValueError(f"metrics must be a non-empty subset of {METRIC_NAMES}, got {names}")
        self.protocol = protocol
        self.threshold = float(threshold)
        self.metric_names = names
        self.add_state("sums", torch.zeros(*leading, len(names), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", torch.zeros(leading, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("empty_target", torch.zeros(leading, dtype=torch.long), dist_reduce_fx="sum")

    def _score(self, preds: Tensor, target: Tensor) -> Tensor:
        """``(B, M)`` float64 per-image scores of the batch; NaN rows for empty ground truths."""
        scores = _per_image_scores(preds, target, self.protocol, self.threshold, self.metric_names)
        if all(isinstance(value, np.ndarray) for value in scores.values()):  # the CPU path: one conversion
            return torch.from_numpy(np.stack([scores[name] for name in self.metric_names], axis=1))
        return torch.stack([torch.as_tensor(scores[name]) for name in self.metric_names], dim=1)

    def _accumulate(self, scores: Tensor, rows: Tensor | None = None) -> None:
        """Add ``(N, M)`` scores to the sums (to ``rows[i]`` of the leading axis when given)."""
        if rows is None and scores.device.type == "cpu":
            # NumPy for the few small operations, one in-place add per state (no Module.__setattr__):
            # per-call overhead dominates an update of one image.
            table = scores.detach().numpy().astype(np.float64, copy=False)
            scored = ~np.isnan(table).any(axis=1)
            n_scored = int(scored.sum())
            # Each metric's column summed contiguously: the same order whichever metrics are computed.
            self.sums.add_(torch.from_numpy(np.ascontiguousarray(table[scored].T).sum(axis=1)))
            self.images.add_(n_scored)
            self.empty_target.add_(table.shape[0] - n_scored)
            return
        scores = scores.to(device=self.sums.device, dtype=torch.float64)
        scored = ~torch.isnan(scores).any(dim=1)
        if rows is None:
            n_scored = scored.sum()
            self.sums.add_(scores[scored].sum(dim=0))
            self.images.add_(n_scored)
            self.empty_target.add_(scores.shape[0] - n_scored)
        else:
            rows = rows.to(self.sums.device)
            self.sums.index_add_(0, rows[scored], scores[scored])
            self.images.index_add_(0, rows, scored.long())
            self.empty_target.index_add_(0, rows, (~scored).long())

    @staticmethod
    def _means(sums: Tensor, images: Tensor) -> Tensor:
        """Mean score per metric; NaN where no image was scorable."""
        count = images.unsqueeze(-1).to(sums.dtype)
        return torch.where(count > 0, sums / count.clamp_min(1), math.nan)


class LocalizationMetrics(_ScoreSums):
    """AP, F1 and IoU of the papers (keys ``ap``, ``f1``, ``iou``, fractions) in one metric.

    Every image is scored on its own (:func:`inharmony.metrics.per_image_scores`) and the scores
    are averaged over the images with a non-empty ground truth; ``images`` and ``empty_target``
    count both kinds. A metric that has seen no scorable image computes NaN.

    Args:
        protocol: ``"official"`` (per-image min-max normalisation, the published numbers) or ``"raw"``.
        threshold: binarisation threshold for F1 and IoU.
        prefix: prefix of the keys of :meth:`compute` (e.g. ``"val/"``).
        metrics: which of ``"ap"``, ``"f1"``, ``"iou"`` to compute.
        **kwargs: passed to ``torchmetrics.Metric`` (``sync_on_compute``, ``dist_sync_fn``, ...).

    Example:
        >>> metrics = LocalizationMetrics()
        >>> target = torch.zeros(1, 1, 8, 8)
        >>> target[..., 2:5, 2:5] = 1
        >>> metrics.update(target * 0.8, target)
        >>> {k: round(float(v), 4) for k, v in metrics.compute().items()}
        {'ap': 1.0, 'f1': 1.0, 'iou': 1.0}
        >>> int(metrics.images), int(metrics.empty_target)
        (1, 0)
    """

    def __init__(
        self,
        protocol: str = "official",
        threshold: float = 0.5,
        prefix: str | None = None,
        metrics: Sequence[str] = METRIC_NAMES,
        **kwargs: Any,
    ) -> None:
        super().__init__(protocol, threshold, metrics, (), **kwargs)
        self.prefix = prefix or ""

    def update(
        self, preds: Tensor | None = None, target: Tensor | None = None, *, scores: Tensor | None = None
    ) -> None:
        """Add a batch: ``preds`` (B, 1, H, W) probabilities and ``target`` masks of the same shape.

        ``scores`` instead passes per-image values already computed, ``(N, M)`` in the order of
        ``metrics`` (or ``(N,)`` for one metric), NaN for an empty ground truth.
        """
        if scores is None:
            if preds is None or target is None:
                raise TypeError(f"{type(self).__name__}.update needs preds and target (or scores=)")
            scores = self._score(preds, target)
        elif scores.ndim == 1:
            scores = scores.unsqueeze(1)
        if scores.ndim != 2 or scores.shape[1] != len(self.metric_names):
            raise ValueError(f"scores must be (N, {len(self.metric_names)}), got {tuple(scores.shape)}")
        self._accumulate(scores)

    def compute(self) -> dict[str, Tensor]:
        """``{prefix + name: mean}`` as float64 scalars; NaN if no image was scorable."""
        means = self._means(self.sums, self.images)
        return {f"{self.prefix}{name}": means[i] for i, name in enumerate(self.metric_names)}


class _OneMetric(LocalizationMetrics):
    """:class:`LocalizationMetrics` restricted to one metric; :meth:`compute` returns a scalar."""

    score_name = ""

    def __init__(self, protocol: str = "official", threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(protocol, threshold, metrics=(self.score_name,), **kwargs)

    def compute(self) -> Tensor:  # type: ignore[override]
        """Mean score over the images with a non-empty ground truth (NaN if there were none)."""
        return super().compute()[f"{self.prefix}{self.score_name}"]


class PerImageAveragePrecision(_OneMetric):
    """Per-image exact average precision averaged over images (the papers' "AP", as a fraction).

    Example:
        >>> metric = PerImageAveragePrecision()
        >>> metric.update(torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]]), torch.tensor([[[[1, 0], [0, 0]]]]))
        >>> float(metric.compute())
        1.0
    """

    score_name = "ap"


class PerImageF1Score(_OneMetric):
    """Per-image F1 at ``threshold`` averaged over images (the papers' "F1").

    Example:
        >>> metric = PerImageF1Score()
        >>> metric.update(torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]]), torch.tensor([[[[1, 0], [0, 0]]]]))
        >>> round(float(metric.compute()), 4)
        0.6667
    """

    score_name = "f1"


class PerImageIoU(_OneMetric):
    """Per-image IoU at ``threshold`` averaged over images (the papers' "IoU", as a fraction).

    Example:
        >>> metric = PerImageIoU()
        >>> metric.update(torch.tensor([[[[0.9, 0.2], [0.6, 0.1]]]]), torch.tensor([[[[1, 0], [0, 0]]]]))
        >>> round(float(metric.compute()), 4)
        0.5
    """

    score_name = "iou"


def localization_metrics(protocol: str = "official", threshold: float = 0.5) -> LocalizationMetrics:
    """The three metrics of the papers: a :class:`LocalizationMetrics` computing ``ap``, ``f1``, ``iou``.

    Args:
        protocol: ``"official"`` (per-image min-max normalisation, the published numbers) or ``"raw"``.
        threshold: binarisation threshold for F1 and IoU.

    Example:
        >>> metrics = localization_metrics()
        >>> metrics.metric_names
        ('ap', 'f1', 'iou')
    """
    return LocalizationMetrics(protocol, threshold)


class PerSubsetMetrics(SubsetRows, _ScoreSums):
    """AP, F1 and IoU per sub-dataset and over all images (RSRNet's Table 1 layout).

    Each image is scored once; its scores are added to its subset's row of the state (``sums``
    ``(S, 3)``, ``images`` and ``empty_target`` ``(S,)``), rows being created as subsets appear;
    the ``"All"`` row is their sum (images named ``"All"`` count there only). The subset names are
    a state too (``subset_names``, UTF-8 bytes), so ``reset``, ``forward``, ``.to()`` and
    :meth:`merge_state` keep rows and names together. Under DDP, :meth:`sync` first aligns every
    process to the union of the subset names, so a subset seen by one rank only is still reported.

    Args:
        protocol: ``"official"`` or ``"raw"`` (see :class:`LocalizationMetrics`).
        threshold: binarisation threshold for F1 and IoU.
        **kwargs: passed to ``torchmetrics.Metric``.

    Example:
        >>> per_subset = PerSubsetMetrics()
        >>> target = torch.zeros(2, 1, 16, 16)
        >>> target[:, :, 4:12, 4:12] = 1
        >>> per_subset.update(target * 0.7, target, ["HFlickr", "HCOCO"])
        >>> list(per_subset.compute())
        ['HCOCO', 'HFlickr', 'All']
    """

    # forward() must not add a batch's state to the global one by shape: rows differ.
    full_state_update = True
    subset_names: Tensor

    def __init__(self, protocol: str = "official", threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(protocol, threshold, METRIC_NAMES, (0,), **kwargs)
        self._add_subset_names_state()

    def update(self, preds: Tensor, target: Tensor, subsets: Sequence[str]) -> None:
        """Add a batch; ``subsets[i]`` names the sub-dataset of image ``i``."""
        if isinstance(subsets, str) or len(subsets) != preds.shape[0]:
            raise ValueError(
                f"subsets must be a list with one name per image: got {subsets!r} for a batch of "
                f"{preds.shape[0] if preds.ndim else '?'} images"
            )
        scores = self._score(preds, target)
        names = [str(s) for s in subsets]
        row = self._use_subsets(names)
        self._accumulate(scores, torch.tensor([row[n] for n in names], dtype=torch.long))

    def compute(self) -> dict[str, dict[str, float]]:
        """``{subset: {"ap", "f1", "iou" (fractions), "images", "empty_target"}}``, "All" last."""

        def row(sums: Tensor, images: Tensor, empty: Tensor) -> dict[str, float]:
            means = dict(zip(METRIC_NAMES, self._means(sums, images).tolist(), strict=True))
            return {**means, "images": float(images), "empty_target": float(empty)}

        results = {
            name: row(self.sums[i], self.images[i], self.empty_target[i])
            for i, name in enumerate(self._names())
            if name != ALL_ROW and int(self.images[i]) + int(self.empty_target[i]) > 0  # rows added by sync only
        }
        results[ALL_ROW] = row(self.sums.sum(dim=0), self.images.sum(), self.empty_target.sum())
        return results

    def merge_state(self, incoming_state: dict[str, Tensor] | Metric) -> None:
        """Add another :class:`PerSubsetMetrics` (or its ``metric_state``) to this one, subset by subset."""
        if isinstance(incoming_state, Metric) and not isinstance(incoming_state, PerSubsetMetrics):
            raise ValueError(f"expected a PerSubsetMetrics, got {type(incoming_state).__name__}")
        state = incoming_state.metric_state if isinstance(incoming_state, Metric) else incoming_state
        names = decode_names(state["subset_names"])
        row = self._use_subsets(names)
        rows = torch.tensor([row[n] for n in names], dtype=torch.long, device=self.sums.device)
        for key in ("sums", "images", "empty_target"):
            getattr(self, key).index_add_(0, rows, state[key].to(self.sums.device))
        self._update_count += 1
        self._computed = None
