"""Train and eval transforms (albumentations) for a composite and its mask.

The official recipe: train = RandomResizedCrop to 224 with scale (0.9, 1.0) plus horizontal flip, a
crop that loses the foreground redrawn as the authors' loader does (see :class:`PairTransform`);
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

    The crop-redraw rule of the authors' training loader (DIRL's and MadisNet's ``ihd_dataset.py``): after
    each draw of the pipeline, with probability ``keep_prob`` the draw is kept whatever it holds; otherwise
    it is kept only if the sum of its (linearly resized, not yet thresholded) mask in [0, 1] exceeds
    ``min_foreground`` — about "more than 10 foreground pixels" — and redrawn if not. The authors loop
    without limit; here at most ``max_draws`` draws are made and the last one is kept.

    All randomness (the pipeline's and the rule's) comes from one seed drawn from torch's RNG, so a
    sample's augmentation is fixed by ``torch.manual_seed`` before the call (see
    :class:`~inharmony.data.sampling.SeededItems`).

    Args:
        pipeline: the albumentations transform(s) applied to image and mask together.
        min_source_side: the shorter side the decoded image needs so the pipeline never upsamples
            (used to choose reduced JPEG decoding).
        threshold: mask binarisation threshold after the pipeline.
        normalize: the image normalisation (ImageNet statistics by default).
        min_foreground: redraw while the transformed mask's sum is ≤ this (None: never redraw).
        keep_prob: probability of keeping a draw without looking at its mask.
        max_draws: the most draws made for one sample.

    Example:
        >>> t = train_transform(32, min_foreground=10.0, keep_prob=0.05)
        >>> t.min_foreground, t.keep_prob
        (10.0, 0.05)
    """

    def __init__(
        self,
        pipeline: A.BasicTransform | A.Compose,
        min_source_side: int | None,
        threshold: float = 0.5,
        normalize: Normalize | None = None,
        min_foreground: float | None = None,
        keep_prob: float = 0.05,
        max_draws: int = 100,
    ):
        if not 0.0 <= keep_prob <= 1.0:
            raise ValueError(f"keep_prob must be in [0, 1], got {keep_prob}")
        if max_draws < 1:
            raise ValueError(f"max_draws must be ≥ 1, got {max_draws}")
        self.pipeline = pipeline
        self.min_source_side = min_source_side
        self.threshold = threshold
        self.normalize = normalize or Normalize()
        self.min_foreground = min_foreground
        self.keep_prob = keep_prob
        self.max_draws = max_draws
        self.draws = 0  # pipeline draws made in this process (≥ samples transformed; more when crops were redrawn)

    def _keep(self, mask: np.ndarray, rng: np.random.Generator) -> bool:
        if self.min_foreground is None or rng.random() < self.keep_prob:
            return True
        return float(mask.sum(dtype=np.float64)) > self.min_foreground

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        # albumentations seeds itself from OS entropy; drawing its seed from torch's RNG makes
        # augmentation follow seed_everything (per DataLoader worker too) and resume exactly.
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        if isinstance(self.pipeline, A.Compose):
            self.pipeline.set_random_seed(seed)
        rng = np.random.default_rng(seed)
        mask = mask.astype(np.float32, copy=False)
        for _ in range(self.max_draws):
            out = self.pipeline(image=image, mask=mask)  # a seeded Compose continues its stream: a new draw
            self.draws += 1
            if self._keep(out["mask"], rng):
                break
        binary = (out["mask"] >= self.threshold).astype(np.float32)
        return self.normalize(out["image"]), torch.from_numpy(binary[None])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline!r})"


def train_transform(
    size: int | tuple[int, int] = 224,
    scale: tuple[float, float] = (0.9, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hflip: float = 0.5,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    min_foreground: float | None = None,
    keep_prob: float = 0.05,
) -> PairTransform:
    """The official training augmentation: RandomResizedCrop(size, scale) + horizontal flip.

    ``min_foreground=10.0, keep_prob=0.05`` adds the authors' crop-redraw rule (see :class:`PairTransform`);
    :class:`~inharmony.data.IHarmony4DataModule` turns it on by default.

    Example:
        >>> image, mask = train_transform(32)(np.zeros((40, 50, 3), np.uint8), np.ones((40, 50), np.float32))
        >>> tuple(image.shape), float(mask.mean())
        ((3, 32, 32), 1.0)
    """
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
    return PairTransform(
        pipeline,
        min_source_side=math.ceil(max(h, w) / shrink),
        normalize=Normalize(mean, std),
        min_foreground=min_foreground,
        keep_prob=keep_prob,
    )


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
