"""How well a region fits the rest of its photo: :class:`HarmonyScorer` (BargainNet, libcom's harmony score).

The score is libcom's ``HarmonyScoreModel``: BargainNet's domain code extractor encodes the background and
the foreground of the composite, and ``exp(−0.04212 · ‖s_bg − s_fg‖₂)`` in (0, 1] says how alike their
illumination is (higher is more harmonious). The network gets libcom's pixels, so the score equals libcom's:
the 8-bit RGB photo is resized with PIL's bilinear ``resize`` to 256×256 and normalised with mean = std = 0.5;
the foreground mask (float, ``mask/255``) and the background mask (``1 − mask``, resized on its own, as libcom
does) are resized the same way as float images.

A mask with no region (every pixel 0) or with no background (every pixel 1) is refused: there is nothing to
compare, so there is no score. Photos are read by :mod:`inharmony.imageio` (grey repeated to RGB, alpha
dropped, 16-bit scaled to 8 bits, EXIF rotation applied); masks by :func:`~inharmony.imageio.load_mask_array`.

Example:
    >>> scorer = HarmonyScorer("bargainnet", localizer="madisnet")  # doctest: +SKIP
    >>> round(scorer("photo.jpg", "photo_mask.png"), 2)  # doctest: +SKIP
    0.41
    >>> scorer("photo.jpg")  # the region found by MadisNet first  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import DataError, ImageReadError
from ..imageio import ImageInput
from .masks import check_threshold
from .predictor import Predictor
from .regions import check_region, check_role, default_device, iter_regions, load_module, resolve_localizer

__all__ = ["HarmonyScorer", "ScoredPhoto"]


@dataclass(eq=False)
class ScoredPhoto:
    """One photo's outcome in :meth:`HarmonyScorer.iter_scores`.

    Attributes:
        source: The photo as given.
        score: Its harmony score in (0, 1]; None when it was skipped.
        mask: The ``(H, W)`` float32 region scored (given or predicted); None when skipped.
        predicted: Whether the localizer found the region.
        error: Why it was skipped (an ``ImageReadError`` or ``DataError``), or None.
    """

    source: Any
    score: float | None = None
    mask: np.ndarray | None = None
    predicted: bool = False
    error: Exception | None = None


class HarmonyScorer:
    """Harmony scores of photos: how well the region's colour and lighting fit the rest, libcom's way.

    Args:
        scorer: ``"bargainnet"`` (the published weights) or a ready module (a
            :class:`~inharmony.models.bargainnet.BargainNet`, or any module whose ``forward(image, mask)``
            returns ``{"score"}``).
        weights: Weights of a scorer given by name (libcom's ``BargainNet.pth``, a hub folder ...; see
            :func:`inharmony.load`); None: the published ones.
        localizer: Finds the region when no mask is given: a registered name, a module, a
            :class:`~inharmony.inference.Predictor`, or None (a mask is then required). Built on first use.
        localizer_weights: Weights of a localizer given by name.
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA if available).
        threshold: Where a predicted probability turns into the region (see
            :func:`~inharmony.inference.harmonizer.soft_mask`).
        size: Side(s) of the network input (default: the scorer's ``pretrained_cfg.input_size``, 256).
        batch_size: Photos the localizer runs together.
        precision: The localizer's fast path (``"auto"``: the fastest on the device; ``"fp32"``; ``None``:
            eager); see :func:`~inharmony.inference.optimize`.

    Raises:
        ValueError: a harmonizer or localizer given as the scorer (or a scorer as the localizer).

    Example:
        >>> from inharmony.models.bargainnet import BargainNet
        >>> scorer = HarmonyScorer(BargainNet().eval(), size=64, device="cpu", localizer=None)
        >>> photo = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
        >>> mask = np.zeros((70, 90), np.float32)
        >>> mask[20:50, 30:60] = 1
        >>> 0 < scorer(photo, mask) <= 1
        True
    """

    def __init__(
        self,
        scorer: str | nn.Module = "bargainnet",
        weights: str | os.PathLike[str] | None = None,
        *,
        localizer: str | nn.Module | Predictor | None = "madisnet",
        localizer_weights: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        threshold: float = 0.5,
        size: int | tuple[int, int] | None = None,
        batch_size: int = 4,
        precision: str | None = "auto",
    ) -> None:
        check_threshold(threshold)
        check_role(scorer, "scorer")
        if localizer is not None:
            check_role(localizer, "localizer")
        self.device = default_device(device)
        self.model = model = load_module(scorer, weights, "scorer", self.device)
        cfg = getattr(model, "pretrained_cfg", None)
        if size is None:
            size = tuple(cfg.input_size[1:]) if cfg is not None else (256, 256)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if any(s < 1 for s in self.size):
            raise ValueError(f"size must be positive, got {size}")
        self._mean = torch.tensor(getattr(cfg, "mean", (0.5, 0.5, 0.5)), dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(getattr(cfg, "std", (0.5, 0.5, 0.5)), dtype=torch.float32).view(3, 1, 1)
        self.threshold = float(threshold)
        self.batch_size = batch_size
        self.precision = precision
        self._localizer_spec = (localizer, localizer_weights)
        self._localizer: Predictor | None = localizer if isinstance(localizer, Predictor) else None

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "pretrained_cfg", None), "name", type(self.model).__name__)
        return f"HarmonyScorer({name}, size={self.size}, device={self.device})"

    @property
    def localizer(self) -> Predictor:
        """The localizer's :class:`~inharmony.inference.Predictor` (built on first use).

        Raises:
            ValueError: the scorer was built with ``localizer=None``.
        """
        if self._localizer is None:
            spec, weights = self._localizer_spec
            if spec is None:
                raise ValueError("this HarmonyScorer has no localizer (localizer=None): give the region's mask")
            self._localizer = resolve_localizer(spec, weights, self.device, self.batch_size, self.precision)
        return self._localizer

    @staticmethod
    def check_mask(mask: np.ndarray, predicted: bool = False) -> None:
        """Refuse a mask that leaves nothing to compare: no region, or no background.

        Raises:
            DataError: every pixel is 0 (no region) or 1 (no background).

        Example:
            >>> HarmonyScorer.check_mask(np.ones((4, 4), np.float32))
            Traceback (most recent call last):
            ...
            inharmony.errors.DataError: the mask covers the whole photo: ...
        """
        check_region(mask, predicted)
        if bool((mask >= 1.0).all()):
            raise DataError(
                "the mask covers the whole photo: there is no background to compare the region with, so there is "
                "no harmony score (the mask must leave some of the photo at 0)"
            )

    def _inputs(self, photo: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """libcom's tensors: photo, background and foreground masks, each PIL-resized (bilinear) to the size."""
        size = (self.size[1], self.size[0])  # PIL: (width, height)
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(photo)).resize(size, Image.BILINEAR))
        image = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255.0)
        image = (image - self._mean) / self._std
        fg = mask.astype(np.float32)

        def resized(values: np.ndarray) -> torch.Tensor:
            out = np.asarray(Image.fromarray(values, mode="F").resize(size, Image.BILINEAR), dtype=np.float32)
            return torch.from_numpy(out.copy())[None]

        return image, resized(1.0 - fg), resized(fg)

    @torch.inference_mode()
    def scores(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[float]:
        """The harmony scores of ``(photo, mask)`` pairs, in one network pass.

        Args:
            pairs: ``(H, W, 3)`` uint8 RGB photos (any sizes) with their ``(H, W)`` float masks in [0, 1].

        Raises:
            DataError: a mask is empty or covers its whole photo, or does not have its photo's size.
        """
        images, backgrounds, foregrounds = [], [], []
        for photo, mask in pairs:
            if mask.shape != photo.shape[:2]:
                raise DataError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the photo is "
                                f"{photo.shape[1]}x{photo.shape[0]}")  # fmt: skip
            self.check_mask(mask)
            image, bg, fg = self._inputs(photo, mask)
            images.append(image)
            backgrounds.append(bg)
            foregrounds.append(fg)
        if not images:
            return []
        x = torch.stack(images).to(self.device)
        bg, fg = torch.stack(backgrounds).to(self.device), torch.stack(foregrounds).to(self.device)
        style = getattr(self.model, "style", None)
        if style is None:  # a module of its own: its forward scores (its background is 1 − mask)
            return [float(s) for s in self.model(x, fg)["score"].float().cpu()]
        from ..models.bargainnet import DISTANCE_SCALE

        codes = style(torch.cat([x, x]), torch.cat([bg, fg])).float().cpu().numpy()
        count = len(images)
        # libcom: the distance in float32 numpy, the exponential in Python floats
        distances = np.sqrt(np.sum((codes[:count] - codes[count:]) ** 2, axis=1))
        return [math.exp(-DISTANCE_SCALE * float(d)) for d in distances]

    def score(self, photo: np.ndarray, mask: np.ndarray) -> float:
        """The harmony score of one ``(H, W, 3)`` uint8 RGB photo with its ``(H, W)`` float mask in [0, 1]."""
        return self.scores([(photo, mask)])[0]

    def __call__(self, image: ImageInput, mask: ImageInput | np.ndarray | None = None) -> float:
        """The harmony score of a photo (path, PIL image or array) in the region ``mask``, or the region found.

        Raises:
            ImageReadError: the photo (or the mask file) is missing or not an image.
            DataError: the mask does not fit the photo, is empty or covers it whole; no region was found.
        """
        (done,) = self.iter_scores([image], mask)
        return done.score  # type: ignore[return-value]

    def iter_scores(
        self, images: Iterable[ImageInput], mask: ImageInput | np.ndarray | None = None, *, skip_errors: bool = False
    ) -> Iterator[ScoredPhoto]:
        """Score photos one after the other, the region given (``mask``, the same for each) or found.

        Args:
            images: Photos (paths, PIL images or arrays).
            mask: The region of every photo, or None to find each photo's region with the localizer.
            skip_errors: Yield a photo that cannot be read or scored with :attr:`ScoredPhoto.error` set,
                instead of raising.

        Example:
            >>> from inharmony.models.bargainnet import BargainNet
            >>> scorer = HarmonyScorer(BargainNet().eval(), size=64, device="cpu", localizer=None)
            >>> done = scorer.iter_scores([np.zeros((70, 90, 3), np.uint8)], np.zeros((70, 90)), skip_errors=True)
            >>> [type(photo.error).__name__ for photo in done]
            ['DataError']
        """
        localizer = self.localizer if mask is None else None
        for region in iter_regions(images, mask, localizer, self.threshold):
            try:
                if region.error is not None:
                    raise region.error
                if region.alpha is None:
                    raise ValueError("no mask and no localizer: give the region's mask")
                check_region(region.alpha, region.predicted, self.threshold)
                value = self.score(region.photo, region.alpha)
                yield ScoredPhoto(region.source, value, region.alpha, region.predicted)
            except (ImageReadError, DataError, FileNotFoundError) as err:
                if isinstance(err, FileNotFoundError):
                    err = ImageReadError(str(err))
                if not skip_errors:
                    raise err from None
                yield ScoredPhoto(region.source, error=err)
