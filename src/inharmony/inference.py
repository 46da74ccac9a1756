"""Predict inharmonious-region masks for images of any size: :class:`Predictor`.

The network sees every image resized to a fixed square (224×224 for the published weights, as in
the papers' evaluation) and the mask it predicts is resized back, so the caller gets a mask at the
image's own size. Large images are shrunk while they are decoded (JPEG's DCT scaling, then
Pillow's box reduction) so a 10,000-pixel photo never becomes a full-size float tensor.

Example:
    >>> import inharmony
    >>> predictor = inharmony.Predictor(inharmony.create_model("dirl_resnet18"), size=64)
    >>> mask = predictor(np.zeros((50, 70, 3), dtype=np.uint8))
    >>> mask.shape, mask.dtype
    ((50, 70), dtype('float32'))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

__all__ = [
    "MIN_SIDE",
    "ImageInput",
    "ImageReadError",
    "Predictor",
    "binarize",
    "load_image",
    "mask_to_image",
    "overlay",
]

ImageInput = str | os.PathLike | Image.Image | np.ndarray
MIN_SIDE = 8  # smaller images hold no region worth localising; refused with a clear message
SIZE_MULTIPLE = 16  # the encoders downsample four times
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90°


class ImageReadError(ValueError):
    """An input is not a readable image, or is not an image the models can take."""


# --------------------------------------------------------------------------- reading images


def _name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, Image.Image):
        return f"PIL image {source.size[0]}×{source.size[1]} ({source.mode})"
    if isinstance(source, np.ndarray):
        return f"array {source.shape} {source.dtype}"
    return type(source).__name__


def _check_size(width: int, height: int, what: str) -> None:
    if width == 0 or height == 0:
        raise ImageReadError(f"{what} has zero size ({width}×{height} px)")
    if min(width, height) < MIN_SIDE:
        raise ImageReadError(
            f"{what} is {width}×{height} px; at least {MIN_SIDE} px on each side are needed to localise a region"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB. Alpha is dropped (not composited): the models never saw it."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        # 16-bit (I;16*) and 32-bit integer or float greyscale: scale to 0-255, as Pillow does not.
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F" and values.size and values.max() <= 1.0:
            values = values * 255.0
        elif image.mode.startswith("I;16") or (values.size and values.max() > 255):
            values = values / 257.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def _array_to_image(array: np.ndarray, what: str) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageReadError(
            f"{what}: expected an H×W×3 RGB (or H×W grey, H×W×4 RGBA) array, got shape {array.shape}"
        )
    _check_size(array.shape[1], array.shape[0], what)
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ImageReadError(f"{what}: a float array must hold values in [0, 1]")
        array = np.rint(array * 255.0).astype(np.uint8)
    else:
        raise ImageReadError(f"{what}: unsupported dtype {array.dtype}; use uint8 (0-255), uint16 or float in [0, 1]")
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]  # alpha dropped, as for RGBA files
    return Image.fromarray(np.ascontiguousarray(array)).convert("RGB")


def _open(source: ImageInput, draft_side: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """``(RGB image, (height, width) of the upright full-size image)``; shrunk on decode if ``draft_side``."""
    what = _name(source)
    if isinstance(source, np.ndarray):
        image = _array_to_image(source, what)
        return image, (image.height, image.width)
    if isinstance(source, Image.Image):
        image = ImageOps.exif_transpose(source)
        _check_size(image.width, image.height, what)
        return _to_rgb(image), (image.height, image.width)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"expected a path, a PIL image or an H×W×3 uint8 array, got {type(source).__name__}"
            + ("; for tensors call the model directly" if isinstance(source, torch.Tensor) else "")
        )
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    try:
        image = Image.open(path)
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
        width, height = image.size
        if orientation in _SWAPS_AXES:
            width, height = height, width
        _check_size(width, height, path)
        if draft_side is not None and image.format == "JPEG":
            image.draft("RGB", (draft_side, draft_side))  # DCT-domain downscale: fast, little memory
        image = _to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            f"{path} is larger than Pillow's safety limit ({err}). If you trust the file, set "
            "PIL.Image.MAX_IMAGE_PIXELS = None before predicting."
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, ImageReadError):
            raise
        raise ImageReadError(f"cannot read {path} as an image: {type(err).__name__}: {err}") from err
    return image, (height, width)


def load_image(source: ImageInput) -> Image.Image:
    """The image as upright 8-bit RGB at full size (EXIF rotation applied, alpha dropped).

    Example:
        >>> load_image(np.zeros((20, 30), dtype=np.uint8)).size
        (30, 20)
    """
    return _open(source, draft_side=None)[0]


# --------------------------------------------------------------------------- helpers on masks


def binarize(mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean mask: ``mask >= threshold`` (0.5 is the papers' threshold for F1 and IoU)."""
    return np.asarray(mask) >= threshold


def mask_to_image(mask: np.ndarray) -> Image.Image:
    """An 8-bit greyscale image of a probability mask (0 → 0, 1 → 255)."""
    return Image.fromarray(np.clip(np.rint(np.asarray(mask) * 255.0), 0, 255).astype(np.uint8), mode="L")


def overlay(
    image: ImageInput,
    mask: np.ndarray,
    color: tuple[int, int, int] = (255, 0, 0),
    alpha: float = 0.6,
) -> Image.Image:
    """The image with the predicted region tinted: each pixel moves towards ``color`` by ``alpha · p``.

    Args:
        image: The image the mask was predicted for (same size as the mask).
        mask: Probability mask, H×W in [0, 1].
        color: Tint colour (RGB).
        alpha: Opacity of the tint where the probability is 1.

    Example:
        >>> overlay(np.zeros((10, 10, 3), np.uint8), np.ones((10, 10), np.float32)).getpixel((0, 0))
        (153, 0, 0)
    """
    rgb = load_image(image)
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != (rgb.height, rgb.width):
        raise ValueError(f"mask shape {mask.shape} does not match the image size {(rgb.height, rgb.width)}")
    weight = (alpha * np.clip(mask, 0.0, 1.0))[..., None]
    pixels = np.asarray(rgb, dtype=np.float32)
    blended = pixels * (1.0 - weight) + np.asarray(color, dtype=np.float32) * weight
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8), mode="RGB")


# --------------------------------------------------------------------------- the predictor


def _as_size(size: int | Sequence[int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height <= 0 or width <= 0 or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(f"size must be positive multiples of {SIZE_MULTIPLE}, got {size}")
    return int(height), int(width)


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Predictor:
    """Masks for images of any size, from any registered model.

    Args:
        model: A model (e.g. from :func:`inharmony.load`), or a registered name loaded with
            ``inharmony.load(model, weights)``.
        size: Network input size, an int or ``(height, width)``, multiples of 16. Default: the
            weights' ``pretrained_cfg.input_size`` (224×224 for the published weights).
        device: ``"cpu"``, ``"cuda"``, ... Default: CUDA if available, else CPU.
        batch_size: Images per forward pass when given a list.
        weights: Weights for a model given by name (see :func:`inharmony.load`).

    Inputs: a path, a PIL image, an H×W×3 ``uint8`` RGB array (H×W grey, H×W×4 RGBA, ``uint16``
    or float in [0, 1] also work), or a list of these (or an N×H×W×3 array). EXIF rotation is
    applied, grey images are repeated to RGB, alpha is dropped (not composited), 16-bit images are
    scaled to 8 bits. Images smaller than 8 px on a side are refused.

    Returns: a float32 H×W probability mask in [0, 1] at the input's own (upright) size, or a list
    of them for a list input. :func:`binarize` and :func:`overlay` turn it into a binary mask or a
    picture. The model is moved to ``device`` and put in eval mode.

    Example:
        >>> predictor = Predictor(inharmony.load("dirl", weights="dirl_hub_folder"))  # doctest: +SKIP
        >>> mask = predictor("photo.jpg")  # doctest: +SKIP
        >>> overlay("photo.jpg", mask).save("photo_overlay.png")  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module | str,
        size: int | Sequence[int] | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 4,
        weights: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(model, str):
            from .hub import load

            model = load(model, weights)
        elif weights is not None:
            raise ValueError("weights= is only used when model is given by name")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        cfg = getattr(model, "pretrained_cfg", None)
        if size is None:
            size = tuple(cfg.input_size[1:]) if cfg is not None else 224
        self.size = _as_size(size)
        self.device = torch.device(device) if device is not None else _default_device()
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        mean = getattr(cfg, "mean", _IMAGENET_MEAN)
        std = getattr(cfg, "std", _IMAGENET_STD)
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1) * 255.0

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "pretrained_cfg", None), "name", type(self.model).__name__)
        return f"Predictor({name}, size={self.size}, device={self.device})"

    def __call__(self, images: ImageInput | Iterable[ImageInput]) -> np.ndarray | list[np.ndarray]:
        return self.predict(images)

    def preprocess(self, image: ImageInput) -> tuple[torch.Tensor, tuple[int, int]]:
        """``(uint8 tensor (3, h, w) at network size, (H, W) of the upright original)``."""
        height, width = self.size
        picture, original = _open(image, draft_side=max(height, width))
        if picture.size != (width, height):
            # reducing_gap: box-reduce by an integer factor first, then a bilinear (antialiased) resize.
            picture = picture.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
        tensor = torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)
        return tensor, original

    @torch.inference_mode()
    def forward_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(B, 1, h, w)`` for a uint8 batch ``(B, 3, h, w)`` at network size."""
        x = (batch.to(self.device, dtype=torch.float32) - self._mean) / self._std
        out = self.model(x)
        mask = out["mask"] if isinstance(out, dict) else out
        return mask.float()

    @torch.inference_mode()
    def predict(self, images: ImageInput | Iterable[ImageInput]) -> np.ndarray | list[np.ndarray]:
        """Probability mask(s) at each input's own size; see the class docstring."""
        single = isinstance(images, (str, os.PathLike, Image.Image)) or (
            isinstance(images, np.ndarray) and images.ndim != 4
        )
        items = [images] if single else list(images)
        masks: list[np.ndarray] = []
        for start in range(0, len(items), self.batch_size):
            prepared = [self.preprocess(item) for item in items[start : start + self.batch_size]]
            probs = self.forward_batch(torch.stack([tensor for tensor, _ in prepared]))
            for prob, (_, (height, width)) in zip(probs, prepared, strict=True):
                masks.append(_resize_mask(prob[0], height, width))
        return masks[0] if single else masks


def _resize_mask(prob: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Bilinear (half-pixel centres) resize of an h×w probability map to height×width, float32 in [0, 1]."""
    if prob.device.type == "cpu" and max(height, width) < 32767:
        import cv2

        # OpenCV is ~4x faster than torch's CPU interpolate for the 12-MP upsampling (same formula).
        full = cv2.resize(prob.numpy(), (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(full, 0.0, 1.0, out=full).astype(np.float32, copy=False)
    full = F.interpolate(prob[None, None], size=(height, width), mode="bilinear", align_corners=False)
    return full[0, 0].clamp_(0.0, 1.0).cpu().numpy().astype(np.float32, copy=False)


def iter_image_files(paths: Iterable[str | os.PathLike[str]], recursive: bool = False) -> list[Path]:
    """Files named in ``paths`` plus the files inside folders in ``paths``, sorted within each folder."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found += sorted(p for p in path.glob(pattern) if p.is_file() and not p.name.startswith("."))
        else:
            found.append(path)
    return found
