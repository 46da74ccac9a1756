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

import contextlib
import copy
import io
import itertools
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import DataError, ImageReadError
from ..preprocessing import EvalPreprocess, decode_image
from .tta import FLIP_CHOICES, FlipAverage

__all__ = [
    "MIN_SIDE",
    "PRECISIONS",
    "ImageInput",
    "ImageReadError",
    "OptimizedModel",
    "Predictor",
    "auto_micro_batch",
    "auto_precision",
    "bf16_is_fast",
    "binarize",
    "check_threshold",
    "iter_image_files",
    "load_image",
    "load_image_array",
    "mask_to_image",
    "optimize",
    "overlay",
    "resize_mask",
    "resize_mask_bands",
    "resize_mask_uint8",
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
        raise ImageReadError(f"{what}: expected an H×W×3 RGB (or H×W grey, H×W×4 RGBA) array, got shape {array.shape}")
    _check_size(array.shape[1], array.shape[0], what)
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        _check_finite(array, what)
        if array.min() < 0.0 or array.max() > 1.0:
            raise ImageReadError(
                f"{what}: a float array must hold values in [0, 1], got [{array.min():g}, {array.max():g}]; "
                "divide 0-255 values by 255, or pass a uint8 array"
            )
        array = np.rint(array * 255.0).astype(np.uint8)
    else:
        raise ImageReadError(f"{what}: unsupported dtype {array.dtype}; use uint8 (0-255), uint16 or float in [0, 1]")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)  # grey repeated to RGB
    return np.ascontiguousarray(array[..., :3])  # alpha dropped, as for RGBA files


def _check_finite(values: np.ndarray | torch.Tensor, what: str) -> None:
    """Refuse NaN/inf values with their count and the first one's position (one would make the whole mask NaN)."""
    bad = ~(torch.isfinite(values) if isinstance(values, torch.Tensor) else np.isfinite(values))
    if not bool(bad.any()):
        return
    first = tuple(int(i) for i in (bad.nonzero()[0] if isinstance(bad, torch.Tensor) else np.argwhere(bad)[0]))
    count = int(bad.sum())
    raise ImageReadError(
        f"{what} holds {count} NaN/inf value(s), the first at index {first}; one such value makes the "
        "network's whole mask NaN. Replace them (e.g. np.nan_to_num / torch.nan_to_num) or fix their source."
    )


def _read_file(path: str, decode: Decoder) -> tuple[np.ndarray, tuple[int, int]]:
    """A file through ``decode`` (OpenCV, EXIF orientation applied), with Predictor-style errors."""
    if os.path.isdir(path):
        raise ImageReadError(
            f"{path} is a folder; the Predictor takes image files, PIL images or arrays. For every image in "
            f"it: predictor(inharmony.inference.iter_image_files([{path!r}])), or `inharmony predict {path}`"
        )
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


def load_image_array(source: ImageInput) -> np.ndarray:
    """The image as an upright RGB ``uint8`` array (H, W, 3) at full size: :func:`load_image` without the PIL copy.

    Example:
        >>> load_image_array(np.zeros((20, 30), dtype=np.uint8)).shape
        (20, 30, 3)
    """
    return _open(source)[0]


# --------------------------------------------------------------------------- helpers on masks


def check_threshold(threshold: float, option: str = "threshold") -> float:
    """``threshold`` if it is strictly between 0 and 1, else a ``ValueError`` saying why.

    A threshold ≤ 0 marks every pixel and one ≥ 1 (almost) none: an all-white or all-black mask.

    Example:
        >>> check_threshold(0.5)
        0.5
    """
    value = float(threshold)
    if not 0.0 < value < 1.0:  # also refuses NaN
        raise ValueError(
            f"{option} must be strictly between 0 and 1 (masks are probabilities), got {threshold}: "
            f"{'every' if value <= 0 else 'no'} pixel would be marked, an all-{'white' if value <= 0 else 'black'} "
            "mask; the papers use 0.5"
        )
    return value


def binarize(mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean mask: ``mask >= threshold`` (0.5 is the papers' threshold for F1 and IoU).

    Raises:
        ValueError: ``threshold`` is not strictly between 0 and 1.
    """
    return np.asarray(mask) >= check_threshold(threshold)


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
        mask: Probability mask, H×W in [0, 1] (float), or 8-bit (uint8, 255 = 1).
        color: Tint colour (RGB).
        alpha: Opacity of the tint where the probability is 1.

    Example:
        >>> overlay(np.zeros((10, 10, 3), np.uint8), np.ones((10, 10), np.float32)).getpixel((0, 0))
        (153, 0, 0)
    """
    pixels = np.array(_open(image)[0])  # a writable copy: tinted in place, row band by row band
    mask = np.asarray(mask)
    if mask.shape != pixels.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the image size {pixels.shape[:2]}")
    scale = 1.0 / 255.0 if mask.dtype == np.uint8 else 1.0
    for start in range(0, mask.shape[0], _BAND_ROWS):
        band = mask[start : start + _BAND_ROWS].astype(np.float32) * scale
        _tint(pixels[start : start + _BAND_ROWS], band, color, alpha)
    return Image.fromarray(pixels, mode="RGB")


def _tint(pixels: np.ndarray, prob: np.ndarray, color: Sequence[int], alpha: float) -> None:
    """Move ``pixels`` (rows × W × 3 uint8, changed in place) towards ``color`` by ``alpha · prob``."""
    weight = (alpha * np.clip(prob, 0.0, 1.0))[..., None]
    blended = pixels.astype(np.float32) * (1.0 - weight) + np.asarray(color, dtype=np.float32) * weight
    np.clip(np.rint(blended), 0, 255, out=blended)
    pixels[...] = blended.astype(np.uint8)


_BAND_ROWS = 256  # rows of a full-size mask or overlay computed at once (float32 work stays ~W·256·16 bytes)


# --------------------------------------------------------------------------- the fast inference path

PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # the CPU features with native bf16 dot products
# Micro-batching on CPU: at most this many input pixels per forward pass. A big pass spills the last-level
# cache (the full-resolution layer1 is 64 channels at input size, 12.8 MB per 224² map in fp32). Measured
# with `inharmony bench batch --models dirl --models rsrnet --batches 1,2,4,8 --repeats 2` (2-core AVX512-BF16
# CPU, 32 MiB L3, 2026-11-24, idle, load 1.8-2.0), per-image speed vs batch 1 (> 1: cheaper per image):
#   one pass of        2            4            8
#   DIRL fp32 / bf16   0.98 / 1.04  0.94 / 1.03  0.87 / 0.93
#   RSRNet fp32 / bf16 1.07 / 1.21  1.03 / 1.29  1.04 / 1.23
# Passes of 2 are the only size at or within 2 % of batch 1 for all four, so passes of at most two 224² images.
_CPU_CHUNK_PIXELS = 2 * 224 * 224


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_is_fast(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` runs bf16 convolutions natively (so :func:`optimize`'s ``"bf16"`` pays).

    CUDA: the GPU supports bf16 (``torch.cuda.is_bf16_supported()``: Ampere and newer). CPU: the CPU has
    ``avx512_bf16`` or ``amx_bf16`` (read from ``/proc/cpuinfo``; elsewhere oneDNN is asked through
    ``torch.ops.mkldnn._is_mkldnn_bf16_supported``, which on older x86 also answers True for emulated bf16,
    so a non-Linux CPU counts only when oneDNN reports AMX, via ``torch.backends.cpu.get_cpu_capability``).
    Without them bf16 is emulated and slower than fp32.

    Example:
        >>> isinstance(bf16_is_fast("cpu"), bool)
        True
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    flags = _cpu_flags()
    if flags:
        return any(flag in flags for flag in _BF16_CPU_FLAGS)
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "")()
    return "AMX" in str(capability).upper()


def auto_precision(device: str | torch.device = "cpu") -> str:
    """The precision ``precision="auto"`` picks on ``device``: ``"bf16"`` where it is native, else ``"fp32"``.

    ``"bf16"`` on CUDA GPUs with bf16 (Ampere and newer) and on CPUs with AVX512-BF16 or AMX (Intel Cooper
    Lake, Sapphire Rapids and newer; AMD Zen 4 and newer); ``"fp32"`` everywhere else (older CPUs, Apple
    silicon, GPUs before Ampere), where bf16 would be emulated and slower. See :func:`bf16_is_fast`.

    Example:
        >>> auto_precision("cpu") in ("fp32", "bf16")
        True
    """
    return "bf16" if bf16_is_fast(device) else "fp32"


def auto_micro_batch(device: str | torch.device, height: int, width: int) -> int | None:
    """The chunk size ``micro_batch="auto"`` uses for inputs of ``height × width``; None means one pass.

    On CPU, as many images per pass as fit in two ``224 × 224`` images' pixels (at least 1): the
    activations of the full-resolution stage of a bigger pass spill the last-level cache, and a batch then
    costs more per image than the same images in smaller passes. On GPUs, one pass (bigger batches fill the GPU).

    Example:
        >>> auto_micro_batch("cpu", 224, 224), auto_micro_batch("cpu", 64, 64)
        (2, 24)
    """
    if torch.device(device).type != "cpu":
        return None
    return max(1, _CPU_CHUNK_PIXELS // max(1, height * width))


_BN_NAMES = ("bn", "norm")  # attribute pairs folded: conv/bn, conv1/bn1, stem_conv/stem_bn, conv/norm ...


def _conv_bn_candidates(model: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """``(parent, conv name, BatchNorm name)`` pairs that look like "BatchNorm applied to this conv's output".

    Two shapes: adjacent ``Conv2d, BatchNorm2d`` children of an ``nn.Sequential`` (RSRNet's ConvBNReLU), and
    sibling attributes whose names differ only by ``conv`` → ``bn``/``norm`` (DIRL's blocks, timm ResNet
    blocks, the encoder's stem). A name match is only a guess; :func:`_traced_pairs` checks each pair on a run.
    """
    pairs = []
    for parent in model.modules():
        children = dict(parent.named_children())
        if isinstance(parent, nn.Sequential):
            names = list(children)
            for first, second in itertools.pairwise(names):
                if type(children[first]) is nn.Conv2d and type(children[second]) is nn.BatchNorm2d:
                    pairs.append((parent, first, second))
            continue
        for name, child in children.items():
            if type(child) is not nn.Conv2d or "conv" not in name:
                continue
            for bn_name in (name.replace("conv", norm) for norm in _BN_NAMES):
                if type(children.get(bn_name)) is nn.BatchNorm2d:
                    pairs.append((parent, name, bn_name))
                    break
    return pairs


def _flat_tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for key in sorted(out) for t in _flat_tensors(out[key])]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _flat_tensors(item)]
    return []


def _run_once_with_hooks(model: nn.Module, example: torch.Tensor, handles: list[Any]) -> None:
    """Run ``model`` on ``example`` once (no autograd) for its hooks to record, then remove the hooks."""
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for handle in handles:
            handle.remove()


def _traced_pairs(model: nn.Module, pairs: list[tuple[nn.Module, str, str]], example: torch.Tensor) -> list[int]:
    """Indices of the ``pairs`` whose BatchNorm, on a run of ``example``, took exactly its conv's output.

    Each conv and BatchNorm must run once, the BatchNorm's input must be the very tensor the conv returned
    (not e.g. ``conv(x) - θ·conv1x1(x)``, as in iHDRNet's central-difference convolution), and the conv's
    weight must not be read outside its own call (tested by the whole-model check in :func:`_fold_batchnorm`).
    """
    calls: dict[int, int] = {}
    outputs: dict[int, int] = {}
    inputs: dict[int, int] = {}
    handles = []

    def conv_hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1
        outputs[id(module)] = id(out)

    def bn_hook(module: nn.Module, args: Any) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1
        inputs[id(module)] = id(args[0])

    kept_alive: list[torch.Tensor] = []  # ids stay unique only while the tensors live

    def keep(module: nn.Module, args: Any, out: torch.Tensor) -> None:
        kept_alive.append(out)

    for parent, conv_name, bn_name in pairs:
        conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
        handles += [conv.register_forward_hook(conv_hook), conv.register_forward_hook(keep)]
        handles.append(bn.register_forward_pre_hook(bn_hook))
    _run_once_with_hooks(model, example, handles)
    good = []
    for index, (parent, conv_name, bn_name) in enumerate(pairs):
        conv, bn = id(getattr(parent, conv_name)), id(getattr(parent, bn_name))
        if calls.get(conv) == 1 and calls.get(bn) == 1 and outputs.get(conv) == inputs.get(bn):
            good.append(index)
    return good


def _fold(model: nn.Module, pairs: list[tuple[nn.Module, str, str]]) -> None:
    # torch's own folding (fuse_conv_bn_eval); the graph matching is ours because torch.fx cannot trace
    # these models (input checks and dict outputs), and torch.export would change the call contract.
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for parent, conv_name, bn_name in pairs:
        fused = fuse_conv_bn_eval(getattr(parent, conv_name), getattr(parent, bn_name))
        setattr(parent, conv_name, fused)
        setattr(parent, bn_name, nn.Identity())


def _fold_batchnorm(model: nn.Module, example: torch.Tensor) -> int:
    """Fold every safe conv → BatchNorm pair of ``model`` (eval mode, changed in place); the number folded.

    The pairs are checked on a copy whose BatchNorm statistics are randomised (so that folding changes the
    numbers): if the folded copy's outputs differ from its eager outputs, nothing is folded and a warning
    says so (a conv whose output or weight is also used elsewhere would show up there).
    """
    candidates = _conv_bn_candidates(model)
    chosen = [candidates[i] for i in _traced_pairs(model, candidates, example)]
    if not chosen:
        return 0
    probe = _copy_module(model)
    generator = torch.Generator().manual_seed(0)
    for module in probe.modules():
        if isinstance(module, nn.BatchNorm2d) and module.running_var is not None:
            # Perturbed around the module's own statistics, not replaced: fresh BatchNorms (identity statistics)
            # get random ones, and trained networks stay in range (random statistics on trained weights
            # overflowed a trained DIRL to inf/NaN, which failed the check for no fault of the folding).
            size = module.running_var.shape
            with torch.no_grad():
                spread = module.running_var.float().clamp_min(1e-6).sqrt()
                module.running_mean.add_(torch.randn(size, generator=generator) * 0.5 * spread)
                module.running_var.mul_(torch.rand(size, generator=generator) + 0.5)
                if module.affine:
                    module.weight.mul_(torch.rand(size, generator=generator) + 0.5)
                    module.bias.add_(torch.randn(size, generator=generator) * 0.5 * module.weight.abs())
    with torch.inference_mode():
        expected = _flat_tensors(probe(example))
    names = {id(module): name for name, module in model.named_modules()}
    probe_modules = dict(probe.named_modules())
    _fold(probe, [(probe_modules[names[id(parent)]], c, b) for parent, c, b in chosen])
    with torch.inference_mode():
        got = _flat_tensors(probe(example))
    same = len(got) == len(expected) and all(
        torch.allclose(g.float(), e.float(), rtol=1e-3, atol=1e-4, equal_nan=True)
        for g, e in zip(got, expected, strict=True)
    )
    if not same:
        warnings.warn(
            f"{type(model).__name__}: folding BatchNorm into the convolutions changed the outputs on a check run; "
            "left unfolded (the optimized model is still exact)",
            stacklevel=3,
        )
        return 0
    _fold(model, chosen)
    return len(chosen)


class _FullPrecisionConv2d(nn.Conv2d):
    """A Conv2d that runs in float32 under autocast (the class of the last convolution of a bf16/fp16 network)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float())


def _logits_in_full_precision(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Run the mask-logit convolutions in float32 under autocast; their names.

    Those are the convolutions with one output channel (mask, attention and gate logits: a small share of
    the work) and the convolution that runs last. bf16 keeps 8 significant bits: a mask computed in bf16
    takes only ~256 distinct values between 0.5 and 1, and the ties cost average precision (a ranking
    metric), while logits in fp32 cost nothing measurable.
    """
    order: list[str] = []
    names = {id(module): name for name, module in model.named_modules()}
    handles = [
        module.register_forward_hook(lambda m, args, out: order.append(names[id(m)]))
        for module in model.modules()
        if type(module) is nn.Conv2d
    ]
    _run_once_with_hooks(model, example, handles)
    chosen = [name for name in dict.fromkeys(order) if model.get_submodule(name).out_channels == 1]
    if order and order[-1] not in chosen:
        chosen.append(order[-1])
    for name in chosen:
        model.get_submodule(name).__class__ = _FullPrecisionConv2d
    return chosen


def _copy_module(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def _example_input(model: nn.Module, device: torch.device) -> torch.Tensor:
    cfg = getattr(model, "pretrained_cfg", None)
    multiple = int(getattr(cfg, "size_multiple", 1) or 1)
    side = max(32, multiple * 2)  # small: the check runs the network three times
    side += -side % multiple
    return torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)


def _to_float32(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float().contiguous() if out.is_floating_point() else out
    if isinstance(out, dict):
        return type(out)((key, _to_float32(value)) for key, value in out.items())
    if isinstance(out, (list, tuple)):
        return type(out)(_to_float32(item) for item in out)
    return out


def _concat_outputs(parts: list[Any], sizes: list[int]) -> Any:
    """The outputs of consecutive chunks of a batch joined along the batch dimension, structure kept."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        if any(part.dim() == 0 or part.shape[0] != size for part, size in zip(parts, sizes, strict=True)):
            raise RuntimeError(
                "micro-batching needs every output to have the batch as its first dimension; "
                "use optimize(..., micro_batch=None) for this model"
            )
        return torch.cat(parts)
    if isinstance(first, dict):
        return type(first)((key, _concat_outputs([part[key] for part in parts], sizes)) for key in first)
    if isinstance(first, (list, tuple)):
        return type(first)(_concat_outputs([part[i] for part in parts], sizes) for i in range(len(first)))
    return first


def _check_micro_batch(micro_batch: int | str | None) -> int | str | None:
    if micro_batch is None or micro_batch == "auto":
        return micro_batch
    if isinstance(micro_batch, bool) or not isinstance(micro_batch, int) or micro_batch < 1:
        raise ValueError(f"micro_batch must be a positive int, 'auto' or None, got {micro_batch!r}")
    return micro_batch


class OptimizedModel(nn.Module):
    """The module :func:`optimize` returns: the folded network (:attr:`model`) run the fast way.

    Called like the original (a float ``(B, 3, H, W)`` batch in, the same outputs out, as contiguous
    float32 tensors), always under ``torch.inference_mode`` (its outputs cannot be back-propagated).
    A batch bigger than :attr:`micro_batch` runs as consecutive chunks whose outputs are concatenated:
    every image gets exactly what a pass of its chunk alone gives (eval-mode networks treat the images of
    a batch independently), and on CPU a big batch stops costing more per image than a small one.
    """

    def __init__(
        self,
        model: nn.Module,
        precision: str,
        channels_last: bool,
        compiled: nn.Module | None = None,
        micro_batch: int | str | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.precision = precision
        self.channels_last = channels_last
        self.micro_batch = _check_micro_batch(micro_batch)
        self._compiled = [compiled] if compiled is not None else []  # a list: not a second registered child
        self._compile_checked = False
        if getattr(model, "pretrained_cfg", None) is not None:
            self.pretrained_cfg = model.pretrained_cfg

    def extra_repr(self) -> str:
        return (
            f"precision={self.precision!r}, channels_last={self.channels_last}, compiled={bool(self._compiled)}, "
            f"micro_batch={self.micro_batch!r}"
        )

    def chunk_size(self, x: torch.Tensor) -> int:
        """Images per pass for the batch ``x``: :attr:`micro_batch` (``"auto"``: :func:`auto_micro_batch`)."""
        size = self.micro_batch
        if size == "auto":
            size = auto_micro_batch(x.device, x.shape[-2], x.shape[-1]) if x.dim() == 4 else None
        return x.shape[0] if size is None or x.dim() == 0 else max(1, min(int(size), x.shape[0]))

    def train(self, mode: bool = True) -> OptimizedModel:
        if mode:
            raise RuntimeError("an optimized model is for inference only (BatchNorm is folded); train the original")
        return super().train(False)

    def forward(self, x: torch.Tensor) -> Any:
        with torch.inference_mode():
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            dtype = _AUTOCAST_DTYPES.get(self.precision)
            autocast = (
                torch.autocast(device_type=x.device.type, dtype=dtype)
                if dtype is not None
                else contextlib.nullcontext()
            )
            chunk = self.chunk_size(x)
            with autocast:
                if chunk >= x.shape[0]:
                    out = self._run(x)
                else:
                    pieces = x.split(chunk)
                    out = _concat_outputs([self._run(piece) for piece in pieces], [len(p) for p in pieces])
            return _to_float32(out)

    def _run(self, x: torch.Tensor) -> Any:
        if not self._compiled:
            return self.model(x)
        if self._compile_checked:
            return self._compiled[0](x)
        try:
            out = self._compiled[0](x)
        except Exception as err:  # the first call is where torch.compile really compiles
            raise RuntimeError(
                f"torch.compile failed on this model ({type(err).__name__}: {err}); use compile=False "
                "(the optimized eager path)"
            ) from err
        self._compile_checked = True
        return out


def optimize(
    model: nn.Module,
    precision: str = "fp32",
    channels_last: bool = True,
    compile: bool = False,
    device: str | torch.device | None = None,
    micro_batch: int | str | None = "auto",
    fp32_logits: bool = True,
) -> OptimizedModel:
    """An inference-only copy of ``model`` that runs faster, with the same call contract.

    The caller's model is not changed (a deep copy is optimized). Steps: eval mode; every BatchNorm that
    directly follows a convolution is folded into it (``torch.nn.utils.fusion.fuse_conv_bn_eval``; pairs are
    found by module structure, confirmed on a run, and the folding is checked on randomised statistics);
    weights and inputs in ``channels_last``; ``precision`` ``"bf16"``/``"fp16"`` run under
    ``torch.autocast``; a big batch runs in chunks (``micro_batch``); every call runs under
    ``torch.inference_mode`` and returns float32 outputs.

    Args:
        model: A network taking a float ``(B, 3, H, W)`` batch (e.g. from :func:`inharmony.create_model`).
        precision: ``"fp32"`` (default; within 1e-5 of eager), ``"bf16"`` (CPUs with AVX512-BF16/AMX and
            recent GPUs run it ~2× faster; the mask moves by up to a few hundredths), ``"fp16"`` (CUDA only),
            or ``"auto"``: :func:`auto_precision` (bf16 where it is native, else fp32).
        channels_last: Use the channels_last memory format (faster convolutions with oneDNN and cuDNN).
        compile: Also ``torch.compile`` the network (inductor, with freezing). The first call of each input
            shape compiles (tens of seconds on CPU); a failure raises a ``RuntimeError`` naming the cause.
        device: Where the copy runs; default: where ``model``'s parameters are.
        micro_batch: Images per forward pass: a bigger batch runs as consecutive chunks of this size,
            outputs concatenated (each image's output is what its chunk alone gives). ``"auto"`` (default):
            :func:`auto_micro_batch` (on CPU up to two 224² images per pass: bigger passes cost more per image;
            on GPUs one pass); ``None``: always one pass. With ``compile``, chunks also bound the
            number of shapes compiled.
        fp32_logits: With bf16/fp16, run the convolutions that give logits (one output channel, and the
            last one) in float32, so the mask and what follows them are float32: a bf16 mask holds so few
            distinct values that ties cost average precision. Their share of the work is small.

    Example:
        >>> import inharmony
        >>> fast = optimize(inharmony.create_model("dirl_resnet18").eval())
        >>> fast(torch.zeros(1, 3, 64, 64))["mask"].shape
        torch.Size([1, 1, 64, 64])
    """
    if precision not in (*PRECISIONS, "auto"):
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} or auto, got {precision!r}")
    micro_batch = _check_micro_batch(micro_batch)
    if not isinstance(model, nn.Module):
        raise TypeError(f"optimize needs a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, OptimizedModel):
        model = model.model
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    if precision == "auto":
        precision = auto_precision(device)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision='fp16' needs a CUDA device (got {device}): CPUs run fp16 convolutions slowly or not at "
            "all; use precision='bf16' on CPU"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16 support; use precision='fp16'")
    network = _copy_module(model).to(device).eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    example = _example_input(network, device)
    _fold_batchnorm(network, example)
    if precision in _AUTOCAST_DTYPES and fp32_logits:
        _logits_in_full_precision(network, example)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    compiled = None
    if compile:
        try:
            compiled = torch.compile(network, options={"freezing": True})
        except Exception as err:
            raise RuntimeError(
                f"torch.compile is not available here ({type(err).__name__}: {err}); use compile=False"
            ) from err
    return OptimizedModel(network, precision, channels_last, compiled, micro_batch).eval()


# --------------------------------------------------------------------------- the predictor


def _as_size(size: int | Sequence[int], multiple: int) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height <= 0 or width <= 0 or height % multiple or width % multiple:
        raise ValueError(
            f"size must be positive multiples of {multiple} (the model's pretrained_cfg.size_multiple), got {size}"
        )
    return int(height), int(width)


def _resolve_model(model: Any, weights: str | os.PathLike[str] | None) -> nn.Module:
    """The ``model`` argument of :class:`Predictor` as a module, or an error that says what to pass."""
    if isinstance(model, nn.Module):
        if weights is not None:
            raise ValueError("weights= is only used when model is given by name, e.g. Predictor('dirl', weights=...)")
        return model
    if isinstance(model, (str, os.PathLike)):
        from ..hub import from_pretrained, load

        text = os.fspath(model)
        if os.path.isfile(os.path.join(text, "config.json")) and weights is None:
            return from_pretrained(text)  # a hub folder names its own architecture
        if os.path.exists(text):
            kind = "folder without config.json" if os.path.isdir(text) else "file"
            raise ValueError(
                f"Predictor({text!r}): {text} is a {kind}; give the model's name and the weights, e.g. "
                f"Predictor('dirl', weights={text!r}), or a model from inharmony.load(...)"
            )
        return load(text, weights)
    from ..models import list_models

    raise TypeError(
        f"Predictor needs a model: a torch.nn.Module (e.g. inharmony.load('dirl', weights=...)), a registered "
        f"name ({', '.join(list_models())}) with weights=..., or a hub folder; got {type(model).__name__}"
    )


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Predictor:
    """Masks for images of any size, from any registered model.

    Args:
        model: A model (e.g. from :func:`inharmony.load`), a registered name loaded with
            ``inharmony.load(model, weights)``, or a hub folder (``config.json`` + ``model.safetensors``).
        size: Network input size, an int or ``(height, width)``, multiples of the model's
            ``pretrained_cfg.size_multiple`` (16 for DIRL and RSRNet). Default: the weights'
            ``pretrained_cfg.input_size`` (224×224 for the published weights).
        device: ``"cpu"``, ``"cuda"``, ... Default: CUDA if available, else CPU.
        batch_size: Images preprocessed and run together when given a list. Images of any sizes share a
            batch (each is resized to the network size; each mask comes back at its own image's size), and
            the masks equal those of ``batch_size=1`` to float rounding. With ``precision``, a batch bigger
            than pays on the device runs in chunks (:func:`optimize`'s ``micro_batch``), so a big batch never
            costs more per image.
        weights: Weights for a model given by name (see :func:`inharmony.load`).
        precision: ``None`` (default): the model runs as given, eager fp32. ``"fp32"``, ``"bf16"``,
            ``"fp16"`` or ``"auto"``: the model goes through :func:`optimize` (BatchNorm folded, channels_last;
            ``"fp32"`` stays within 1e-5 of eager, ``"bf16"`` is the fast choice on CPUs with AVX512-BF16/AMX
            and on GPUs, ``"fp16"`` needs CUDA, ``"auto"`` is :func:`auto_precision`: bf16 where it is native,
            else fp32); the caller's model is then left untouched and :attr:`model` is the optimized copy.
        compile: With ``precision``, also ``torch.compile`` the network (see :func:`optimize`).
        tta: ``None`` (default): one pass per image. ``"h"``, ``"v"`` or ``"hv"``: the masks of flipped
            copies averaged (:class:`~inharmony.inference.tta.FlipAverage`; 2, 2 or 4 passes per image).

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
        precision: str | None = None,
        compile: bool = False,
        tta: str | None = None,
    ) -> None:
        if tta is not None and tta not in FLIP_CHOICES:
            raise ValueError(f"tta must be None or one of {', '.join(map(repr, FLIP_CHOICES))}, got {tta!r}")
        model = _resolve_model(model, weights)
        if compile and precision is None:
            precision = "fp32"
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
        if precision is None:
            self.model = model.to(self.device).eval()
        else:  # the copy is moved, not the caller's model
            self.model = optimize(model, precision=precision, compile=compile, device=self.device)
            precision = self.model.precision  # "auto" resolved
        if tta is not None:
            self.model = FlipAverage(self.model, flips=tta)
        self.precision = precision
        self.tta = tta
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
        _check_finite(batch, f"input batch {tuple(batch.shape)}")
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
        masks = [resize_mask(prob, height, width) for prob, (height, width) in self.network_masks(items)]
        return masks[0] if single else masks

    @torch.inference_mode()
    def network_masks(self, images: Iterable[ImageInput]) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """``(probabilities at network size, (H, W) of the upright original)`` per image, in order.

        The step before :func:`resize_mask`; with :func:`resize_mask_uint8` a full-size mask of a huge
        image costs one byte per pixel (``inharmony predict`` does this).

        Example:
            >>> import inharmony
            >>> predictor = Predictor(inharmony.create_model("dirl_resnet18"), size=64)
            >>> [(p.shape, hw) for p, hw in predictor.network_masks([np.zeros((50, 70, 3), np.uint8)])]
            [((64, 64), (50, 70))]
        """
        items = list(images)
        out: list[tuple[np.ndarray, tuple[int, int]]] = []
        for start in range(0, len(items), self.batch_size):
            prepared = [self.preprocess(item) for item in items[start : start + self.batch_size]]
            probs = self.forward_batch(torch.stack([tensor for tensor, _ in prepared]))
            for prob, (_, original) in zip(probs, prepared, strict=True):
                out.append((prob[0].cpu().numpy(), original))
        return out


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


def resize_mask_bands(
    prob: torch.Tensor | np.ndarray, height: int, width: int, rows: int = _BAND_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`resize_mask` computed ``rows`` output rows at a time: ``(first row, float32 band)`` pairs.

    The same bilinear formula (half-pixel centres, borders clamped), so the bands stacked equal
    :func:`resize_mask` (to float rounding) while never holding a full-size float array: a 144-MP mask
    is 576 MB in float32.

    Example:
        >>> bands = list(resize_mask_bands(np.eye(4, dtype=np.float32), 10, 6, rows=4))
        >>> [start for start, _ in bands], bands[-1][1].shape
        ([0, 4, 8], (2, 6))
    """
    small = prob.detach().float().cpu().numpy() if isinstance(prob, torch.Tensor) else np.asarray(prob, np.float32)
    small = small.reshape(small.shape[-2:])
    h, w = small.shape
    if w == width:
        wide = small
    elif width < 32767:  # OpenCV's limit; a height-preserving resize is the horizontal pass alone
        wide = cv2.resize(small, (width, h), interpolation=cv2.INTER_LINEAR)
    else:
        wide = F.interpolate(torch.from_numpy(small)[None, None], size=(h, width), mode="bilinear")[0, 0].numpy()
    for start in range(0, height, rows):
        out_rows = np.arange(start, min(start + rows, height), dtype=np.float64)
        source = np.clip((out_rows + 0.5) * (h / height) - 0.5, 0.0, h - 1)
        top = np.floor(source).astype(np.int64)
        bottom = np.minimum(top + 1, h - 1)
        frac = (source - top).astype(np.float32)[:, None]
        band = wide[top] * (1.0 - frac) + wide[bottom] * frac
        yield start, np.clip(band, 0.0, 1.0, out=band)


def resize_mask_uint8(
    prob: torch.Tensor | np.ndarray,
    height: int,
    width: int,
    *,
    threshold: float | None = None,
    tint: np.ndarray | None = None,
    color: tuple[int, int, int] = (255, 0, 0),
    alpha: float = 0.6,
) -> np.ndarray:
    """A network-size probability map as a full-size 8-bit mask, built band by band (low memory).

    Args:
        prob: ``(h, w)`` probabilities at network size.
        height: Output height (the image's).
        width: Output width.
        threshold: If given, the mask is binary: 255 where the probability is ≥ ``threshold``, else 0.
        tint: The image (``height × width × 3`` uint8); if given it is tinted in place, as :func:`overlay` does.
        color: Tint colour (RGB).
        alpha: Tint opacity where the probability is 1.

    Returns:
        ``uint8`` ``height × width``: the probability × 255, rounded (or 0/255 with ``threshold``) — what
        :func:`mask_to_image` writes for the float mask of :func:`resize_mask`, in a quarter of the memory.

    Example:
        >>> int(resize_mask_uint8(np.full((4, 4), 0.5, np.float32), 6, 9).max())
        128
    """
    if threshold is not None:
        check_threshold(threshold)
    if tint is not None and tint.shape != (height, width, 3):
        raise ValueError(f"image shape {tint.shape} does not match the mask size {(height, width)}")
    out = np.empty((height, width), np.uint8)
    for start, band in resize_mask_bands(prob, height, width):
        stop = start + band.shape[0]
        if threshold is not None:
            out[start:stop] = np.where(band >= threshold, 255, 0)
        else:
            out[start:stop] = np.rint(band * 255.0)
        if tint is not None:
            _tint(tint[start:stop], band, color, alpha)
    return out


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
