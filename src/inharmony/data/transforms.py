"""Train and eval transforms (albumentations) for a composite and its mask.

The official recipe: train = RandomResizedCrop to 224 with scale (0.9, 1.0) plus horizontal flip;
eval = resize to 224×224. Both normalise with the same :class:`~inharmony.preprocessing.Normalize`
(ImageNet statistics by default). The eval transform *is* the evaluation preprocessing the
:class:`~inharmony.inference.Predictor` uses (:class:`~inharmony.preprocessing.EvalPreprocess`), so
``inharmony test`` scores exactly what ``inharmony predict`` outputs; its pixel choices (decoding,
interpolation, mask threshold) are :data:`inharmony.preprocessing.EVAL_PIXELS`.

Example:
    >>> t = train_transform(224)
    >>> image, mask = t(np.zeros((300, 400, 3), np.uint8), np.zeros((300, 400), np.float32))
    >>> tuple(image.shape), tuple(mask.shape)
    ((3, 224, 224), (1, 224, 224))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..preprocessing import EvalPixels, EvalPreprocess, Normalize, size_hw

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PairTransform", "eval_transform", "train_transform"]


class PairTransform:
    """Apply an albumentations pipeline to ``(image, mask)`` and return tensors.

    Returns image ``float32 (3, H, W)`` normalised and mask ``float32 (1, H, W)`` in {0, 1}
    (``mask >= threshold`` after the pipeline).

    Attributes:
        min_source_side: the shorter side the decoded image needs so the pipeline never upsamples
            (used to choose reduced JPEG decoding).
    """

    def __init__(
        self,
        pipeline: A.BasicTransform | A.Compose,
        min_source_side: int | None,
        threshold: float = 0.5,
        normalize: Normalize | None = None,
    ):
        self.pipeline = pipeline
        self.min_source_side = min_source_side
        self.threshold = threshold
        self.normalize = normalize or Normalize()

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.pipeline, A.Compose):
            # albumentations seeds itself from OS entropy; drawing its seed from torch's RNG makes
            # augmentation follow seed_everything (per DataLoader worker too) and resume exactly.
            self.pipeline.set_random_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
        out = self.pipeline(image=image, mask=mask.astype(np.float32, copy=False))
        mask = (out["mask"] >= self.threshold).astype(np.float32)
        return self.normalize(out["image"]), torch.from_numpy(mask[None])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline!r})"


def train_transform(
    size: int | tuple[int, int] = 224,
    scale: tuple[float, float] = (0.9, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hflip: float = 0.5,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> PairTransform:
    """The official training augmentation: RandomResizedCrop(size, scale) + horizontal flip."""
    h, w = size_hw(size)
    pipeline = A.Compose(
        [
            A.RandomResizedCrop(
                size=(h, w),
                scale=scale,
                ratio=ratio,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_LINEAR,
                area_for_downscale="image_mask",
            ),
            A.HorizontalFlip(p=hflip),
        ]
    )
    # The smallest crop has side ≈ sqrt(scale_min * ratio_min) of the image's; keep it ≥ the output.
    shrink = math.sqrt(max(1e-6, scale[0] * min(ratio[0], 1.0)))
    return PairTransform(pipeline, min_source_side=math.ceil(max(h, w) / shrink), normalize=Normalize(mean, std))


def eval_transform(
    size: int | tuple[int, int] = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    pixels: EvalPixels | None = None,
) -> EvalPreprocess:
    """The evaluation transform: resize to ``size`` (no crop, aspect not kept), as the Predictor does.

    Returns the one evaluation preprocessing, :class:`~inharmony.preprocessing.EvalPreprocess`, with
    ``pixels`` defaulting to :data:`~inharmony.preprocessing.EVAL_PIXELS`.
    """
    return EvalPreprocess(size, mean, std, pixels)
