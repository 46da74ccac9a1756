"""Find the inharmonious region of a photo (or take its mask) and harmonize it: localization → S2AM.

:class:`Harmonizer` chains a localizer (any :class:`~inharmony.inference.Predictor`, MadisNet by default) and a
harmonizer (``s2am`` with the mask, or ``s2am_maskfree`` which finds the region itself):

1. **The mask.** Given: used as it is (a binary mask stays binary, a soft one blends). Predicted: the
   localizer's (or the mask-free harmonizer's) probability ``p`` at the photo's size becomes the soft mask
   ``α = clip((p − t + w) / 2w, 0, 1)`` with ``w = min(t, 1 − t) / 4`` around the threshold ``t``: confident
   region 1, confident background exactly 0, the uncertain edge a ramp.
2. **The network** runs at its own size (256×256): the photo is resized as the evaluation loaders do
   (:class:`~inharmony.preprocessing.EvalPreprocess`, the model's mean/std) and the mask binarised there
   (``α ≥ 0.5``), as the harmonizer was trained.
3. **Back at the photo's size** only the region changes: the network's *change* ``out − in`` (at 256) is
   resized to the photo (bilinear) and added to the photo's own pixels, so the region keeps its full-size
   detail, then blended with ``α``: ``photo·(1 − α) + (photo + Δ)·α``. Pixels with ``α = 0`` are copied
   from the input, bit for bit; the written mask (8-bit) is zero exactly there.

Example:
    >>> harmonizer = Harmonizer("s2am", weights="s2am_hub", localizer="madisnet")  # doctest: +SKIP
    >>> result = harmonizer("photo.jpg")  # doctest: +SKIP
    >>> result.panel().save("before_after.png")  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from ..errors import DataError, ImageReadError
from ..preprocessing import EvalPreprocess
from . import ImageInput, Predictor, check_threshold, load_image_array

__all__ = ["Harmonized", "Harmonizer", "harmonize", "load_mask_array", "soft_mask"]

_PANEL_HEIGHT = 512  # panels of big photos are drawn at this height (a 3-wide panel of a 24 MP photo is huge)


@dataclass
class Harmonized:
    """The result of :class:`Harmonizer`.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB at the photo's own size; where ``mask`` is 0, bit-identical to the input.
        mask: ``(H, W)`` float32 in [0, 1], the soft mask used (given or predicted), at the photo's size.
        original: ``(H, W, 3)`` uint8 RGB, the input photo (upright).
    """

    image: np.ndarray
    mask: np.ndarray
    original: np.ndarray

    def mask_uint8(self) -> np.ndarray:
        """The mask as 8-bit grey (255 = 1.0), zero exactly where the mask is 0 (where the photo is untouched)."""
        mask = np.clip(self.mask, 0.0, 1.0)
        levels = np.rint(mask * 255.0).astype(np.uint8)
        levels[(levels == 0) & (mask > 0)] = 1
        return levels

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
            for i, label in enumerate(("before", "mask", "after")):
                draw.text((i * tile_w + 5, 4), label, fill=(255, 255, 0))
        return panel


def soft_mask(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """A localizer's probability as the blending mask: 0 well below ``threshold``, 1 well above, a ramp between.

    Example:
        >>> [round(float(v), 2) for v in soft_mask(np.array([0.1, 0.45, 0.5, 0.9], np.float32))]
        [0.0, 0.3, 0.5, 1.0]
    """
    check_threshold(threshold)
    width = min(threshold, 1.0 - threshold) / 4.0
    return np.clip((prob.astype(np.float32) - (threshold - width)) / (2 * width), 0.0, 1.0).astype(np.float32)


def load_mask_array(source: ImageInput, shape: tuple[int, int] | None = None) -> np.ndarray:
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
    from ..data.decode import mask_full_scale, read_mask_array

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


def _takes_mask(model: nn.Module) -> bool:
    try:
        return "mask" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


class Harmonizer:
    """Harmonize photos: the mask given or predicted, the region fixed at the photo's size (see the module notes).

    Args:
        harmonizer: ``"s2am"`` (needs a mask: given, or found by the localizer), ``"s2am_maskfree"`` (finds the
            region itself), or a ready ``nn.Module`` returning ``{"image"}`` (RGB in [0, 1]).
        weights: Weights of a harmonizer given by name (a hub folder, ``.safetensors``, ``.ckpt``, the authors'
            ``.pth.tar``; see :func:`inharmony.load`); None: its published weights.
        localizer: The localizer used when no mask is given to a mask-guided harmonizer: a registered name,
            an ``nn.Module`` or a :class:`~inharmony.inference.Predictor`. Built on first use.
        localizer_weights: Weights of a localizer given by name.
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA if available).
        threshold: Where a predicted probability turns into the region (the soft mask ramps around it).
        size: Network input size (default: the harmonizer's ``pretrained_cfg.input_size``, 256).

    Example:
        >>> import inharmony
        >>> net = inharmony.create_model("s2am", num_downs=5)
        >>> photo = np.full((45, 61, 3), 128, np.uint8)
        >>> mask = np.zeros((45, 61), np.float32)
        >>> mask[10:30, 20:40] = 1
        >>> result = Harmonizer(net, size=64, device="cpu")(photo, mask)
        >>> bool(np.array_equal(result.image[mask == 0], photo[mask == 0]))
        True
    """

    def __init__(
        self,
        harmonizer: str | nn.Module = "s2am",
        weights: str | os.PathLike[str] | None = None,
        localizer: str | nn.Module | Predictor = "madisnet",
        localizer_weights: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        threshold: float = 0.5,
        size: int | tuple[int, int] | None = None,
    ) -> None:
        check_threshold(threshold)
        self.threshold = float(threshold)
        self.device = (
            torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        )
        if isinstance(harmonizer, nn.Module):
            if weights is not None:
                raise ValueError("weights= is only used when the harmonizer is given by name")
            model = harmonizer
        elif isinstance(harmonizer, str):
            from ..hub import load

            model = load(harmonizer, weights)
        else:
            raise TypeError(f"harmonizer must be a registered name or an nn.Module, got {type(harmonizer).__name__}")
        self.model = model.to(self.device).eval()
        cfg = getattr(model, "pretrained_cfg", None)
        if size is None:
            size = tuple(cfg.input_size[1:]) if cfg is not None else (256, 256)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        multiple = int(getattr(model, "size_multiple", None) or getattr(cfg, "size_multiple", 1))
        if any(s <= 0 or s % multiple for s in self.size):
            raise ValueError(f"size must be positive multiples of {multiple} for this harmonizer, got {size}")
        self.preprocessing = EvalPreprocess(
            self.size, mean=getattr(cfg, "mean", (0.0, 0.0, 0.0)), std=getattr(cfg, "std", (1.0, 1.0, 1.0))
        )
        self._std = torch.tensor(getattr(cfg, "std", (1.0, 1.0, 1.0)), dtype=torch.float32).view(3, 1, 1)
        self._mean = torch.tensor(getattr(cfg, "mean", (0.0, 0.0, 0.0)), dtype=torch.float32).view(3, 1, 1)
        self.takes_mask = _takes_mask(model)
        self._localizer_spec = (localizer, localizer_weights)
        self._localizer: Predictor | None = localizer if isinstance(localizer, Predictor) else None

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "pretrained_cfg", None), "name", type(self.model).__name__)
        return f"Harmonizer({name}, size={self.size}, device={self.device})"

    @property
    def localizer(self) -> Predictor:
        """The localizer's :class:`~inharmony.inference.Predictor` (built, with its weights, on first use)."""
        if self._localizer is None:
            spec, weights = self._localizer_spec
            if isinstance(spec, nn.Module):
                self._localizer = Predictor(spec, device=self.device)
            else:
                self._localizer = Predictor(spec, weights=weights, device=self.device)
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

    def __call__(self, image: ImageInput, mask: ImageInput | np.ndarray | None = None) -> Harmonized:
        """Harmonize one photo (path, PIL image or RGB array); ``mask`` (same size) or None to predict it.

        Raises:
            ImageReadError: the photo (or the mask file) is missing, corrupt or not an image.
            DataError: the mask has another size than the photo, colour, or values outside [0, 1].
        """
        try:
            photo = load_image_array(image)
        except FileNotFoundError as err:
            raise ImageReadError(str(err)) from err
        if not photo.flags.writeable:
            photo = photo.copy()
        height, width = photo.shape[:2]
        if mask is not None:
            alpha = load_mask_array(mask, (height, width))
        elif self.takes_mask:
            alpha = soft_mask(self.localizer(photo), self.threshold)
        else:
            alpha = None
        region = None if alpha is None else (alpha >= 0.5).astype(np.float32)
        change, prob = self._network(photo, region)
        if alpha is None:
            if prob is None:
                raise ValueError("a harmonizer without a mask input must return a predicted 'mask'")
            from . import resize_mask

            alpha = soft_mask(resize_mask(prob, height, width), self.threshold)
        # quantised like the written mask: a pixel the mask PNG shows as 0 is never touched
        alpha = Harmonized(photo, alpha, photo).mask_uint8().astype(np.float32) / 255.0
        return Harmonized(_apply(photo, alpha, change), alpha, photo)


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
