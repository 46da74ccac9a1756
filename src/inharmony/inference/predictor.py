"""The one batch loop from images to masks: :class:`Predictor` and its :meth:`Predictor.iter_masks`.

Every image takes one path, for the library and for ``inharmony predict`` alike: read
(:func:`inharmony.imageio.read_image`) → the evaluation preprocessing
(:class:`~inharmony.preprocessing.EvalPreprocess`) → batches through the network (with test-time flips when
asked) → a probability map at network size per image, resized to the image's own size on demand
(:meth:`MaskResult.mask`, or band by band with :meth:`MaskResult.mask_uint8`).

Example:
    >>> import inharmony
    >>> predictor = Predictor(inharmony.create_model("dirl_resnet18"), size=64)
    >>> [r.prob.shape for r in predictor.iter_masks([np.zeros((50, 70, 3), np.uint8)])]
    [(64, 64)]
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ImageReadError
from ..imageio import ImageInput, check_finite, load_image_array, read_image
from ..preprocessing import EvalPreprocess
from .masks import resize_mask, resize_mask_uint8
from .optimized import optimize
from .tta import FLIP_CHOICES, FlipAverage

__all__ = ["MaskResult", "Predictor"]

HELD_IMAGE_BYTES = 256 * 2**20
"""Full-size decodes :meth:`Predictor.iter_masks` keeps per batch (``keep_images=True``); beyond, decoded again."""


@dataclass(eq=False)
class MaskResult:
    """One input's outcome in :meth:`Predictor.iter_masks`.

    Attributes:
        source: The input as given (a path, a PIL image or an array).
        prob: ``float32 (h, w)`` probabilities at network size; None when the input could not be read.
        size: ``(height, width)`` of the upright image; ``(0, 0)`` when it could not be read.
        error: Why the input was skipped (an ``ImageReadError`` or ``FileNotFoundError``), or None.
        image: The full-size upright RGB decode, when the loop was asked to keep it and it fit the memory
            budget (:data:`HELD_IMAGE_BYTES`); :meth:`take_image` hands it over, or decodes the source again.

    Example:
        >>> result = MaskResult("photo.png", np.full((4, 4), 0.5, np.float32), (6, 9))
        >>> result.mask().shape, int(result.mask_uint8(threshold=0.5).max())
        ((6, 9), 255)
    """

    source: Any
    prob: np.ndarray | None = None
    size: tuple[int, int] = (0, 0)
    error: Exception | None = None
    image: np.ndarray | None = field(default=None, repr=False)

    def mask(self) -> np.ndarray:
        """The probability mask at the image's own size, ``float32`` in [0, 1] (see :func:`resize_mask`)."""
        return resize_mask(self._prob(), *self.size)

    def mask_uint8(self, threshold: float | None = None, tint: np.ndarray | None = None) -> np.ndarray:
        """The mask at the image's size in 8 bits, built band by band (see :func:`resize_mask_uint8`)."""
        return resize_mask_uint8(self._prob(), *self.size, threshold=threshold, tint=tint)

    def take_image(self) -> np.ndarray:
        """The full-size upright RGB image, writable: the held decode (the result lets go of it) or a new one.

        For an array input, this may be the caller's array itself.
        """
        image, self.image = self.image, None
        if image is None:
            image = load_image_array(self.source)
        return image if image.flags.writeable else image.copy()

    def _prob(self) -> np.ndarray:
        if self.prob is None:
            raise ValueError(f"no mask for {self.source!r}: {self.error}")
        return self.prob


def _as_size(size: int | Sequence[int], multiple: int) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height <= 0 or width <= 0 or height % multiple or width % multiple:
        raise ValueError(
            f"size must be positive multiples of {multiple} (the model's pretrained_cfg.size_multiple), got {size}"
        )
    return int(height), int(width)


def _check_localizer(task: str | None, name: str) -> None:
    """A clear error when a harmonizer or a scorer is given where a localizer is needed (before any download).

    A harmonizer that takes no mask (``s2am_maskfree``) predicts one and is accepted.
    """
    from ..models import is_model, list_models, takes_mask

    if task in (None, "localization") or (task == "harmonization" and is_model(name) and not takes_mask(name)):
        return

    use = "inharmony.Harmonizer" if task == "harmonization" else "inharmony.HarmonyScorer"
    raise ValueError(
        f"{name} is a {task} model, not a localizer: the Predictor (and `inharmony predict`) finds regions with "
        f"a localizer ({', '.join(list_models(task='localization'))}); use {use} for {name}"
    )


def _resolve_model(model: Any, weights: str | os.PathLike[str] | None) -> nn.Module:
    """The ``model`` argument of :class:`Predictor` as a module, or an error that says what to pass."""
    if isinstance(model, str) and not os.path.exists(model):
        from ..models import get_pretrained_cfg, is_model

        if is_model(model.split(".")[0]):
            _check_localizer(get_pretrained_cfg(model).task, model)
    if isinstance(model, nn.Module):
        cfg = getattr(model, "pretrained_cfg", None)
        _check_localizer(getattr(cfg, "task", None), getattr(cfg, "architecture", type(model).__name__))
        if weights is not None:
            raise ValueError("weights= is only used when model is given by name, e.g. Predictor('dirl', weights=...)")
        return model
    if isinstance(model, (str, os.PathLike)):
        from ..models import from_pretrained, load

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
            and on GPUs, ``"fp16"`` needs CUDA, ``"auto"`` is the fastest path of the running device: ONNX
            Runtime fp32 on fp32-only CPUs when it is installed, bf16 where it is native, else fp32, see
            :func:`~inharmony.inference.auto_backend`); the caller's model is then left untouched and
            :attr:`model` is the optimized copy.
        backend: With ``precision``: ``"auto"`` (default; see :func:`optimize`), ``"torch"`` or
            ``"onnxruntime"`` (fp32 on CPU, needs the ``export`` extra). :attr:`backend` is the one used.
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
    of them for a list input. :func:`~inharmony.inference.binarize` and :func:`~inharmony.inference.overlay`
    turn it into a binary mask or a picture. The model is moved to ``device`` and put in eval mode.
    :meth:`iter_masks` is the loop behind it, one result per image, for many images or huge ones.

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
        backend: str = "auto",
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
        self.backend = "torch"
        if precision is None:
            self.model = model.to(self.device).eval()
        else:  # the copy is moved, not the caller's model
            # Only the mask is read (see _masks): ONNX Runtime then skips what only other outputs need.
            self.model = optimize(
                model, precision=precision, compile=compile, device=self.device, backend=backend,
                outputs=("mask",),
            )  # fmt: skip
            precision, self.backend = self.model.precision, self.model.backend  # "auto" resolved
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
        rgb, original = read_image(image, self.preprocessing.min_source_side)
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
        check_finite(batch, f"input batch {tuple(batch.shape)}")
        out = self.model(batch.to(self.device, dtype=torch.float32))
        mask = out["mask"] if isinstance(out, dict) else out
        return mask.float()

    @torch.inference_mode()
    def predict(self, images: ImageInput | Iterable[ImageInput]) -> np.ndarray | list[np.ndarray]:
        """Probability mask(s) at each input's own size; see the class docstring."""
        single = isinstance(images, (str, os.PathLike, Image.Image)) or (
            isinstance(images, np.ndarray) and images.ndim != 4
        )
        masks = [result.mask() for result in self.iter_masks([images] if single else _checked_many(images))]
        return masks[0] if single else masks

    def network_masks(self, images: Iterable[ImageInput]) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """``(probabilities at network size, (H, W) of the upright original)`` per image, in order.

        The step before :func:`resize_mask`; :meth:`iter_masks` gives the same one image at a time.

        Example:
            >>> import inharmony
            >>> predictor = Predictor(inharmony.create_model("dirl_resnet18"), size=64)
            >>> [(p.shape, hw) for p, hw in predictor.network_masks([np.zeros((50, 70, 3), np.uint8)])]
            [((64, 64), (50, 70))]
        """
        return [(result.prob, result.size) for result in self.iter_masks(images)]

    def iter_masks(
        self, images: Iterable[ImageInput], *, keep_images: bool = False, skip_errors: bool = False
    ) -> Iterator[MaskResult]:
        """The batch loop: one :class:`MaskResult` per input, in order, :attr:`batch_size` inputs at a time.

        Inputs are read lazily, a batch at a time; each batch's readable images run through the network together
        (an unreadable one leaves its batch one smaller). A result's :attr:`~MaskResult.prob` is at network size:
        :meth:`MaskResult.mask` resizes it to the image's size, :meth:`MaskResult.mask_uint8` in 8 bits and
        little memory (``inharmony predict`` writes those).

        Args:
            images: Paths, PIL images or arrays (see the class docstring).
            keep_images: Also keep each full-size upright decode for :meth:`MaskResult.take_image` (an overlay):
                the network's input is then built from that very decode when the pixels are read at full size.
                A batch keeps at most :data:`HELD_IMAGE_BYTES` of them beyond its first; the others are decoded
                again when taken.
            skip_errors: Yield an unreadable input (``ImageReadError``, ``FileNotFoundError``) as a result with
                :attr:`~MaskResult.error` set, instead of raising.

        Example:
            >>> import inharmony
            >>> predictor = Predictor(inharmony.create_model("dirl_resnet18"), size=64)
            >>> results = list(predictor.iter_masks([np.zeros((50, 70, 3), np.uint8), "missing.jpg"], skip_errors=True))
            >>> [(r.size, r.error) for r in results]
            [((50, 70), None), ((0, 0), FileNotFoundError('image not found: missing.jpg'))]
        """
        sources = iter(_checked_many(images))
        while batch := list(itertools.islice(sources, self.batch_size)):
            results, tensors = self._read_batch(batch, keep_images, skip_errors)
            if tensors:
                probs = self.forward_batch(torch.stack(tensors)).cpu().numpy()
                del tensors
                ready = iter(probs[:, 0])
                for result in results:
                    if result.error is None:
                        result.prob = next(ready)
            while results:  # handed over one by one: the loop keeps no image the caller is done with
                yield results.pop(0)

    def _read_batch(
        self, batch: list[ImageInput], keep_images: bool, skip_errors: bool
    ) -> tuple[list[MaskResult], list[torch.Tensor]]:
        """Each input read and preprocessed: its result (an error, or the size and maybe the image) and tensors."""
        results, tensors, held = [], [], 0
        full_size = self.preprocessing.min_source_side is None
        for source in batch:
            try:
                image = load_image_array(source) if keep_images else None
                # At full size the network's input is built from this very decode: one decode serves both.
                tensor, size = self.preprocess(image if image is not None and full_size else source)
            except (ImageReadError, FileNotFoundError) as err:
                if not skip_errors:
                    raise
                results.append(MaskResult(source, error=err))
                continue
            if image is not None:
                # Past the budget (the first image always fits) decodes are dropped and redone when taken:
                # a batch of huge photos stays small, a lone huge photo is decoded once.
                if held and held + image.nbytes > HELD_IMAGE_BYTES:
                    image = None
                else:
                    held += image.nbytes
            results.append(MaskResult(source, size=(int(size[0]), int(size[1])), image=image))
            tensors.append(tensor)
        return results, tensors


def _checked_many(images: Any) -> Iterable[ImageInput]:
    """``images`` if it is a collection of inputs (a list, tuple, generator, 4-D array), else a clear ``TypeError``.

    A ``dict``, ``bytes``, a number or ``None`` would otherwise be iterated (keys, byte values) or fail deep inside.
    """
    if isinstance(images, (dict, bytes, bytearray, str)) or not isinstance(images, Iterable):
        raise TypeError(
            f"the Predictor takes an image (a path, a PIL image, an H×W×3 array) or a list of them, got "
            f"{type(images).__name__}"
            + (": nothing to predict" if images is None else "")
            + "; for a folder use inharmony.imageio.iter_image_files(['folder'])"
        )
    return images
