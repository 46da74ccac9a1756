"""Find the inharmonious region of a photo (or take its mask), harmonize it, and score it: localization → PCTNet.

:class:`Harmonizer` chains a localizer (any :class:`~inharmony.inference.Predictor`, MadisNet by default), a
harmonizer (``pctnet`` by default, ``s2am`` with the mask, or ``s2am_maskfree`` which finds the region itself)
and, optionally, a harmony scorer (:class:`~inharmony.inference.scorer.HarmonyScorer`, BargainNet) that scores
the photo before and after:

1. **The mask.** Given: used as it is (a binary mask stays binary, a soft one blends). Predicted: the
   localizer's (or the mask-free harmonizer's) probability ``p`` at the photo's size becomes the soft mask
   ``α = clip((p − t + w) / 2w, 0, 1)`` with ``w = min(t, 1 − t) / 4`` around the threshold ``t``: confident
   region 1, confident background exactly 0, the uncertain edge a ramp. Either way the mask is quantised to
   8 bits (the written mask PNG's levels). An empty region (given, or nothing above the threshold) is an
   error: there is nothing to harmonize.
2. **PCTNet** (a full-resolution harmonizer: its ``forward`` takes ``image_lr``) gets libcom's pixels, so its
   output equals libcom's: the low-resolution inputs are OpenCV ``INTER_LINEAR`` resizes of the 8-bit photo
   and of the mask to 256×256, and the predicted per-pixel colour transform is applied at the photo's own
   size (in float32 row bands, inside the model), rounded to 8 bits.
3. **S2AM** runs at its own size (256×256): the photo is resized as the evaluation loaders do
   (:class:`~inharmony.preprocessing.EvalPreprocess`, the model's mean/std) and the mask binarised there
   (``α ≥ 0.5``), as the harmonizer was trained. Back at the photo's size, the network's *change*
   ``out − in`` is resized to the photo (bilinear), added to the photo's own pixels and blended with ``α``.

Either way pixels with ``α = 0`` are copied from the input, bit for bit; the written mask is zero exactly there.

Example:
    >>> harmonizer = Harmonizer("pctnet", localizer="madisnet", scorer="bargainnet")  # doctest: +SKIP
    >>> result = harmonizer("photo.jpg")  # doctest: +SKIP
    >>> print(f"harmony {result.score_before:.2f} -> {result.score_after:.2f}")  # doctest: +SKIP
    >>> result.panel().save("before_after.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from ..errors import DataError, ImageReadError
from ..imageio import ImageInput, load_mask_array
from ..preprocessing import EvalPreprocess
from .masks import check_threshold, resize_mask
from .predictor import Predictor
from .regions import Region as Region
from .regions import (
    _quantised,
    _takes,
    check_region,
    check_role,
    default_device,
    iter_regions,
    load_module,
    mask_levels,
    resolve_localizer,
    soft_mask,
)

if TYPE_CHECKING:
    from .scorer import HarmonyScorer

__all__ = [
    "Harmonized",
    "HarmonizedPhoto",
    "Harmonizer",
    "Region",
    "check_region",
    "check_role",
    "default_device",
    "harmonize",
    "iter_regions",
    "load_mask_array",
    "load_module",
    "mask_levels",
    "resolve_localizer",
    "soft_mask",
]

_PANEL_HEIGHT = 512  # panels of big photos are drawn at this height (a 3-wide panel of a 24 MP photo is huge)

@dataclass
class Harmonized:
    """The result of :class:`Harmonizer`.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB at the photo's own size; where ``mask`` is 0, bit-identical to the input.
        mask: ``(H, W)`` float32 in [0, 1], the soft mask used (given or predicted), at the photo's size.
        original: ``(H, W, 3)`` uint8 RGB, the input photo (upright).
        score_before: The harmony score of the input in the region (with a scorer), else None.
        score_after: The harmony score of the result in the same region (with a scorer), else None.
    """

    image: np.ndarray
    mask: np.ndarray
    original: np.ndarray
    score_before: float | None = None
    score_after: float | None = None

    def mask_uint8(self) -> np.ndarray:
        """The mask as 8-bit grey (255 = 1.0), zero exactly where the mask is 0 (where the photo is untouched)."""
        return mask_levels(self.mask)

    def panel(self, height: int | None = _PANEL_HEIGHT) -> Image.Image:
        """Before | mask | after, side by side, labelled; scaled to ``height`` pixels when taller (None: full size).

        Example:
            >>> photo = np.zeros((20, 30, 3), np.uint8)
            >>> Harmonized(photo, np.zeros((20, 30), np.float32), photo).panel().size
            (90, 20)
        """
        mask_rgb = np.repeat(self.mask_uint8()[..., None], 3, axis=2)
        tiles = [self.original, mask_rgb, self.image]
        h, w = self.image.shape[:2]
        if height is not None and h > height:
            size = (max(1, round(w * height / h)), height)
            tiles = [cv2.resize(t, size, interpolation=cv2.INTER_AREA) for t in tiles]
        panel = Image.fromarray(np.concatenate(tiles, axis=1))
        if panel.height >= 48:
            draw = ImageDraw.Draw(panel)
            tile_w = panel.width // 3
            labels = ["before", "mask", "after"]
            if self.score_before is not None and self.score_after is not None:
                labels[0] += f" (harmony {self.score_before:.2f})"
                labels[2] += f" (harmony {self.score_after:.2f})"
            for i, label in enumerate(labels):
                draw.text((i * tile_w + 5, 4), label, fill=(255, 255, 0))
        return panel


class Harmonizer:
    """Harmonize photos: the mask given or predicted, the region fixed at the photo's size (see the module notes).

    Args:
        harmonizer: ``"pctnet"`` (default: full resolution, published weights), ``"s2am"`` (needs a mask: given,
            or found by the localizer), ``"s2am_maskfree"`` (finds the region itself), or a ready ``nn.Module``
            returning ``{"image"}`` (RGB in [0, 1]).
        weights: Weights of a harmonizer given by name (a hub folder, ``.safetensors``, ``.ckpt``, libcom's
            ``PCTNet.pth``, the authors' ``.pth.tar``; see :func:`inharmony.load`); None: its published weights.
        localizer: The localizer used when no mask is given to a mask-guided harmonizer: a registered name,
            an ``nn.Module``, a :class:`~inharmony.inference.Predictor`, or None (a mask is then required).
            Built on first use.
        localizer_weights: Weights of a localizer given by name.
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA if available).
        threshold: Where a predicted probability turns into the region (the soft mask ramps around it).
        size: Network input size (default: the harmonizer's ``pretrained_cfg.input_size``, 256); for PCTNet
            the side of its low-resolution copy (a multiple of 4).
        scorer: A harmony scorer (``"bargainnet"``, a :class:`~inharmony.inference.scorer.HarmonyScorer`) to
            score each photo before and after (:attr:`Harmonized.score_before`/``score_after``); None: none.
        scorer_weights: Weights of a scorer given by name (None: published).
        batch_size: Photos the localizer reads and runs together.
        precision: The localizer's fast path (``"auto"``: the fastest on the device; ``"fp32"``; ``None``:
            eager); see :func:`~inharmony.inference.optimize`. The harmonizer itself runs in float32.

    Raises:
        ValueError: a localizer or scorer given as the harmonizer (or the reverse), a size that does not fit.

    Example:
        >>> import inharmony
        >>> net = inharmony.create_model("pctnet", depth=1, lowres_size=32)
        >>> photo = np.full((45, 61, 3), 128, np.uint8)
        >>> mask = np.zeros((45, 61), np.float32)
        >>> mask[10:30, 20:40] = 1
        >>> result = Harmonizer(net, size=32, device="cpu")(photo, mask)
        >>> bool(np.array_equal(result.image[mask == 0], photo[mask == 0]))
        True
    """

    def __init__(
        self,
        harmonizer: str | nn.Module = "pctnet",
        weights: str | os.PathLike[str] | None = None,
        localizer: str | nn.Module | Predictor | None = "madisnet",
        localizer_weights: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        threshold: float = 0.5,
        size: int | tuple[int, int] | None = None,
        scorer: str | HarmonyScorer | nn.Module | None = None,
        scorer_weights: str | os.PathLike[str] | None = None,
        batch_size: int = 4,
        precision: str | None = "auto",
    ) -> None:
        check_threshold(threshold)
        self.threshold = float(threshold)
        self.device = default_device(device)
        check_role(harmonizer, "harmonizer")
        check_role(localizer, "localizer")
        if scorer is not None and not hasattr(scorer, "scores"):  # checked before anything loads
            check_role(scorer, "scorer")
        self.model = model = load_module(harmonizer, weights, "harmonizer", self.device)
        cfg = getattr(model, "pretrained_cfg", None)
        if size is None:
            size = tuple(cfg.input_size[1:]) if cfg is not None else (256, 256)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.full_resolution = _takes(model, "image_lr")
        own = getattr(model, "size_multiple", None) or getattr(model, "patch_size", None)  # PCTNet: its patches
        multiple = int(own or getattr(cfg, "size_multiple", 1))
        if any(s <= 0 or s % multiple for s in self.size):
            raise ValueError(f"size must be positive multiples of {multiple} for this harmonizer, got {size}")
        self.preprocessing = EvalPreprocess(
            self.size, mean=getattr(cfg, "mean", (0.0, 0.0, 0.0)), std=getattr(cfg, "std", (1.0, 1.0, 1.0))
        )
        self._std = torch.tensor(getattr(cfg, "std", (1.0, 1.0, 1.0)), dtype=torch.float32).view(3, 1, 1)
        self._mean = torch.tensor(getattr(cfg, "mean", (0.0, 0.0, 0.0)), dtype=torch.float32).view(3, 1, 1)
        self.takes_mask = _takes(model, "mask")
        self.batch_size = batch_size
        self.precision = precision
        self._localizer_spec = (localizer, localizer_weights)
        self._localizer: Predictor | None = localizer if isinstance(localizer, Predictor) else None
        self.scorer = self._build_scorer(scorer, scorer_weights)

    def _build_scorer(self, scorer: Any, weights: Any) -> HarmonyScorer | None:
        from .scorer import HarmonyScorer

        if scorer is None or isinstance(scorer, HarmonyScorer):
            if weights is not None and scorer is not None:
                raise ValueError("scorer_weights= is only used when the scorer is given by name")
            return scorer
        return HarmonyScorer(scorer, weights, localizer=None, device=self.device)

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "pretrained_cfg", None), "name", type(self.model).__name__)
        return f"Harmonizer({name}, size={self.size}, device={self.device})"

    @property
    def localizer(self) -> Predictor:
        """The localizer's :class:`~inharmony.inference.Predictor` (built, with its weights, on first use)."""
        if self._localizer is None:
            spec, weights = self._localizer_spec
            if spec is None:
                raise ValueError("this Harmonizer has no localizer (localizer=None): give the region's mask")
            self._localizer = resolve_localizer(spec, weights, self.device, self.batch_size, self.precision)
        return self._localizer

    @torch.inference_mode()
    def _network(self, photo: np.ndarray, region: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """``(change out − in at network size (h, w, 3) float32, predicted probability (h, w) or None)``."""
        tensor, net_mask = self.preprocessing(photo, region)
        x = tensor.unsqueeze(0).to(self.device)
        out = self.model(x, net_mask.unsqueeze(0).to(self.device)) if self.takes_mask else self.model(x)
        composite = x * self._std.to(x.device) + self._mean.to(x.device)
        harmonized = out["image"].float().clamp(0.0, 1.0)
        change = (harmonized - composite)[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
        prob = out.get("mask")
        return change, None if prob is None else prob[0, 0].float().cpu().numpy()

    @torch.inference_mode()
    def _full_resolution(self, photo: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """PCTNet on libcom's pixels: 8-bit photo and mask resized by OpenCV (bilinear), the transform at full size."""
        height, width = self.size
        image_lr = cv2.resize(photo, (width, height), interpolation=cv2.INTER_LINEAR)
        mask_lr = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
        # The photo goes in as uint8 (HWC strides kept): the transform reads it band by band and writes uint8,
        # so a 12-MP photo never has a full-size float copy (2 × 144 MB saved).
        image = torch.from_numpy(photo).permute(2, 0, 1)[None].to(self.device)
        mask = torch.from_numpy(alpha)[None, None].to(self.device)
        low = torch.from_numpy(image_lr).permute(2, 0, 1)[None].to(self.device, torch.float32).div_(255.0)
        out = self.model(image, mask, low, torch.from_numpy(mask_lr)[None, None].to(self.device))["image"]
        if out.dtype != torch.uint8:  # a full-resolution harmonizer that returns float
            out = out.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
        return np.ascontiguousarray(out[0].permute(1, 2, 0).cpu().numpy())

    def __call__(self, image: ImageInput, mask: ImageInput | np.ndarray | None = None) -> Harmonized:
        """Harmonize one photo (path, PIL image or RGB array); ``mask`` (same size) or None to predict it.

        Raises:
            ImageReadError: the photo (or the mask file) is missing, corrupt or not an image.
            DataError: the mask has another size than the photo, colour, values outside [0, 1]; the region is
                empty; with a scorer, it covers the whole photo.
        """
        (done,) = self.iter_harmonized([image], mask)
        return done.result

    def iter_harmonized(
        self, images: Iterable[ImageInput], mask: ImageInput | np.ndarray | None = None, *, skip_errors: bool = False
    ) -> Iterator[HarmonizedPhoto]:
        """Harmonize photos one after the other: one :class:`HarmonizedPhoto` per photo, in order.

        Without ``mask``, a mask-guided harmonizer's regions come from the localizer's batch loop
        (:meth:`~inharmony.inference.Predictor.iter_masks`), which also decodes the photos.

        Args:
            images: Photos (paths, PIL images or RGB arrays).
            mask: The region of every photo (same size as each), or None to predict each photo's region.
            skip_errors: Yield a photo that cannot be read, whose mask does not fit or whose region is empty
                (``ImageReadError``, ``DataError``) with :attr:`HarmonizedPhoto.error` set, instead of raising.

        Example:
            >>> import inharmony
            >>> net = inharmony.create_model("pctnet", depth=1, lowres_size=32)
            >>> harmonizer = Harmonizer(net, size=32, device="cpu")
            >>> photos = [np.full((45, 61, 3), 128, np.uint8), "missing.jpg"]
            >>> done = harmonizer.iter_harmonized(photos, np.ones((45, 61)), skip_errors=True)
            >>> [type(photo.error).__name__ for photo in done]
            ['NoneType', 'ImageReadError']
        """
        localizer = self.localizer if mask is None and self.takes_mask else None
        for region in iter_regions(images, mask, localizer, self.threshold):
            try:
                if region.error is not None:
                    raise region.error
                yield HarmonizedPhoto(region.source, self._harmonize(region.photo, region.alpha, region.predicted))
            except (ImageReadError, DataError, FileNotFoundError) as err:
                yield _failed(region.source, err, skip_errors)

    def _harmonize(self, photo: np.ndarray, alpha: np.ndarray | None, predicted: bool = False) -> Harmonized:
        """The photo harmonized in the region ``alpha`` (None: the mask-free network's own region), scored."""
        height, width = photo.shape[:2]
        change = None
        if alpha is None:
            change, prob = self._network(photo, None)
            if prob is None:
                raise ValueError("a harmonizer without a mask input must return a predicted 'mask'")
            alpha, predicted = _quantised(soft_mask(resize_mask(prob, height, width), self.threshold)), True
        check_region(alpha, predicted, self.threshold)
        if self.scorer is not None:
            self.scorer.check_mask(alpha)  # before the work: a mask with no background cannot be scored
        if self.full_resolution:
            image = self._full_resolution(photo, alpha)
            np.copyto(image, photo, where=(alpha == 0)[..., None])
        else:
            if change is None:
                change, _ = self._network(photo, (alpha >= 0.5).astype(np.float32))
            image = _apply(photo, alpha, change)
        result = Harmonized(image, alpha, photo)
        if self.scorer is not None:
            result.score_before, result.score_after = self.scorer.scores([(photo, alpha), (image, alpha)])
        return result


@dataclass(eq=False)
class HarmonizedPhoto:
    """One photo's outcome in :meth:`Harmonizer.iter_harmonized`.

    Attributes:
        source: The photo as given.
        result: The :class:`Harmonized` photo; None when it was skipped.
        error: Why it was skipped (an ``ImageReadError`` or ``DataError``), or None.
    """

    source: Any
    result: Harmonized | None = None
    error: Exception | None = None


def _failed(source: Any, error: Exception, skip_errors: bool) -> HarmonizedPhoto:
    """The skipped photo's outcome, or ``error`` raised (a missing file as an ``ImageReadError``)."""
    if isinstance(error, FileNotFoundError):
        error = ImageReadError(str(error))
    if not skip_errors:
        raise error
    return HarmonizedPhoto(source, error=error)


def _apply(photo: np.ndarray, alpha: np.ndarray, change: np.ndarray) -> np.ndarray:
    """``photo + α·up(change)`` inside the region's bounding box, rounded; every α = 0 pixel copied as it is."""
    out = photo.copy()
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    if rows.size == 0:
        return out
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    height, width = photo.shape[:2]
    # the change resized to the photo, evaluated on the box only (half-pixel centres, as cv2.resize)
    h, w = change.shape[:2]
    map_x = ((np.arange(left, right, dtype=np.float32) + 0.5) * (w / width) - 0.5)[None, :].repeat(bottom - top, 0)
    map_y = ((np.arange(top, bottom, dtype=np.float32) + 0.5) * (h / height) - 0.5)[:, None].repeat(right - left, 1)
    delta = cv2.remap(change, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    box = photo[top:bottom, left:right].astype(np.float32)
    a = alpha[top:bottom, left:right, None]
    blended = np.clip(np.rint(box + a * delta * 255.0), 0, 255).astype(np.uint8)
    inside = a[..., 0] > 0
    out[top:bottom, left:right][inside] = blended[inside]
    return out


def harmonize(image: ImageInput, mask: ImageInput | np.ndarray | None = None, **harmonizer_kwargs: Any) -> Harmonized:
    """One-shot :class:`Harmonizer` (models loaded for this call only; keep a Harmonizer for many photos).

    Args:
        image: The photo (path, PIL image or RGB array).
        mask: Its region mask (same size), or None to predict it.
        **harmonizer_kwargs: :class:`Harmonizer` arguments (``harmonizer``, ``weights``, ``localizer``, ...).

    Example:
        >>> result = harmonize("photo.jpg", harmonizer="s2am", weights="s2am_hub")  # doctest: +SKIP
        >>> Image.fromarray(result.image).save("photo_harmonized.png")  # doctest: +SKIP
    """
    return Harmonizer(**harmonizer_kwargs)(image, mask)
