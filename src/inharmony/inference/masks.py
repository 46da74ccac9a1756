"""Masks after the network: thresholds, binary masks, pictures, overlays, resizing to the photo's size.

A network's mask is a probability map at network size; :func:`resize_mask` brings it to the photo's size
(bilinear, half-pixel centres), :func:`resize_mask_bands` and :func:`resize_mask_uint8` do so a band of
rows at a time, so that the mask of a 144-megapixel photo never exists in float32.

Example:
    >>> prob = np.full((4, 4), 0.75, np.float32)
    >>> binarize(resize_mask(prob, 6, 9)).all(), int(resize_mask_uint8(prob, 6, 9).max())
    (np.True_, 191)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..imageio import ImageInput, load_image_array

__all__ = [
    "binarize",
    "check_threshold",
    "mask_to_image",
    "overlay",
    "resize_mask",
    "resize_mask_bands",
    "resize_mask_uint8",
]

_BAND_ROWS = 256  # rows of a full-size mask or overlay computed at once (float32 work stays ~W·256·16 bytes)


def check_threshold(threshold: float, option: str = "threshold") -> float:
    """``threshold`` if it is strictly between 0 and 1, else a ``ValueError`` saying why.

    A threshold ≤ 0 marks every pixel and one ≥ 1 (almost) none: an all-white or all-black mask.

    Example:
        >>> check_threshold(0.5)
        0.5
    """
    value = float(threshold)
    if not 0.0 < value < 1.0:  # also refuses NaN
        raise ValueError(
            f"{option} must be strictly between 0 and 1 (masks are probabilities), got {threshold}: "
            f"{'every' if value <= 0 else 'no'} pixel would be marked, an all-{'white' if value <= 0 else 'black'} "
            "mask; the papers use 0.5"
        )
    return value


def binarize(mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean mask: ``mask >= threshold`` (0.5 is the papers' threshold for F1 and IoU).

    Raises:
        ValueError: ``threshold`` is not strictly between 0 and 1.
    """
    return np.asarray(mask) >= check_threshold(threshold)


def mask_to_image(mask: np.ndarray) -> Image.Image:
    """An 8-bit greyscale image of a probability mask (0 → 0, 1 → 255)."""
    return Image.fromarray(np.clip(np.rint(np.asarray(mask) * 255.0), 0, 255).astype(np.uint8), mode="L")


def overlay(
    image: ImageInput,
    mask: np.ndarray,
    color: tuple[int, int, int] = (255, 0, 0),
    alpha: float = 0.6,
) -> Image.Image:
    """The image with the predicted region tinted: each pixel moves towards ``color`` by ``alpha · p``.

    Args:
        image: The image the mask was predicted for (same size as the mask).
        mask: Probability mask, H×W in [0, 1] (float), or 8-bit (uint8, 255 = 1).
        color: Tint colour (RGB).
        alpha: Opacity of the tint where the probability is 1.

    Example:
        >>> overlay(np.zeros((10, 10, 3), np.uint8), np.ones((10, 10), np.float32)).getpixel((0, 0))
        (153, 0, 0)
    """
    pixels = np.array(load_image_array(image))  # a writable copy: tinted in place, row band by row band
    mask = np.asarray(mask)
    if mask.shape != pixels.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the image size {pixels.shape[:2]}")
    scale = 1.0 / 255.0 if mask.dtype == np.uint8 else 1.0
    for start in range(0, mask.shape[0], _BAND_ROWS):
        band = mask[start : start + _BAND_ROWS].astype(np.float32) * scale
        _tint(pixels[start : start + _BAND_ROWS], band, color, alpha)
    return Image.fromarray(pixels, mode="RGB")


def _tint(pixels: np.ndarray, prob: np.ndarray, color: Sequence[int], alpha: float) -> None:
    """Move ``pixels`` (rows × W × 3 uint8, changed in place) towards ``color`` by ``alpha · prob``."""
    weight = (alpha * np.clip(prob, 0.0, 1.0))[..., None]
    blended = pixels.astype(np.float32) * (1.0 - weight) + np.asarray(color, dtype=np.float32) * weight
    np.clip(np.rint(blended), 0, 255, out=blended)
    pixels[...] = blended.astype(np.uint8)


def resize_mask(prob: torch.Tensor | np.ndarray, height: int, width: int) -> np.ndarray:
    """A probability map ``(h, w)`` resized to ``height × width``: bilinear, half-pixel centres, in [0, 1].

    This is how :class:`Predictor` brings the network's mask back to the image's own size; use it on the
    output of an exported model (``inharmony export``) to do the same.

    Example:
        >>> resize_mask(np.full((4, 4), 0.25, np.float32), 6, 9).shape
        (6, 9)
    """
    if isinstance(prob, np.ndarray):
        prob = torch.from_numpy(np.asarray(prob, dtype=np.float32))
    if prob.device.type == "cpu" and max(height, width) < 32767:
        # OpenCV is ~4x faster than torch's CPU interpolate for the 12-MP upsampling (same formula).
        full = cv2.resize(prob.float().numpy(), (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(full, 0.0, 1.0, out=full).astype(np.float32, copy=False)
    full = F.interpolate(prob.float()[None, None], size=(height, width), mode="bilinear", align_corners=False)
    return full[0, 0].clamp_(0.0, 1.0).cpu().numpy().astype(np.float32, copy=False)


def resize_mask_bands(
    prob: torch.Tensor | np.ndarray, height: int, width: int, rows: int = _BAND_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`resize_mask` computed ``rows`` output rows at a time: ``(first row, float32 band)`` pairs.

    The same bilinear formula (half-pixel centres, borders clamped), so the bands stacked equal
    :func:`resize_mask` (to float rounding) while never holding a full-size float array: a 144-MP mask
    is 576 MB in float32.

    Example:
        >>> bands = list(resize_mask_bands(np.eye(4, dtype=np.float32), 10, 6, rows=4))
        >>> [start for start, _ in bands], bands[-1][1].shape
        ([0, 4, 8], (2, 6))
    """
    small = prob.detach().float().cpu().numpy() if isinstance(prob, torch.Tensor) else np.asarray(prob, np.float32)
    small = small.reshape(small.shape[-2:])
    h, w = small.shape
    if w == width:
        wide = small
    elif width < 32767:  # OpenCV's limit; a height-preserving resize is the horizontal pass alone
        wide = cv2.resize(small, (width, h), interpolation=cv2.INTER_LINEAR)
    else:
        wide = F.interpolate(torch.from_numpy(small)[None, None], size=(h, width), mode="bilinear")[0, 0].numpy()
    for start in range(0, height, rows):
        out_rows = np.arange(start, min(start + rows, height), dtype=np.float64)
        source = np.clip((out_rows + 0.5) * (h / height) - 0.5, 0.0, h - 1)
        top = np.floor(source).astype(np.int64)
        bottom = np.minimum(top + 1, h - 1)
        frac = (source - top).astype(np.float32)[:, None]
        band = wide[top] * (1.0 - frac) + wide[bottom] * frac
        yield start, np.clip(band, 0.0, 1.0, out=band)


def resize_mask_uint8(
    prob: torch.Tensor | np.ndarray,
    height: int,
    width: int,
    *,
    threshold: float | None = None,
    tint: np.ndarray | None = None,
    color: tuple[int, int, int] = (255, 0, 0),
    alpha: float = 0.6,
) -> np.ndarray:
    """A network-size probability map as a full-size 8-bit mask, built band by band (low memory).

    Args:
        prob: ``(h, w)`` probabilities at network size.
        height: Output height (the image's).
        width: Output width.
        threshold: If given, the mask is binary: 255 where the probability is ≥ ``threshold``, else 0.
        tint: The image (``height × width × 3`` uint8); if given it is tinted in place, as :func:`overlay` does.
        color: Tint colour (RGB).
        alpha: Tint opacity where the probability is 1.

    Returns:
        ``uint8`` ``height × width``: the probability × 255, rounded (or 0/255 with ``threshold``) — what
        :func:`mask_to_image` writes for the float mask of :func:`resize_mask`, in a quarter of the memory.

    Example:
        >>> int(resize_mask_uint8(np.full((4, 4), 0.5, np.float32), 6, 9).max())
        128
    """
    if threshold is not None:
        check_threshold(threshold)
    if tint is not None and tint.shape != (height, width, 3):
        raise ValueError(f"image shape {tint.shape} does not match the mask size {(height, width)}")
    out = np.empty((height, width), np.uint8)
    for start, band in resize_mask_bands(prob, height, width):
        stop = start + band.shape[0]
        if threshold is not None:
            out[start:stop] = np.where(band >= threshold, 255, 0)
        else:
            out[start:stop] = np.rint(band * 255.0)
        if tint is not None:
            _tint(tint[start:stop], band, color, alpha)
    return out
