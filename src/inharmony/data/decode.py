"""iHarmony4's pairs: a composite and its mask decoded on the same pixels, through :mod:`inharmony.imageio`.

HAdobe5k photos are up to ~6000 px on a side; decoding them at full size dominates loading time when the
network input is 224 px, so a composite may be decoded at 1/2, 1/4 or 1/8 scale
(:func:`inharmony.imageio.reduction_factor`) and its mask follows. Images and masks are decoded by
:mod:`inharmony.imageio`, the decoder the Predictor uses too; this module pairs them. Every function takes
the file's bytes, so the folder source and the streaming (litdata) source decode identically.

Faults handled here rather than passed on as wrong pixels:

* EXIF orientation: a composite is turned upright (as ``cv2.imread`` turns it) and its mask, stored on the
  composite's stored pixels, is turned the same way (:func:`decode_pair`); never stretched.
* 0/1 masks: a mask whose values are only 0 and 1 is scaled by 1, not by 255
  (:func:`inharmony.imageio.mask_full_scale`).
* Corrupt JPEGs: data libjpeg reports as corrupt ("Corrupt JPEG data: ...") is an error naming the file,
  as is a truncated JPEG.

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
from ..imageio import apply_orientation, decode_image, image_header, mask_full_scale, read_mask_array

__all__ = ["decode_mask", "decode_pair", "mask_fraction", "read_bytes"]


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes; a clear error when it is missing or unreadable."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as err:
        raise DataError(f"cannot read {os.fspath(path)!r}: {err.strerror or err}") from err


def mask_fraction(mask: np.ndarray) -> float:
    """Fraction of pixels of an integer mask that are ≥ half of full scale (foreground; 0/1 masks too).

    Example:
        >>> mask_fraction(np.array([[0, 1, 1, 0]], np.uint8)), mask_fraction(np.array([[0, 255, 0, 0]], np.uint8))
        (0.5, 0.25)
    """
    half = (mask_full_scale(mask) + 1) // 2
    return float(np.count_nonzero(mask >= half)) / mask.size


def decode_mask(buf: bytes, name: str = "<bytes>", size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a mask to ``float32`` (H, W) in [0, 1], scaled by its full scale (0/1 masks too).

    The mask's stored pixels: no EXIF orientation (see :func:`decode_pair` for a composite's). With
    ``size`` = ``(height, width)`` the mask is area-resized before the conversion to float (on a
    6000-px mask the conversion alone costs more than the resize).
    """
    mask = read_mask_array(buf, name)
    scale = float(mask_full_scale(mask))
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
    """Decode a composite and its mask on the same pixels: RGB ``uint8`` (H, W, 3) and ``float32`` (H, W).

    The mask must have the composite's stored size. The composite's EXIF orientation is applied to
    both; the mask follows any reduced decoding (area-resized) and is scaled by
    :func:`~inharmony.imageio.mask_full_scale`.

    Raises:
        DataError: if either file is unreadable or corrupt, or the mask's size differs from the composite's.

    Example:
        >>> png = lambda a: cv2.imencode(".png", a)[1].tobytes()
        >>> image, mask = decode_pair(png(np.zeros((4, 6, 3), np.uint8)), png(np.ones((4, 6), np.uint8)))
        >>> image.shape, mask.shape, float(mask.max())
        ((4, 6, 3), (4, 6), 1.0)
    """
    header = image_header(composite, composite_name)
    image, full = decode_image(composite, composite_name, min_side, header=header)
    raw = read_mask_array(mask, mask_name)
    if raw.shape != full:
        turned = " (its EXIF-turned size: masks must be stored like the composite's pixels)"
        raise DataError(
            f"mask {mask_name} is {raw.shape[1]}x{raw.shape[0]} but composite {composite_name} is "
            f"{full[1]}x{full[0]}{turned if raw.shape == header.upright_hw else ''}: "
            "the pair does not match (wrong file or a resized copy)"
        )
    scale = float(mask_full_scale(raw))
    raw = apply_orientation(raw, header.orientation)
    if image.shape[:2] != raw.shape:
        raw = cv2.resize(raw, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    return image, raw.astype(np.float32) / scale
