"""Per-image kernels of the official evaluation protocol: AP, F1 and IoU of each image (torch + numpy).

Every image is scored on its own, as in the authors' evaluation code. Per image, at network
resolution:

* ``protocol="official"`` min-max normalises the prediction, ``(p - min) / (max - min)``, but only
  subtracts the minimum when ``max - min < 0.01``; ``protocol="raw"`` scores the probabilities as
  they are.
* AP is scikit-learn's ``average_precision_score`` on the image's pixels: exact, no binning; tied
  scores form a single threshold.
* F1 (β² = 1) and IoU binarise the (normalised) prediction at ``> threshold``, with eps = 1e-6:
  ``P = TP / (#pred + eps)``, ``R = TP / (#gt + eps)``, ``F1 = 2PR / (P + R + eps)``,
  ``IoU = I / (U + eps)``.

Rules where the official code is silent or degenerate (documented choices):

* **Target**: bool, integer {0, 1} or float in [0, 1]; it is binarised at ``> 0.5``. The official
  code also min-max normalises the ground truth, which is the identity for a binary mask holding
  both classes but turns an all-foreground mask into an empty one; that quirk is not reproduced.
* **Empty ground truth** (no foreground pixel): AP is undefined (recall has no denominator; old
  scikit-learn returns NaN, new scikit-learn returns 0 with a warning) and F1/IoU are 0 whatever the
  prediction. Such images get NaN for all three scores, so the metric classes leave them out of all
  three averages and count them in ``empty_target``.
* **All-foreground ground truth**: scored like any other image (AP = 1).
* **Constant prediction**: under ``"official"`` it normalises to all zeros: every pixel ties, so AP is
  the foreground fraction, and F1 = IoU = 0.
* NaN or inf in the prediction, a prediction outside [0, 1] (logits?), or a target outside [0, 1]
  raise ``ValueError``; so do shapes that differ (the message names both).

This module imports torch and numpy only (no torchmetrics); the streaming metrics built on it
are in :mod:`inharmony.metrics.localization`.

Example:
    >>> import torch
    >>> target = torch.zeros(2, 1, 32, 32)
    >>> target[:, :, 8:24, 8:24] = 1
    >>> {k: [round(x, 4) for x in v.tolist()] for k, v in per_image_scores(target * 0.9 + 0.05, target).items()}
    {'ap': [1.0, 1.0], 'f1': [1.0, 1.0], 'iou': [1.0, 1.0]}
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from ..constants import METRIC_NAMES

__all__ = [
    "NORMALIZE_EPS",
    "PROTOCOLS",
    "SCORE_EPS",
    "average_precision_per_image",
    "check_protocol",
    "f1_per_image",
    "iou_per_image",
    "normalize_per_image",
    "per_image_scores",
]

PROTOCOLS = ("official", "raw")
NORMALIZE_EPS = 1e-2  # below this range the official code only subtracts the minimum
SCORE_EPS = 1e-6  # eps of the official F1 and IoU denominators
# Pixels sorted at once by the batched (GPU) AP kernel; bounds its temporary memory (about 50 B per pixel).
_AP_CHUNK_PIXELS = 1 << 21
# Pixels per chunk of the CPU path: a few 224² images, so that normalising, keying and sorting an image
# happen while its pixels are still in the CPU's caches (a 200-image update costs no more per image
# than a 25-image one).
_CPU_CHUNK_PIXELS = 1 << 18
_LITTLE_ENDIAN = sys.byteorder == "little"


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def check_protocol(protocol: str, threshold: float) -> None:
    """Raise ``ValueError`` unless ``protocol`` is one of :data:`PROTOCOLS` and ``0 <= threshold < 1``.

    Example:
        >>> check_protocol("official", 0.5)
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if not 0.0 <= float(threshold) < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")


def _check_pair(preds: Tensor, target: Tensor) -> tuple[int, int]:
    """Types, shapes and dtype of a ``(preds, target)`` pair; returns ``(images, pixels per image)``."""
    if not isinstance(preds, Tensor) or not isinstance(target, Tensor):
        raise TypeError(
            f"preds and target must be torch.Tensor, got {type(preds).__name__} and {type(target).__name__}"
        )
    if preds.shape != target.shape:
        raise ValueError(
            f"preds and target must have the same shape, got preds {tuple(preds.shape)} and target "
            f"{tuple(target.shape)}; resize the prediction to the mask (or the mask to the network "
            f"resolution) before scoring"
        )
    if not (preds.ndim == 4 and preds.shape[1] == 1) and preds.ndim != 3:
        raise ValueError(f"expected masks of shape (B, 1, H, W) or (B, H, W), got {tuple(preds.shape)}")
    if not preds.is_floating_point():
        raise ValueError(f"preds must be float probabilities in [0, 1], got dtype {preds.dtype}")
    return preds.shape[0], math.prod(preds.shape[1:])


def _check_pred_range(lo: float, hi: float, scores: Tensor) -> None:
    """Raise for NaN/inf or values outside [0, 1], given the batch's min and max (NaN if any is NaN)."""
    if not (math.isnan(lo) or math.isnan(hi) or lo < 0.0 or hi > 1.0):
        return
    finite = torch.isfinite(scores)
    if not bool(finite.all()):
        bad = (~finite).any(dim=1).nonzero().flatten().tolist()
        n_nan = int(torch.isnan(scores).sum())
        n_inf = int(torch.isinf(scores).sum())
        raise ValueError(
            f"preds contains {n_nan} NaN and {n_inf} inf values (images {bad[:10]} of the batch); "
            "the network diverged or its input was corrupt"
        )
    raise ValueError(
        f"preds must be probabilities in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
        "apply torch.sigmoid to logits first"
    )


def _check_target_range(lo: float, hi: float) -> None:
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError("target contains NaN values")
    if lo < 0.0 or hi > 1.0:
        hint = "; divide 0/255 masks by 255" if hi > 1.0 else ""
        raise ValueError(f"target must hold values in [0, 1] (binarised at 0.5), got [{lo:.4g}, {hi:.4g}]{hint}")


def _flatten_inputs(preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
    """Check ``preds``/``target``; return ``(B, H*W)`` float32 scores, bool labels and each row's (min, max).

    The per-row ``(min, max)`` (``(B, 1)`` each; ``None`` for an empty batch) serve both the range
    check and the official normalisation, so the scores are read once for both.
    """
    batch, pixels = _check_pair(preds, target)
    scores = preds.detach().reshape(batch, pixels).float()
    labels = target.detach().reshape(batch, pixels)
    if scores.numel() == 0:
        return scores, labels.bool(), None
    row_range = torch.aminmax(scores, dim=1, keepdim=True)
    lo, hi = torch.stack([row_range[0].min(), row_range[1].max()]).tolist()  # NaN propagates, inf falls out
    _check_pred_range(lo, hi, scores)
    if labels.dtype == torch.bool:
        return scores, labels, row_range
    labels_f = labels.float()
    _check_target_range(*torch.stack(torch.aminmax(labels_f)).tolist())  # one conversion to Python floats
    return scores, labels_f > 0.5, row_range


def _flatten_inputs_numpy(
    preds: Tensor, target: Tensor
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]] | None:
    """:func:`_flatten_inputs` for CPU tensors, as NumPy arrays (``None`` for an empty batch).

    NumPy rather than torch here on purpose: on a 224² row, torch's ``aminmax(dim=1)`` takes ~110 µs
    and ``> 0.5`` ~40 µs against ~7 µs and ~3 µs in NumPy, and an update of one image is nothing
    but such calls. The arrays share memory with the (float32, contiguous) tensors.
    """
    batch, pixels = _check_pair(preds, target)
    if batch * pixels == 0:
        return None
    flat = preds.detach().reshape(batch, pixels).float()
    scores = flat.numpy()
    row_range = (scores.min(axis=1, keepdims=True), scores.max(axis=1, keepdims=True))
    _check_pred_range(float(row_range[0].min()), float(row_range[1].max()), flat)  # NaN propagates
    labels = target.detach().reshape(batch, pixels)
    if labels.dtype == torch.bool:
        return scores, labels.numpy(), row_range
    values = labels.float().numpy()
    _check_target_range(float(values.min()), float(values.max()))
    return scores, values > 0.5, row_range


# --------------------------------------------------------------------------------------------
# Per-image kernels on flattened (N, P) tensors
# --------------------------------------------------------------------------------------------


def normalize_per_image(scores: Tensor, eps: float = NORMALIZE_EPS) -> Tensor:
    """Min-max normalise each row as the official code does.

    Args:
        scores: ``(N, P)`` float tensor, one image per row.
        eps: below this range (``max - min < eps``) only the minimum is subtracted.

    Returns:
        ``(N, P)`` tensor of the same dtype.

    Example:
        >>> normalize_per_image(torch.tensor([[0.2, 0.6, 0.4], [0.5, 0.505, 0.5]]))
        tensor([[0.0000, 1.0000, 0.5000],
                [0.0000, 0.0050, 0.0000]])
    """
    low, high = torch.aminmax(scores, dim=1, keepdim=True)
    span = high - low
    # Same operations (subtract, then divide by max - min) as the official code, so ties match;
    # dividing by exactly 1 leaves the rows that are only shifted unchanged.
    return (scores - low) / torch.where(span < eps, torch.ones_like(span), span)


def _sorted_keys(scores: Tensor, target: Tensor) -> Tensor:
    """Sort each row of scores, carrying the labels along, with one values-only sort.

    A non-negative float32's bit pattern read as int32 orders like the float, and scores in
    [0, 1] use 30 bits, so ``bits << 1 | label`` is an int32 key that sorts by score and keeps the
    label in bit 0 (ties stay together; their order inside a tie does not matter).
    """
    bits = (scores.float() + 0.0).contiguous().view(torch.int32)  # + 0.0 turns -0.0 into +0.0
    keys = (bits << 1) | target.to(torch.int32)
    if keys.device.type == "cpu":
        # numpy's SIMD sort is 10-20x faster than torch.sort on CPU (see `inharmony bench metrics`).
        return torch.from_numpy(np.sort(keys.numpy(), axis=1))
    return torch.sort(keys, dim=1).values


def average_precision_per_image(scores: Tensor, target: Tensor) -> Tensor:
    """Exact average precision of each row, as scikit-learn's ``average_precision_score``.

    ``AP = Σ_n (R_n − R_{n−1}) P_n`` over the distinct score values taken as thresholds, from the
    highest down; pixels with equal scores enter the curve together. One sort per row, no
    Python loop over pixels.

    Args:
        scores: ``(N, P)`` scores in [0, 1], one image per row (compared as float32, the dtype
            networks output).
        target: ``(N, P)`` bool labels.

    Returns:
        ``(N,)`` float64; NaN for a row without any positive label (AP undefined).

    Example:
        >>> average_precision_per_image(torch.tensor([[0.1, 0.4, 0.35, 0.8]]),
        ...                             torch.tensor([[False, False, True, True]]))
        tensor([0.8333], dtype=torch.float64)
    """
    if scores.shape != target.shape or scores.ndim != 2:
        raise ValueError(f"expected two (N, P) tensors, got {tuple(scores.shape)} and {tuple(target.shape)}")
    if scores.numel() == 0:
        return _average_precision_rows(scores, target.bool())
    lo, hi = (float(v) for v in torch.aminmax(scores))
    if not 0.0 <= lo <= hi <= 1.0:  # also catches NaN
        raise ValueError(f"scores must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    return _average_precision_rows(scores, target.bool())


def _average_precision_rows(scores: Tensor, target: Tensor) -> Tensor:
    """:func:`average_precision_per_image` without the checks (inputs already validated)."""
    if scores.device.type == "cpu" and scores.numel():
        return torch.from_numpy(_score_rows_cpu(scores.float().numpy(), target.numpy(), None, ("ap",))["ap"])
    return _average_precision_rows_batched(scores, target)


def _row_keys(
    scores: np.ndarray,
    labels: np.ndarray,
    normalize: bool,
    row_range: tuple[np.ndarray, np.ndarray] | None,
    out: np.ndarray,
) -> np.ndarray:
    """``(N, P)`` int32 sort keys ``bits << 1 | label`` of (normalised) float32 scores in [0, 1], in ``out``.

    A non-negative float32's bit pattern read as int32 orders like the float, and scores in [0, 1]
    use 30 bits, so the key sorts by score and keeps the label in bit 0 (the shift also drops the
    sign bit of -0.0, which therefore ties with +0.0 as it compares). ``row_range`` is each row's
    ``(min, max)``, ``(N, 1)`` each, when already known; ``out`` a float32 buffer of the same shape
    to reuse (fresh large buffers cost page faults on every call).
    """
    if normalize:
        if row_range is None:
            row_range = (scores.min(axis=1, keepdims=True), scores.max(axis=1, keepdims=True))
        low, high = row_range
        span = high - low
        # Same operations (subtract, then divide by max - min) as the official code, so ties match;
        # dividing by exactly 1 leaves the rows that are only shifted unchanged.
        np.subtract(scores, low, out=out)
        np.divide(out, np.where(span < NORMALIZE_EPS, np.float32(1.0), span), out=out)
    else:
        np.copyto(out, scores)
    keys = out.view(np.int32)
    np.left_shift(keys, 1, out=keys)
    np.bitwise_or(keys, labels, out=keys)
    return keys


_BUFFERS = threading.local()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch's CPU operations of the block on the calling thread only.

    The work is one image at a time, tens of thousands of pixels: too little to share, and with
    more threads each sort waits for the other threads to be scheduled, which on a busy machine
    made a 2-thread update ten times slower than a 1-thread one. (With OpenMP the setting belongs
    to the calling thread, so other threads are not affected.)
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _buffers(p: int, rows: int) -> tuple[Tensor, Tensor, np.ndarray]:
    """Buffers for rows of ``p`` pixels, kept per thread between calls: the sort's two outputs and the keys.

    Fresh buffers of this size cost page faults on every call, which dominate an update of one image.
    """
    cached = getattr(_BUFFERS, "value", None)
    if cached is None or cached[0].numel() != p or cached[2].shape[0] < rows:
        # Normal tensors even when first made under torch.inference_mode: an inference tensor kept here
        # could not be written by a later call outside it.
        with torch.inference_mode(False):
            cached = (
                torch.empty(p, dtype=torch.int32),
                torch.empty(p, dtype=torch.long),
                np.empty((rows, p), dtype=np.float32),
            )
        if p * rows <= 2 * _CPU_CHUNK_PIXELS:  # keep small ones only (images of a usual size)
            _BUFFERS.value = cached
    return cached[0], cached[1], cached[2][:rows]


def _score_rows_cpu(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float | None,
    wanted: tuple[str, ...],
    normalize: bool = False,
    row_range: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """``{name: (N,) float64 array}`` AP/F1/IoU of each row, one radix sort per row (CPU); NaN without positives.

    Per row, the keys of :func:`_row_keys` are sorted ascending (torch's stable sort of a 1-D
    integer tensor is a radix sort, several times faster than a comparison sort on CPU). With
    ``j_i`` the ascending position of the i-th positive and ``g_i`` the first position of its group
    of equal scores, scikit-learn's AP, ``Σ_t ΔR_t · P_t`` over the distinct thresholds, equals
    ``(1/#pos) Σ_i TP(≥ s_i) / N(≥ s_i)`` with ``N(≥ s_i) = P − g_i`` and ``TP(≥ s_i)`` read the same
    way among the positives; without ties ``g_i = j_i``, so only the positives' positions are
    needed. The F1/IoU counts at ``threshold`` are two binary searches in the same sorted row.
    Rows go through in chunks of ``_CPU_CHUNK_PIXELS`` so that each is keyed and sorted while in cache.
    """
    n, p = scores.shape
    ap = np.full(n, np.nan)
    tp, predicted, actual = np.zeros(n), np.zeros(n), np.zeros(n)
    # ``score > threshold`` as torch compares a float32 tensor with a Python float (in float32):
    # the smallest key above it is that of the next float32 up, label 0.
    cut = (int(np.float32(threshold or 0.0).view(np.int32)) + 1) << 1
    rows_per_chunk = max(1, _CPU_CHUNK_PIXELS // max(p, 1))
    sorted_keys, indices, buffer = _buffers(p, min(n, rows_per_chunk))
    for start in range(0, n, rows_per_chunk):
        stop = min(n, start + rows_per_chunk)
        rng = None if row_range is None else (row_range[0][start:stop], row_range[1][start:stop])
        keys = _row_keys(scores[start:stop], labels[start:stop], normalize, rng, out=buffer[: stop - start])
        for r in range(stop - start):
            torch.sort(torch.from_numpy(keys[r]), stable=True, out=(sorted_keys, indices))
            row = sorted_keys.numpy()
            # Bit 0 of each key is the label; on little-endian machines it is in the key's first byte.
            label_bytes = row.view(np.uint8)[::4] if _LITTLE_ENDIAN else (row & 1).astype(np.uint8)
            positions = np.flatnonzero((label_bytes & 1).view(bool))
            n_pos = positions.size
            if n_pos == 0:
                continue  # AP, F1 and IoU undefined: NaN (the counts stay 0)
            i = start + r
            positive_keys = row[positions]
            first_all, first_pos = positions, np.arange(n_pos)
            # Positives tied with the pixel just before them (position -1 wraps: at worst a needless
            # search) start later than their group: find the group's first key, for them only.
            tied = np.flatnonzero((row[positions - 1] | 1) == positive_keys)
            if tied.size:
                first_all = positions.copy()
                first_all[tied] = np.searchsorted(row, positive_keys[tied] - 1, "left")
                first_pos = first_pos.copy()
                first_pos[tied] = np.searchsorted(positive_keys, positive_keys[tied], "left")
            ap[i] = np.sum((n_pos - first_pos) / (p - first_all)) / n_pos
            tp[i] = n_pos - np.searchsorted(positive_keys, cut, "left")
            predicted[i] = p - np.searchsorted(row, cut, "left")
            actual[i] = n_pos
    # The same float64 operations as the tensor path (_f1_from_counts, _iou_from_counts) on NumPy
    # arrays: per-call overhead matters when an update holds one image.
    empty = np.isnan(ap)
    out: dict[str, np.ndarray] = {}
    for name in wanted:
        if name == "ap":
            out[name] = ap
        else:
            value = (_f1_from_counts if name == "f1" else _iou_from_counts)(tp, predicted, actual)
            value[empty] = np.nan
            out[name] = value
    return out


def _average_precision_rows_batched(scores: Tensor, target: Tensor) -> Tensor:
    """Batched AP of every row with tensor operations only (GPU and MPS; the CPU uses :func:`_score_rows_cpu`)."""
    n, p = scores.shape
    rows_per_chunk = max(1, _AP_CHUNK_PIXELS // max(p, 1))
    if n > rows_per_chunk:
        return torch.cat(
            [
                _average_precision_rows_batched(scores[i : i + rows_per_chunk], target[i : i + rows_per_chunk])
                for i in range(0, n, rows_per_chunk)
            ]
        )
    if n == 0 or p == 0:
        return torch.full((n,), math.nan, dtype=torch.float64, device=scores.device)
    device = scores.device
    if device.type == "mps":  # no float64 on MPS; this part runs on the CPU there
        scores, target = scores.cpu(), target.cpu()

    keys = _sorted_keys(scores, target).flip(1)  # descending score
    tps = (keys & 1).cumsum(dim=1, dtype=torch.int32)  # true positives among the top j + 1 pixels
    values = keys >> 1
    del keys
    # The last pixel of each run of equal scores closes one threshold of the curve.
    closes = torch.ones(n, p, dtype=torch.bool, device=tps.device)
    torch.ne(values[:, 1:], values[:, :-1], out=closes[:, :-1])
    del values
    tps_at_close = torch.where(closes, tps, 0)
    del closes
    # Recall gained at a threshold = true positives now minus at the previous threshold.
    gain = tps_at_close
    gain[:, 1:] -= torch.cummax(tps_at_close, dim=1).values[:, :-1]
    gain.clamp_min_(0)  # non-zero only where a threshold closes after new true positives
    # AP = Σ gain · precision / #positives; only the (few) thresholds that gain recall contribute,
    # so the float64 arithmetic runs on those alone.
    rows, cols = gain.nonzero(as_tuple=True)
    hits = tps[rows, cols].double()
    weighted = gain[rows, cols].double() * hits / (cols + 1).double()
    ap = torch.zeros(n, dtype=torch.float64, device=tps.device).index_add_(0, rows, weighted)
    positives = tps[:, -1].double()
    ap = torch.where(positives > 0, ap / positives.clamp_min(1), torch.nan)
    return ap.to(device)


def f1_per_image(binary_pred: Tensor, target: Tensor, eps: float = SCORE_EPS) -> Tensor:
    """Official F1 (β² = 1) of each row of two bool ``(N, P)`` tensors; float64 ``(N,)``.

    Example:
        >>> f1_per_image(torch.tensor([[True, True, False]]), torch.tensor([[True, False, False]]))
        tensor([0.6667], dtype=torch.float64)
    """
    return _f1_from_counts(*_counts(binary_pred, target), eps)


def iou_per_image(binary_pred: Tensor, target: Tensor, eps: float = SCORE_EPS) -> Tensor:
    """Official IoU ``I / (U + eps)`` of each row of two bool ``(N, P)`` tensors; float64 ``(N,)``.

    Example:
        >>> iou_per_image(torch.tensor([[True, True, False]]), torch.tensor([[True, False, False]]))
        tensor([0.5000], dtype=torch.float64)
    """
    return _iou_from_counts(*_counts(binary_pred, target), eps)


def _counts(binary_pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per row: true positives, predicted positives, ground-truth positives (float64)."""
    tp = (binary_pred & target).sum(dim=1).double()
    return tp, binary_pred.sum(dim=1).double(), target.sum(dim=1).double()


def _f1_from_counts(tp: Tensor, predicted: Tensor, actual: Tensor, eps: float = SCORE_EPS) -> Tensor:
    precision = tp / (predicted + eps)
    recall = tp / (actual + eps)
    return 2.0 * precision * recall / (precision + recall + eps)


def _iou_from_counts(tp: Tensor, predicted: Tensor, actual: Tensor, eps: float = SCORE_EPS) -> Tensor:
    return tp / (predicted + actual - tp + eps)


def per_image_scores(
    preds: Tensor,
    target: Tensor,
    protocol: str = "official",
    threshold: float = 0.5,
    metrics: Iterable[str] = METRIC_NAMES,
) -> dict[str, Tensor]:
    """Score every image of a batch on its own.

    Args:
        preds: ``(B, 1, H, W)`` (or ``(B, H, W)``) probabilities in [0, 1].
        target: ground-truth masks of the same shape, binarised at ``> 0.5``.
        protocol: ``"official"`` (per-image min-max normalisation) or ``"raw"``.
        threshold: binarisation threshold of the prediction for F1 and IoU (strict ``>``).
        metrics: which of ``"ap"``, ``"f1"``, ``"iou"`` to compute.

    Returns:
        ``{name: (B,) float64}``; images with an empty ground truth get NaN (see the module notes).

    Example:
        >>> target = torch.zeros(1, 1, 4, 4)
        >>> target[..., :2, :2] = 1
        >>> per_image_scores(target * 0.8, target)["iou"]
        tensor([1.0000], dtype=torch.float64)
    """
    check_protocol(protocol, threshold)
    wanted = tuple(metrics)
    unknown = set(wanted) - set(METRIC_NAMES)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; expected a subset of {METRIC_NAMES}")
    scores = _per_image_scores(preds, target, protocol, threshold, wanted)
    return {name: _as_tensor(value) for name, value in scores.items()}


def _as_tensor(value: Tensor | np.ndarray) -> Tensor:
    return torch.from_numpy(value) if isinstance(value, np.ndarray) else value


def _per_image_scores(
    preds: Tensor, target: Tensor, protocol: str, threshold: float, wanted: tuple[str, ...]
) -> dict[str, Tensor | np.ndarray]:
    """:func:`per_image_scores` after the argument checks; NumPy arrays from the CPU path (fewer small ops)."""
    if isinstance(preds, Tensor) and preds.device.type == "cpu" and "ap" in wanted:  # F1/IoU alone need no sort
        with _one_thread():
            flat = _flatten_inputs_numpy(preds, target)
            if flat is not None:
                return _score_rows_cpu(*flat[:2], threshold, wanted, protocol == "official", flat[2])
    scores, labels, _ = _flatten_inputs(preds, target)
    if protocol == "official" and scores.numel():
        scores = normalize_per_image(scores)
    empty = ~labels.any(dim=1)
    out: dict[str, Tensor] = {}
    counts = _counts(scores > threshold, labels) if {"f1", "iou"} & set(wanted) else None
    for name in wanted:
        if name == "ap":
            value = _average_precision_rows(scores, labels)
        elif name == "f1":
            value = _f1_from_counts(*counts)
        else:
            value = _iou_from_counts(*counts)
        out[name] = value.masked_fill(empty, math.nan)
    return out
