"""How an image becomes the network's input at evaluation: one definition for ``predict`` and ``test``.

:class:`EvalPreprocess` is used by :class:`~inharmony.inference.Predictor` (hence ``inharmony predict``)
and by the val/test/predict loaders of :class:`~inharmony.data.IHarmony4DataModule` (hence
``inharmony validate`` and ``inharmony test``), so the mask ``predict`` writes is the mask ``test`` scores.
From the file's bytes to the normalised tensor:

1. :meth:`EvalPreprocess.decode`: OpenCV decodes to RGB ``uint8`` (EXIF orientation applied by OpenCV),
   a JPEG at 1/2, 1/4 or 1/8 scale when :attr:`EvalPixels.reduced_decoding` allows and its shorter side
   stays at least the network side;
2. :meth:`EvalPreprocess.__call__`: albumentations ``Resize`` to the network size (cv2 ``INTER_LINEAR``;
   ``INTER_AREA`` when shrinking if :attr:`EvalPixels.area_for_downscale`), then :class:`Normalize`
   (the model's mean/std, ImageNet by default) to ``float32 (3, H, W)``. A ground-truth mask is resized
   with the image and binarised by :meth:`EvalPixels.binarize`.

Every pixel choice (decoder reduction, interpolation, mask threshold) is a field of :class:`EvalPixels`;
:data:`EVAL_PIXELS` names the one in use, so changing what ``predict`` and ``test`` see is a one-line edit.

Example:
    >>> prep = EvalPreprocess(224)
    >>> x, _ = prep(np.zeros((457, 613, 3), np.uint8))
    >>> tuple(x.shape), x.dtype
    ((3, 224, 224), torch.float32)
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
import torch
from PIL import Image

from .constants import IMAGENET_MEAN, IMAGENET_STD
from .errors import DataError

__all__ = [
    "EVAL_PIXELS",
    "FAST_PIXELS",
    "EvalPixels",
    "EvalPreprocess",
    "Normalize",
    "decode_image",
    "image_size",
    "reduction_factor",
    "size_hw",
]


# --------------------------------------------------------------------------- the pixel choices


@dataclass(frozen=True)
class EvalPixels:
    """The choices that decide which pixels the network sees at evaluation, and which mask is scored.

    Attributes:
        reduced_decoding: Decode a JPEG at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when its shorter
            side stays at least the network's longer side; fast on 6000-px photos, but not the pixels of a
            full-size decode.
        area_for_downscale: Resize with cv2 ``INTER_AREA`` when shrinking (image and mask), else
            ``INTER_LINEAR`` always (enlarging is always ``INTER_LINEAR``).
        mask_threshold: A resized mask (float in [0, 1]) is foreground where it passes this value.
        mask_inclusive: Foreground is ``mask >= mask_threshold`` if True, ``mask > mask_threshold`` if False.

    Example:
        >>> EVAL_PIXELS.binarize(np.array([0.25, 0.5, 0.75], np.float32)).tolist()
        [0.0, 1.0, 1.0]
    """

    reduced_decoding: bool
    area_for_downscale: bool
    mask_threshold: float
    mask_inclusive: bool

    def binarize(self, mask: np.ndarray) -> np.ndarray:
        """``float32`` mask in {0, 1}: the resized ground truth as it is scored."""
        above = mask >= self.mask_threshold if self.mask_inclusive else mask > self.mask_threshold
        return above.astype(np.float32)


#: What the data path has always done: reduced JPEG decoding, area resampling when shrinking, mask >= 0.5.
#: Fast on HAdobe5k's 6000-px photos; not the authors' evaluation pixels (those decode at full size,
#: resize with ``INTER_LINEAR`` and keep mask > 0.5).
FAST_PIXELS = EvalPixels(reduced_decoding=True, area_for_downscale=True, mask_threshold=0.5, mask_inclusive=True)

#: The pixels :class:`~inharmony.inference.Predictor` and the eval loaders use unless given others.
EVAL_PIXELS = FAST_PIXELS


# --------------------------------------------------------------------------- decoding

_REDUCED_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}  # fmt: skip


def image_size(buf: bytes, name: str = "<bytes>") -> tuple[int, int]:
    """``(height, width)`` as stored in the file, from its header only (no pixel decoding).

    Raises:
        DataError: if the header is not a readable image's.
    """
    try:
        with Image.open(io.BytesIO(buf)) as im:
            width, height = im.size
    except Exception as err:  # PIL raises several types for bad headers
        raise DataError(f"{name}: not a readable image ({err}); re-download or remove it from the list") from err
    return height, width


def reduction_factor(height: int, width: int, min_side: int | None) -> int:
    """Largest factor in (1, 2, 4, 8) whose reduced image keeps its shorter side ≥ ``min_side``.

    Example:
        >>> reduction_factor(4000, 6000, 448)
        8
        >>> reduction_factor(480, 640, 224)
        2
    """
    if not min_side:
        return 1
    short = min(height, width)
    for factor in (8, 4, 2):
        # libjpeg rounds reduced sizes up
        if -(-short // factor) >= min_side:
            return factor
    return 1


def _jpeg_complete(buf: bytes | memoryview) -> bool:
    """Whether the JPEG's last scan is followed by an end-of-image marker (truncated files lack it)."""
    if b"\xff\xd9" in bytes(buf[-1024:]):
        return True
    # Data appended after the image (camera trailers) can push the marker out of the tail.
    data = bytes(buf)
    last_scan = data.rfind(b"\xff\xda")
    return last_scan >= 0 and data.find(b"\xff\xd9", last_scan) >= 0


def _is_jpeg(buf: bytes | memoryview) -> bool:
    return bytes(buf[:3]) == b"\xff\xd8\xff"


def decode_image(buf: bytes, name: str = "<bytes>", min_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode a colour image to RGB ``uint8`` (H, W, 3) with OpenCV (EXIF orientation applied by OpenCV).

    Args:
        buf: The encoded file.
        name: Shown in errors.
        min_side: If given and the image is a JPEG, decode at the largest 1/2, 1/4 or 1/8 scale whose
            shorter side stays ≥ ``min_side``.

    Returns:
        The image and the file's full-resolution ``(height, width)`` as stored (before EXIF orientation).

    Raises:
        DataError: if the file is not a readable image, or is a truncated JPEG.

    Example:
        >>> rgb, full = decode_image(cv2.imencode(".png", np.zeros((20, 30, 3), np.uint8))[1].tobytes())
        >>> rgb.shape, full
        ((20, 30, 3), (20, 30))
    """
    full = image_size(buf, name)
    factor = reduction_factor(*full, min_side) if _is_jpeg(buf) else 1
    if _is_jpeg(buf) and not _jpeg_complete(buf):
        # OpenCV decodes a truncated JPEG without error (grey bottom rows): refuse it.
        raise DataError(f"{name}: truncated JPEG (no end-of-image marker); re-download the file")
    image = cv2.imdecode(np.frombuffer(buf, np.uint8), _REDUCED_COLOR[factor])
    if image is None:
        raise DataError(f"{name}: OpenCV cannot decode this image (corrupt or truncated?)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), full


# --------------------------------------------------------------------------- normalisation


class Normalize:
    """``uint8`` RGB (H, W, 3) → ``float32`` tensor (3, H, W) of ``(x / 255 - mean) / std``.

    The one normalisation step of the train and eval transforms and of the Predictor.

    Example:
        >>> Normalize()(np.zeros((4, 4, 3), np.uint8))[:, 0, 0]
        tensor([-2.1179, -2.0357, -1.8044])
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._normalize = A.Normalize(mean=self.mean, std=self.std, max_pixel_value=255.0)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        out = self._normalize(image=image)["image"]
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


# --------------------------------------------------------------------------- the definition


def size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` of a size given as an int (square) or a pair.

    Example:
        >>> size_hw(224), size_hw((160, 288))
        ((224, 224), (160, 288))
    """
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


class EvalPreprocess:
    """Bytes or an RGB array → the network's input; with a mask, the pair as evaluation scores it.

    Args:
        size: Network input size, an int or ``(height, width)``.
        mean: Normalisation mean (RGB, 0–1 scale); the model's ``pretrained_cfg.mean``.
        std: Normalisation std; the model's ``pretrained_cfg.std``.
        pixels: The pixel choices (default :data:`EVAL_PIXELS`).

    Attributes:
        min_source_side: The shorter side a decoded image must keep (reduced JPEG decoding stops
            there), or None to decode at full size. Datasets read it, as for the train transform.

    Example:
        >>> prep = EvalPreprocess(32)
        >>> buf = cv2.imencode(".jpg", np.zeros((457, 613, 3), np.uint8))[1].tobytes()
        >>> rgb, full = prep.decode(buf)
        >>> rgb.shape, full  # 1/8 scale keeps the shorter side ≥ 32
        ((58, 77, 3), (457, 613))
        >>> image, mask = prep(rgb, np.ones((58, 77), np.float32))
        >>> tuple(image.shape), tuple(mask.shape)
        ((3, 32, 32), (1, 32, 32))
    """

    def __init__(
        self,
        size: int | Sequence[int] = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        pixels: EvalPixels | None = None,
    ) -> None:
        self.size = size_hw(size)
        self.pixels = pixels = pixels or EVAL_PIXELS
        height, width = self.size
        self.min_source_side = max(height, width) if pixels.reduced_decoding else None
        self.pipeline = A.Compose(
            [
                A.Resize(
                    height=height,
                    width=width,
                    interpolation=cv2.INTER_LINEAR,
                    mask_interpolation=cv2.INTER_LINEAR,
                    area_for_downscale="image_mask" if pixels.area_for_downscale else None,
                )
            ]
        )
        self.normalize = Normalize(mean, std)

    def decode(self, buf: bytes, name: str = "<bytes>") -> tuple[np.ndarray, tuple[int, int]]:
        """RGB ``uint8`` image and the file's stored ``(height, width)``; see :func:`decode_image`."""
        return decode_image(buf, name, self.min_source_side)

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Resize and normalise an RGB ``uint8`` image (and its float mask in [0, 1], if given).

        Returns:
            Image ``float32 (3, H, W)`` and mask ``float32 (1, H, W)`` in {0, 1} (None without a mask).
        """
        if mask is None:
            return self.normalize(self.pipeline(image=image)["image"]), None
        out = self.pipeline(image=image, mask=mask.astype(np.float32, copy=False))
        return self.normalize(out["image"]), torch.from_numpy(self.pixels.binarize(out["mask"])[None])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, pixels={self.pixels}, normalize={self.normalize})"
