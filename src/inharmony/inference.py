"""Predict inharmonious-region masks for images of any size: :class:`Predictor`.

The network sees every image exactly as ``inharmony test`` does: the one evaluation preprocessing,
:class:`~inharmony.preprocessing.EvalPreprocess`, decodes it (a large JPEG at reduced scale, so a
10,000-pixel photo never becomes a full-size array), resizes it to a fixed size (224×224 for the
published weights, as in the papers' evaluation) and normalises it. The mask the network predicts is
resized back, so the caller gets a mask at the image's own size.

Example:
    >>> import inharmony
    >>> predictor = inharmony.Predictor(inharmony.create_model("dirl_resnet18"), size=64)
    >>> mask = predictor(np.zeros((50, 70, 3), dtype=np.uint8))
    >>> mask.shape, mask.dtype
    ((50, 70), dtype('float32'))
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from .constants import IMAGENET_MEAN, IMAGENET_STD
from .errors import DataError, ImageReadError
from .preprocessing import EvalPreprocess, decode_image

__all__ = [
    "MIN_SIDE",
    "ImageInput",
    "ImageReadError",
    "Predictor",
    "binarize",
    "iter_image_files",
    "load_image",
    "mask_to_image",
    "overlay",
    "resize_mask",
]

ImageInput = str | os.PathLike | Image.Image | np.ndarray
MIN_SIDE = 8  # smaller images hold no region worth localising; refused with a clear message
_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90°
Decoder = Callable[[bytes, str], tuple[np.ndarray, tuple[int, int]]]


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


def _array_to_rgb(array: np.ndarray, what: str) -> np.ndarray:
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
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)  # grey repeated to RGB
    return np.ascontiguousarray(array[..., :3])  # alpha dropped, as for RGBA files


def _read_file(path: str, decode: Decoder) -> tuple[np.ndarray, tuple[int, int]]:
    """A file through ``decode`` (OpenCV, EXIF orientation applied), with Predictor-style errors."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with open(path, "rb") as fh:
            buf = fh.read()
        with Image.open(io.BytesIO(buf)) as header:  # size, orientation and format from the header
            width, height = header.size
            orientation = header.getexif().get(_ORIENTATION_TAG, 1)
            file_format = header.format
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            f"{path} is larger than Pillow's safety limit ({err}). If you trust the file, set "
            "PIL.Image.MAX_IMAGE_PIXELS = None before predicting."
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"cannot read {path} as an image: {type(err).__name__}: {err}") from err
    if orientation in _SWAPS_AXES:
        width, height = height, width
    _check_size(width, height, path)
    try:
        rgb, _ = decode(buf, path)
    except DataError as err:
        rgb = None if file_format == "JPEG" else _decode_with_pillow(buf)
        if rgb is None:
            raise ImageReadError(f"cannot read {path} as an image: {err}") from err
    if (rgb.shape[0] - rgb.shape[1]) * (height - width) < 0:
        # EXIF the decoder did not apply (e.g. in a PNG text chunk): keep the mask on the pixels decoded.
        height, width = width, height
    return rgb, (height, width)


def _decode_with_pillow(buf: bytes) -> np.ndarray | None:
    """Full-size RGB of a file OpenCV cannot decode (32-bit TIFF, ICO, TGA, ...), or None if Pillow cannot either.

    The data loaders cannot read such files at all, so no evaluation tensor differs by this path.
    """
    try:
        with Image.open(io.BytesIO(buf)) as image:
            return np.asarray(_to_rgb(ImageOps.exif_transpose(image)))
    except (OSError, SyntaxError, ValueError):
        return None


def _open(source: ImageInput, decode: Decoder = decode_image) -> tuple[np.ndarray, tuple[int, int]]:
    """``(RGB uint8 array, (height, width) of the upright full-size image)``; files go through ``decode``."""
    what = _name(source)
    if isinstance(source, np.ndarray):
        rgb = _array_to_rgb(source, what)
        return rgb, (rgb.shape[0], rgb.shape[1])
    if isinstance(source, Image.Image):
        image = ImageOps.exif_transpose(source)
        _check_size(image.width, image.height, what)
        return np.asarray(_to_rgb(image)), (image.height, image.width)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"expected a path, a PIL image or an H×W×3 uint8 array, got {type(source).__name__}"
            + ("; for tensors call the model directly" if isinstance(source, torch.Tensor) else "")
        )
    return _read_file(os.fspath(source), decode)


def load_image(source: ImageInput) -> Image.Image:
    """The image as upright 8-bit RGB at full size (EXIF rotation applied, alpha dropped).

    Files are decoded as the Predictor and the data loaders decode them
    (:func:`inharmony.preprocessing.decode_image`), at full size.

    Example:
        >>> load_image(np.zeros((20, 30), dtype=np.uint8)).size
        (30, 20)
    """
    return Image.fromarray(_open(source)[0])


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


def _as_size(size: int | Sequence[int], multiple: int) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height <= 0 or width <= 0 or height % multiple or width % multiple:
        raise ValueError(
            f"size must be positive multiples of {multiple} (the model's pretrained_cfg.size_multiple), got {size}"
        )
    return int(height), int(width)


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Predictor:
    """Masks for images of any size, from any registered model.

    Args:
        model: A model (e.g. from :func:`inharmony.load`), or a registered name loaded with
            ``inharmony.load(model, weights)``.
        size: Network input size, an int or ``(height, width)``, multiples of the model's
            ``pretrained_cfg.size_multiple`` (16 for DIRL and RSRNet). Default: the weights'
            ``pretrained_cfg.input_size`` (224×224 for the published weights).
        device: ``"cpu"``, ``"cuda"``, ... Default: CUDA if available, else CPU.
        batch_size: Images per forward pass when given a list.
        weights: Weights for a model given by name (see :func:`inharmony.load`).

    Inputs: a path, a PIL image, an H×W×3 ``uint8`` RGB array (H×W grey, H×W×4 RGBA, ``uint16``
    or float in [0, 1] also work), or a list of these (or an N×H×W×3 array). EXIF rotation is
    applied, grey images are repeated to RGB, alpha is dropped (not composited), 16-bit images are
    scaled to 8 bits. Images smaller than 8 px on a side are refused. Files are decoded with OpenCV, as
    the data loaders decode them (formats OpenCV cannot read, such as 32-bit TIFF, with Pillow).

    Every input goes through :attr:`preprocessing`, the
    :class:`~inharmony.preprocessing.EvalPreprocess` of the eval loaders (normalised with the model's
    ``pretrained_cfg`` mean and std): for the same file, the network gets the tensor
    ``inharmony test`` gives it, so the mask written by ``inharmony predict`` is the mask ``test`` scores.

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
        # A module without a registry entry has no declared multiple: it checks its own input.
        self.size = _as_size(size, getattr(cfg, "size_multiple", 1))
        self.preprocessing = EvalPreprocess(
            self.size, mean=getattr(cfg, "mean", IMAGENET_MEAN), std=getattr(cfg, "std", IMAGENET_STD)
        )
        self.device = torch.device(device) if device is not None else _default_device()
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "pretrained_cfg", None), "name", type(self.model).__name__)
        return f"Predictor({name}, size={self.size}, device={self.device})"

    def __call__(self, images: ImageInput | Iterable[ImageInput]) -> np.ndarray | list[np.ndarray]:
        return self.predict(images)

    def preprocess(self, image: ImageInput) -> tuple[torch.Tensor, tuple[int, int]]:
        """``(network input, (H, W) of the upright original)``.

        The input is ``float32 (3, h, w)`` at network size, normalised: for a file, the tensor the eval
        loaders (``inharmony test``) build from it, bit for bit.
        """
        rgb, original = _open(image, self.preprocessing.decode)
        tensor, _ = self.preprocessing(rgb)
        return tensor, original

    @torch.inference_mode()
    def forward_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(B, 1, h, w)`` for a batch ``(B, 3, h, w)`` of :meth:`preprocess` outputs."""
        if batch.dtype == torch.uint8:
            warnings.warn(
                "Predictor.forward_batch takes the normalised float tensors of preprocess(); "
                "uint8 batches are deprecated",
                DeprecationWarning,
                stacklevel=2,
            )
            batch = torch.stack([self.preprocessing.normalize(image.permute(1, 2, 0).numpy()) for image in batch.cpu()])
        out = self.model(batch.to(self.device, dtype=torch.float32))
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
                masks.append(resize_mask(prob[0], height, width))
        return masks[0] if single else masks


def resize_mask(prob: torch.Tensor | np.ndarray, height: int, width: int) -> np.ndarray:
    """A probability map ``(h, w)`` resized to ``height × width``: bilinear, half-pixel centres, in [0, 1].

    This is how :class:`Predictor` brings the network's mask back to the image's own size; use it on the
    output of an exported model (``inharmony export``) to do the same.

    Example:
        >>> resize_mask(np.full((4, 4), 0.25, np.float32), 6, 9).shape
        (6, 9)
    """
    if isinstance(prob, np.ndarray):
        prob = torch.from_numpy(np.asarray(prob, dtype=np.float32))
    if prob.device.type == "cpu" and max(height, width) < 32767:
        # OpenCV is ~4x faster than torch's CPU interpolate for the 12-MP upsampling (same formula).
        full = cv2.resize(prob.float().numpy(), (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(full, 0.0, 1.0, out=full).astype(np.float32, copy=False)
    full = F.interpolate(prob.float()[None, None], size=(height, width), mode="bilinear", align_corners=False)
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
