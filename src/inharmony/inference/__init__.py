"""Predict inharmonious-region masks for images of any size: :class:`Predictor`.

The network sees every image exactly as ``inharmony test`` does: the one evaluation preprocessing,
:class:`~inharmony.preprocessing.EvalPreprocess`, decodes it (:mod:`inharmony.imageio`), resizes it to a
fixed size (224×224 for the published weights, as in the papers' evaluation) and normalises it. The mask
the network predicts is resized back, so the caller gets a mask at the image's own size.

The package: :mod:`~inharmony.inference.predictor` (the one batch loop, :meth:`Predictor.iter_masks`),
:mod:`~inharmony.inference.masks` (thresholds, overlays, resizing), :mod:`~inharmony.inference.precision`
(what pays on a device: :func:`cpu_kind`, :func:`auto_backend`), :mod:`~inharmony.inference.optimized`
(:func:`optimize`), :mod:`~inharmony.inference.onnx_backend` (ONNX Runtime behind :func:`optimize`),
:mod:`~inharmony.inference.tta` (flips), :mod:`~inharmony.inference.harmonizer` and
:mod:`~inharmony.inference.export` (ONNX).

Example:
    >>> import inharmony, numpy as np
    >>> predictor = inharmony.Predictor(inharmony.create_model("dirl_resnet18"), size=64)
    >>> mask = predictor(np.zeros((50, 70, 3), dtype=np.uint8))
    >>> mask.shape, mask.dtype
    ((50, 70), dtype('float32'))
"""

from __future__ import annotations

from ..errors import ImageReadError
from ..imageio import MIN_SIDE, ImageInput, iter_image_files, load_image, load_image_array
from .masks import binarize, check_threshold, mask_to_image, overlay, resize_mask, resize_mask_bands, resize_mask_uint8
from .optimized import OptimizedModel, optimize
from .precision import (
    BACKENDS,
    CPU_KINDS,
    PRECISIONS,
    auto_backend,
    auto_micro_batch,
    auto_precision,
    bf16_is_fast,
    cpu_kind,
    onnxruntime_available,
)
from .predictor import MaskResult, Predictor

__all__ = [
    "BACKENDS",
    "CPU_KINDS",
    "MIN_SIDE",
    "PRECISIONS",
    "ImageInput",
    "ImageReadError",
    "MaskResult",
    "OptimizedModel",
    "Predictor",
    "auto_backend",
    "auto_micro_batch",
    "auto_precision",
    "bf16_is_fast",
    "binarize",
    "check_threshold",
    "cpu_kind",
    "iter_image_files",
    "load_image",
    "load_image_array",
    "mask_to_image",
    "onnxruntime_available",
    "optimize",
    "overlay",
    "resize_mask",
    "resize_mask_bands",
    "resize_mask_uint8",
]
