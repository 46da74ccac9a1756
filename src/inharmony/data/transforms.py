"""Train and eval transforms (albumentations) for a composite and its mask.

The official recipe: train = RandomResizedCrop to 224 with scale (0.9, 1.0) plus horizontal flip, a
crop that loses the foreground redrawn as the authors' loader does (see :class:`PairTransform`);
eval = resize to 224×224. Both normalise with the same :class:`~inharmony.preprocessing.Normalize`
(ImageNet statistics by default). The eval transform *is* the evaluation preprocessing the
:class:`~inharmony.inference.Predictor` uses (:class:`~inharmony.preprocessing.EvalPreprocess`), so
``inharmony test`` scores exactly what ``inharmony predict`` outputs; its pixel choices (decoding,
interpolation, mask threshold) are :data:`inharmony.preprocessing.EVAL_PIXELS`.

A harmonizer also needs the real (ground-truth harmonized) image on the same pixels:
:func:`apply_transform` passes it through the same geometry (the same crop and flip in training, the same
resize in evaluation) and returns it un-normalised, ``float32 (3, H, W)`` RGB in [0, 1] (:func:`to_unit_tensor`).

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

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PairTransform",
    "apply_transform",
    "eval_transform",
    "to_unit_tensor",
    "train_transform",
]


def to_unit_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB ``uint8`` (H, W, 3) → ``float32 (3, H, W)`` in [0, 1], not normalised (a real image's target).

    Example:
        >>> to_unit_tensor(np.full((2, 3, 3), 255, np.uint8)).shape
        torch.Size([3, 2, 3])
    """
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


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

    def __call__(self, image: np.ndarray, mask: np.ndarray, real: np.ndarray | None = None) -> tuple[torch.Tensor, ...]:
        """``(image, mask)``; with ``real`` (RGB ``uint8`` of the image's size) also the real image on the
        same crop and flip, ``float32 (3, H, W)`` in [0, 1] (not normalised)."""
        # albumentations seeds itself from OS entropy; drawing its seed from torch's RNG makes
        # augmentation follow seed_everything (per DataLoader worker too) and resume exactly.
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        if isinstance(self.pipeline, A.Compose):
            self.pipeline.set_random_seed(seed)
        rng = np.random.default_rng(seed)
        mask = mask.astype(np.float32, copy=False)
        extra = {} if real is None else {"real": real}
        if real is not None and real.shape != image.shape:
            raise ValueError(f"the real image is {real.shape}, the composite {image.shape}: they must match")
        for _ in range(self.max_draws):
            out = self.pipeline(image=image, mask=mask, **extra)  # a seeded Compose continues its stream: a new draw
            self.draws += 1
            if self._keep(out["mask"], rng):
                break
        binary = (out["mask"] >= self.threshold).astype(np.float32)
        if real is None:
            return self.normalize(out["image"]), torch.from_numpy(binary[None])
        return self.normalize(out["image"]), torch.from_numpy(binary[None]), to_unit_tensor(out["real"])

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
        ],
        additional_targets={"real": "image"},  # a harmonizer's real image takes the same crop and flip
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


def apply_transform(
    transform: PairTransform | EvalPreprocess | None,
    image: np.ndarray,
    mask: np.ndarray,
    real: np.ndarray | None = None,
) -> tuple[object, object, torch.Tensor | None]:
    """``(image, mask, real)`` through ``transform``; ``real`` (None without one) gets the image's geometry.

    With a :class:`PairTransform` the real image takes the same random crop and flip; with an
    :class:`~inharmony.preprocessing.EvalPreprocess` the same resize. Without a transform, arrays pass as
    they are (the real image as its ``uint8`` array).

    Example:
        >>> rgb = np.zeros((40, 50, 3), np.uint8)
        >>> image, mask, real = apply_transform(eval_transform(32), rgb, np.ones((40, 50), np.float32), rgb)
        >>> tuple(real.shape), float(real.max())
        ((3, 32, 32), 0.0)
    """
    if real is None:
        if transform is None:
            return image, mask, None
        image_t, mask_t = transform(image, mask)[:2]
        return image_t, mask_t, None
    if real.shape != image.shape:
        raise ValueError(f"the real image is {real.shape}, the composite {image.shape}: they must match")
    if transform is None:
        return image, mask, real
    if isinstance(transform, PairTransform):
        return transform(image, mask, real)
    if isinstance(transform, EvalPreprocess):
        image_t, mask_t = transform(image, mask)
        return image_t, mask_t, to_unit_tensor(transform.pipeline(image=real)["image"])
    raise TypeError(
        f"cannot carry a real image through {type(transform).__name__}: use a PairTransform (train_transform) "
        "or an EvalPreprocess (eval_transform)"
    )
