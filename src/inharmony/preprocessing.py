"""How an image becomes the network's input at evaluation: one definition for ``predict`` and ``test``.

:class:`EvalPreprocess` is used by :class:`~inharmony.inference.Predictor` (hence ``inharmony predict``)
and by the val/test/predict loaders of :class:`~inharmony.data.IHarmony4DataModule` (hence
``inharmony validate`` and ``inharmony test``), so the mask ``predict`` writes is the mask ``test`` scores.
By default (:data:`EVAL_PIXELS` = :data:`OFFICIAL_PIXELS`) the tensors are the DIRL authors' test loader's,
so scores are comparable with the papers' tables. From the file's bytes to the normalised tensor:

1. :meth:`EvalPreprocess.decode`: :func:`inharmony.imageio.decode_image` decodes to RGB ``uint8`` at full
   size with OpenCV, EXIF orientation applied (as ``cv2.imread`` does, so a mask can be turned the same
   way); a JPEG that libjpeg reports as corrupt is refused. With :attr:`EvalPixels.reduced_decoding` (the
   :data:`FAST_PIXELS` option) a large JPEG is decoded at 1/2, 1/4 or 1/8 scale instead;
2. :meth:`EvalPreprocess.__call__`: albumentations ``Resize`` to the network size, cv2 ``INTER_LINEAR``
   (``INTER_AREA`` when shrinking if :attr:`EvalPixels.area_for_downscale`), then :class:`Normalize`
   (the model's mean/std, ImageNet by default) to ``float32 (3, H, W)``. A ground-truth mask (float in
   [0, 1]) is resized with the image, bilinearly as an image, and binarised by :meth:`EvalPixels.binarize`
   (``> 0.5`` officially).

Every pixel choice (decoder reduction, interpolation, mask threshold) is a field of :class:`EvalPixels`;
:data:`PIXEL_PRESETS` names the two sets (``"official"``, ``"fast"``) and :func:`eval_pixels` looks one up.

Example:
    >>> prep = EvalPreprocess(224)
    >>> x, _ = prep(np.zeros((457, 613, 3), np.uint8))
    >>> tuple(x.shape), x.dtype, prep.pixels is OFFICIAL_PIXELS
    ((3, 224, 224), torch.float32, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
import torch

from .constants import IMAGENET_MEAN, IMAGENET_STD
from .imageio import decode_image

__all__ = [
    "EVAL_PIXELS",
    "FAST_PIXELS",
    "OFFICIAL_PIXELS",
    "PIXEL_PRESETS",
    "EvalPixels",
    "EvalPreprocess",
    "Normalize",
    "eval_pixels",
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
        >>> mask = np.array([0.25, 0.5, 0.75], np.float32)
        >>> OFFICIAL_PIXELS.binarize(mask).tolist(), FAST_PIXELS.binarize(mask).tolist()
        ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])
    """

    reduced_decoding: bool
    area_for_downscale: bool
    mask_threshold: float
    mask_inclusive: bool

    def binarize(self, mask: np.ndarray) -> np.ndarray:
        """``float32`` mask in {0, 1}: the resized ground truth as it is scored."""
        above = mask >= self.mask_threshold if self.mask_inclusive else mask > self.mask_threshold
        return above.astype(np.float32)


#: The DIRL authors' test loader (``data/ihd_dataset.py`` with ``--preprocess resize``): full-size decode,
#: ``INTER_LINEAR`` resize of the image and of the float mask, mask > 0.5. Scores comparable with the papers.
OFFICIAL_PIXELS = EvalPixels(reduced_decoding=False, area_for_downscale=False, mask_threshold=0.5, mask_inclusive=False)

#: The speed option: reduced JPEG decoding, area resampling when shrinking, mask >= 0.5 (the data path's
#: default before 0.2). Several times faster on HAdobe5k's 6000-px photos, but not the authors' pixels:
#: scores differ slightly from the official ones (``inharmony bench eval_pixels`` measures by how much).
FAST_PIXELS = EvalPixels(reduced_decoding=True, area_for_downscale=True, mask_threshold=0.5, mask_inclusive=True)

#: The named pixel sets, as configs and the command line spell them.
PIXEL_PRESETS: dict[str, EvalPixels] = {"official": OFFICIAL_PIXELS, "fast": FAST_PIXELS}

#: The pixels :class:`~inharmony.inference.Predictor` and the eval loaders use unless given others.
EVAL_PIXELS = OFFICIAL_PIXELS


def eval_pixels(name: str) -> EvalPixels:
    """The pixel set named ``name`` in :data:`PIXEL_PRESETS`.

    Raises:
        ValueError: if ``name`` is not one of them.

    Example:
        >>> eval_pixels("fast") is FAST_PIXELS
        True
    """
    try:
        return PIXEL_PRESETS[name]
    except (KeyError, TypeError):
        choices = ", ".join(repr(k) for k in PIXEL_PRESETS)
        raise ValueError(f"unknown evaluation pixels {name!r}; choose one of {choices}") from None


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
        pixels: The pixel choices (default :data:`EVAL_PIXELS`, the authors'); :func:`eval_pixels` names them.

    Attributes:
        min_source_side: The shorter side a decoded image must keep (reduced JPEG decoding stops
            there), or None to decode at full size. Datasets read it, as for the train transform.

    Example:
        >>> prep = EvalPreprocess(32)
        >>> buf = cv2.imencode(".jpg", np.zeros((457, 613, 3), np.uint8))[1].tobytes()
        >>> rgb, full = prep.decode(buf)
        >>> rgb.shape, full  # the official pixels: always full size
        ((457, 613, 3), (457, 613))
        >>> EvalPreprocess(32, pixels=FAST_PIXELS).decode(buf)[0].shape  # 1/8 scale keeps the shorter side ≥ 32
        (58, 77, 3)
        >>> image, mask = prep(rgb, np.ones((457, 613), np.float32))
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
        """RGB ``uint8`` image and the file's stored ``(height, width)``; see :func:`inharmony.imageio.decode_image`."""
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
