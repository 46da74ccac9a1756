"""Decode composites and masks with OpenCV, with reduced JPEG decoding for huge images.

HAdobe5k photos are up to ~6000 px on a side; decoding them at full size dominates loading time when the
network input is 224 px. libjpeg can decode at 1/2, 1/4 or 1/8 scale directly from the DCT coefficients
(``cv2.IMREAD_REDUCED_COLOR_*``), several times faster than a full decode. :func:`reduction_factor`
picks the largest factor that keeps the shorter side at least ``min_side`` pixels.

Composites are decoded by :func:`inharmony.preprocessing.decode_image` (re-exported here), the decoder
the Predictor uses too; this module adds masks and pairs. Every function takes the file's bytes, so the
folder source and the streaming (litdata) source decode identically.

Example:
    >>> buf = read_bytes("HAdobe5k/composite_images/a0001_1_1.jpg")  # doctest: +SKIP
    >>> mask = read_bytes("HAdobe5k/masks/a0001_1.png")  # doctest: +SKIP
    >>> image, target = decode_pair(buf, mask, min_side=256)  # doctest: +SKIP
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..errors import DataError
from ..preprocessing import decode_image, image_size, reduction_factor

__all__ = [
    "decode_image",
    "decode_mask",
    "decode_pair",
    "image_size",
    "mask_fraction",
    "read_bytes",
    "read_mask_array",
    "reduction_factor",
]


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes; a clear error when it is missing or unreadable."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as err:
        raise DataError(f"cannot read {os.fspath(path)!r}: {err.strerror or err}") from err


def read_mask_array(buf: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode a mask to its stored integer array (H, W), ``uint8`` or ``uint16``.

    Colour-typed masks are accepted when all colour channels are equal (a grey mask saved as RGB);
    a mask with real colour, or another pixel type, is refused.
    """
    mask = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataError(f"{name}: OpenCV cannot decode this mask (corrupt or truncated?)")
    if mask.ndim == 3:
        colour = mask[..., :3]
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            raise DataError(f"{name}: mask has colour (channels differ); masks must be grey (0 = background)")
        mask = colour[..., 0]
    if mask.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{name}: mask pixel type {mask.dtype} is not supported (use 8- or 16-bit PNG)")
    return mask


def mask_fraction(mask: np.ndarray) -> float:
    """Fraction of pixels of an integer mask that are ≥ half of full scale (foreground)."""
    half = (int(np.iinfo(mask.dtype).max) + 1) // 2
    return float(np.count_nonzero(mask >= half)) / mask.size


def decode_mask(buf: bytes, name: str = "<bytes>", size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a mask to ``float32`` (H, W) in [0, 1], 8- and 16-bit masks scaled by their maximum.

    With ``size`` = ``(height, width)`` the mask is area-resized before the conversion to float (on a
    6000-px mask the conversion alone costs more than the resize).
    """
    mask = read_mask_array(buf, name)
    scale = float(np.iinfo(mask.dtype).max)
    if size is not None and mask.shape != tuple(size):
        # Area interpolation gives each pixel its foreground coverage; thresholding happens later.
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return mask.astype(np.float32) / scale


def decode_pair(
    composite: bytes,
    mask: bytes,
    composite_name: str = "<composite>",
    mask_name: str = "<mask>",
    min_side: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode a composite and its mask at the same size (the mask follows any reduced decoding).

    Raises:
        DataError: if either file is unreadable or the mask's size differs from the composite's.
    """
    image, full = decode_image(composite, composite_name, min_side)
    raw = read_mask_array(mask, mask_name)
    if raw.shape != full:
        raise DataError(
            f"mask {mask_name} is {raw.shape[1]}x{raw.shape[0]} but composite {composite_name} is "
            f"{full[1]}x{full[0]}: the pair does not match (wrong file or a resized copy)"
        )
    scale = float(np.iinfo(raw.dtype).max)
    if image.shape[:2] != raw.shape:
        raw = cv2.resize(raw, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    return image, raw.astype(np.float32) / scale
