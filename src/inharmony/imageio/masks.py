"""Masks from files, PIL images and arrays: stored integers, their full scale, float in [0, 1].

Example:
    >>> load_mask_array(np.array([[0, 1]], np.uint8)).tolist()  # a 0/1 mask
    [[0.0, 1.0]]
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image

from ..errors import DataError, ImageReadError
from ._libjpeg import decode_checked

__all__ = ["load_mask_array", "mask_full_scale", "read_mask_array"]

MaskInput = str | os.PathLike | Image.Image | np.ndarray


def read_mask_array(buf: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode a mask to its stored integer array (H, W), ``uint8`` or ``uint16`` (no EXIF orientation).

    Colour-typed masks are accepted when all colour channels are equal (a grey mask saved as RGB);
    a mask with real colour, or another pixel type, is refused.

    Raises:
        DataError: the mask is unreadable, corrupt, coloured or of another pixel type.

    Example:
        >>> read_mask_array(cv2.imencode(".png", np.full((2, 3, 3), 255, np.uint8))[1].tobytes()).tolist()
        [[255, 255, 255], [255, 255, 255]]
    """
    mask = decode_checked(buf, cv2.IMREAD_UNCHANGED, name)
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


def mask_full_scale(raw: np.ndarray) -> int:
    """The value that means "fully foreground" in an integer mask: 1 for a 0/1 mask, else the dtype's maximum.

    Some tools save binary masks as 0/1 instead of 0/255; divided by 255 they would read as empty. A mask
    whose largest value is 1 is taken as such (an all-background mask scales by the maximum).

    Example:
        >>> mask_full_scale(np.array([[0, 1]], np.uint8)), mask_full_scale(np.array([[0, 255]], np.uint8))
        (1, 255)
        >>> mask_full_scale(np.zeros((2, 2), np.uint16))
        65535
    """
    if raw.dtype.kind in "ui" and raw.size and int(raw.max()) == 1:
        return 1
    return int(np.iinfo(raw.dtype).max)


def load_mask_array(source: MaskInput, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A mask as float32 ``(H, W)`` in [0, 1] from a file, a PIL image or an array.

    8- and 16-bit masks are scaled by their full scale (a 0/1 mask by 1); bool arrays become 0/1; float
    arrays must lie in [0, 1]. A colour mask must be grey (equal channels). With ``shape`` = the photo's
    ``(H, W)``, a mask of another size is an error.

    Raises:
        ImageReadError: the file is missing or not an image.
        DataError: the mask has colour, values outside [0, 1], or the wrong size.

    Example:
        >>> load_mask_array(np.array([[0, 255]], np.uint8)).tolist()
        [[0.0, 1.0]]
    """
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the mask"
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as fh:
                buf = fh.read()
        except OSError as err:
            raise ImageReadError(f"cannot read the mask {name}: {err.strerror or err}") from err
        try:
            array = read_mask_array(buf, name)
        except DataError as err:
            raise ImageReadError(str(err)) from err
    elif isinstance(source, Image.Image):
        array = np.asarray(source.convert("L") if source.mode not in ("L", "I;16", "1") else source)
    else:
        array = np.asarray(source)
    if array.ndim == 3:
        if array.shape[2] == 1 or all(np.array_equal(array[..., 0], array[..., c]) for c in range(1, array.shape[2])):
            array = array[..., 0]
        else:
            raise DataError(f"{name} has colour (its channels differ); a mask must be grey (0 = untouched)")
    if array.ndim != 2:
        raise DataError(f"{name} must be an (H, W) mask, got shape {array.shape}")
    if array.dtype == bool:
        mask = array.astype(np.float32)
    elif array.dtype.kind in "ui":
        mask = array.astype(np.float32) / float(mask_full_scale(array))
    else:
        mask = array.astype(np.float32)
        if not np.isfinite(mask).all() or mask.min(initial=0.0) < 0 or mask.max(initial=0.0) > 1:
            raise DataError(f"{name}: a float mask must hold values in [0, 1]")
    if shape is not None and mask.shape != tuple(shape):
        raise DataError(
            f"{name} is {mask.shape[1]}x{mask.shape[0]} but the photo is {shape[1]}x{shape[0]}: "
            "give the mask of this photo, at its size"
        )
    return np.clip(mask, 0.0, 1.0)
