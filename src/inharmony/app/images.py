"""Uploads to arrays and results to pictures, for the web page: :func:`read_upload`, :func:`previews`.

Nothing here imports Gradio: every function takes and returns arrays, paths and plain numbers, so it
is tested and reused without a server. Every problem with an upload is an
:class:`~inharmony.errors.ImageReadError` whose message can be shown to the person who uploaded it.

Example:
    >>> import numpy as np, cv2, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "photo.png"
    >>> _ = cv2.imwrite(str(path), np.zeros((300, 400, 3), np.uint8))
    >>> upload = read_upload(path, max_pixels=30_000)
    >>> upload.image.shape, upload.original_hw
    ((150, 200, 3), (300, 400))
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import DataError, ImageReadError
from ..imageio import MIN_SIDE, encode_png, image_header, read_image_bytes
from ..inference import overlay, resize_mask

__all__ = [
    "MAX_PIXELS",
    "MAX_UPLOAD_BYTES",
    "PREVIEW_SIDE",
    "Previews",
    "Upload",
    "downscale_note",
    "encode_png",
    "preview_size",
    "previews",
    "read_upload",
    "region_preview",
]

MAX_PIXELS = 16_000_000
"""Photos with more pixels are downscaled to this many before anything else (a 12-MP photo stays as it is)."""
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
"""Larger files are refused before decoding."""
PREVIEW_SIDE = 1024
"""Longest side of the pictures shown on the page; the downloads keep the photo's (processed) size."""


@dataclass(frozen=True)
class Upload:
    """A photo as the page works on it.

    Attributes:
        image: Upright RGB ``uint8`` (H, W, 3), downscaled if the photo had more than ``max_pixels``.
        original_hw: ``(height, width)`` of the upright photo as uploaded.
        name: The file's name without its folder and suffix (for download names).
    """

    image: np.ndarray
    original_hw: tuple[int, int]
    name: str

    @property
    def downscaled(self) -> bool:
        """Whether :attr:`image` is smaller than the photo."""
        return self.image.shape[:2] != self.original_hw


def _megapixels(height: int, width: int) -> str:
    return f"{height * width / 1e6:.1f} MP"


def read_upload(
    path: str | os.PathLike[str],
    max_pixels: int = MAX_PIXELS,
    name: str | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> Upload:
    """Decode an uploaded file to an upright RGB array of at most ``max_pixels`` pixels.

    A JPEG over the limit is decoded at a reduced scale (1/2, 1/4 or 1/8, cheap) and then resized with
    area averaging to the largest size within the limit, keeping the aspect ratio; other formats are
    decoded at full size and resized.

    Args:
        path: The uploaded file.
        max_pixels: Pixel budget; larger photos are downscaled to fit.
        name: The name the file had on the uploader's machine (default: ``path``'s name).
        max_bytes: Larger files are refused without being decoded.

    Returns:
        The :class:`Upload`.

    Raises:
        ImageReadError: not a readable image (a text file, a corrupt or truncated file), too small,
            larger than Pillow's decompression-bomb limit, or a file over ``max_bytes``.

    Example:
        >>> read_upload("photo.jpg").image.shape  # doctest: +SKIP
        (3000, 4000, 3)
    """
    path = Path(path)
    shown = name or path.name
    stem = Path(shown).stem or "photo"
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ImageReadError(f"{shown}: the upload cannot be read ({err.strerror or err})") from err
    if size == 0:
        raise ImageReadError(f"{shown} is an empty file; upload a photo (JPEG, PNG, WebP, TIFF, BMP ...)")
    if size > max_bytes:
        raise ImageReadError(f"{shown} is {size / 2**20:.0f} MB; files up to {max_bytes / 2**20:.0f} MB are accepted")
    buf = path.read_bytes()
    try:
        header = image_header(buf, shown)
    except DataError as err:
        if isinstance(err.__cause__, Image.DecompressionBombError):
            raise ImageReadError(
                f"{shown} is too large to decode safely ({err.__cause__}); downscale it below "
                f"{Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} megapixels first"
            ) from err
        raise ImageReadError(
            f"{shown} is not an image this page can read (JPEG, PNG, WebP, TIFF, BMP ...): the file is corrupt, "
            "truncated or of another kind"
        ) from err
    height, width = header.upright_hw
    if min(height, width) < MIN_SIDE:
        raise ImageReadError(f"{shown} is {width}×{height} px; at least {MIN_SIDE} px on each side are needed")
    target = _fit(height, width, max_pixels)
    try:
        # Reduced decoding (a JPEG over the limit) keeps a huge photo from ever existing at full size in memory.
        image, _ = read_image_bytes(buf, shown, min(target) if target != (height, width) else None, header=header)
    except (DataError, ValueError) as err:  # ImageReadError is a ValueError
        detail = str(err).replace(str(path), shown)  # the server's temporary path means nothing to the uploader
        raise ImageReadError(f"{shown} cannot be decoded: the file is corrupt or truncated ({detail})") from err
    except MemoryError as err:
        raise ImageReadError(f"{shown} ({width}×{height} px) does not fit in memory; downscale it first") from err
    if image.shape[:2] != target:
        image = cv2.resize(image, (target[1], target[0]), interpolation=cv2.INTER_AREA)
    return Upload(np.ascontiguousarray(image), (height, width), stem)


def _fit(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """The largest ``(h, w)`` with the same aspect ratio and at most ``max_pixels`` pixels."""
    if height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    return max(MIN_SIDE, math.floor(height * scale)), max(MIN_SIDE, math.floor(width * scale))


def downscale_note(upload: Upload, max_pixels: int) -> str:
    """A sentence saying that (and how) the photo was downscaled, or ``""`` when it was not."""
    if not upload.downscaled:
        return ""
    (h0, w0), (h, w) = upload.original_hw, upload.image.shape[:2]
    return (
        f"The photo is {w0}×{h0} px ({_megapixels(h0, w0)}), over this page's limit of "
        f"{max_pixels / 1e6:g} MP: it was downscaled to {w}×{h} px, and the mask has that size."
    )


@dataclass(frozen=True)
class Previews:
    """The three pictures shown side by side, at most :data:`PREVIEW_SIDE` px on their longest side.

    Attributes:
        soft: The probability mask as 8-bit grey (H, W).
        overlay: The photo with the region tinted red (H, W, 3).
        region: The binarised mask, 0 or 255 (H, W).
    """

    soft: np.ndarray
    overlay: np.ndarray
    region: np.ndarray


def preview_size(height: int, width: int, side: int = PREVIEW_SIDE) -> tuple[int, int]:
    """``(h, w)`` with the same aspect ratio and the longest side at most ``side``."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def region_preview(prob: np.ndarray, hw: tuple[int, int], threshold: float) -> np.ndarray:
    """The network-size probability ``prob`` binarised at ``threshold``, at preview size ``hw`` (0/255)."""
    return np.where(resize_mask(prob, *hw) >= threshold, 255, 0).astype(np.uint8)


def previews(image: np.ndarray, prob: np.ndarray, threshold: float, side: int = PREVIEW_SIDE) -> Previews:
    """Soft mask, overlay and binarised region for ``image`` from the network-size probability ``prob``.

    Example:
        >>> p = previews(np.zeros((30, 60, 3), np.uint8), np.ones((8, 8), np.float32), 0.5)
        >>> p.soft.shape, p.overlay.shape, int(p.region.max())
        ((30, 60), (30, 60, 3), 255)
    """
    hw = preview_size(*image.shape[:2], side=side)
    small = image if hw == image.shape[:2] else cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    soft = resize_mask(prob, *hw)
    return Previews(
        soft=np.clip(np.rint(soft * 255.0), 0, 255).astype(np.uint8),
        overlay=np.asarray(overlay(small, soft)),
        region=np.where(soft >= threshold, 255, 0).astype(np.uint8),
    )
