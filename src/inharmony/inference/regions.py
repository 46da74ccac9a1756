"""Which model does what, and the region a fix or a score works on: shared by the harmonizer and the scorer.

:func:`check_role` refuses a model in the wrong role (a harmonizer as the localizer, a localizer as the
scorer ...) before anything is downloaded; :func:`load_module` builds a model for its role;
:func:`iter_regions` turns given masks or a localizer's predictions into the soft masks (:func:`soft_mask`,
quantised to 8 bits: :func:`mask_levels`) that :class:`~inharmony.inference.harmonizer.Harmonizer` and
:class:`~inharmony.inference.scorer.HarmonyScorer` use; :func:`check_region` refuses an empty one.

Example:
    >>> check_role("pctnet", "harmonizer")
    >>> [round(float(v), 2) for v in soft_mask(np.array([0.1, 0.9], np.float32))]
    [0.0, 1.0]
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import DataError, ImageReadError
from ..imageio import ImageInput, load_image_array, load_mask_array
from .masks import check_threshold
from .predictor import Predictor

__all__ = [
    "Region",
    "check_region",
    "check_role",
    "default_device",
    "iter_regions",
    "load_module",
    "mask_levels",
    "resolve_localizer",
    "soft_mask",
]

_ROLES = {"harmonizer": "harmonization", "localizer": "localization", "scorer": "harmony_score"}
_DOES = {
    "harmonization": "it changes the colour and lighting of a region it is given",
    "localization": "it finds the inharmonious region; it changes no pixel",
    "harmony_score": "it scores how well a region fits its photo; it changes no pixel",
}


def mask_levels(mask: np.ndarray) -> np.ndarray:
    """A mask in [0, 1] as 8-bit grey (255 = 1.0), zero exactly where the mask is 0.

    Example:
        >>> mask_levels(np.array([0.0, 0.001, 0.5, 1.0], np.float32)).tolist()
        [0, 1, 128, 255]
    """
    mask = np.clip(mask, 0.0, 1.0)
    levels = np.rint(mask * 255.0).astype(np.uint8)
    levels[(levels == 0) & (mask > 0)] = 1
    return levels


def soft_mask(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """A localizer's probability as the blending mask: 0 well below ``threshold``, 1 well above, a ramp between.

    Example:
        >>> [round(float(v), 2) for v in soft_mask(np.array([0.1, 0.45, 0.5, 0.9], np.float32))]
        [0.0, 0.3, 0.5, 1.0]
    """
    check_threshold(threshold)
    width = min(threshold, 1.0 - threshold) / 4.0
    return np.clip((prob.astype(np.float32) - (threshold - width)) / (2 * width), 0.0, 1.0).astype(np.float32)


def _takes(model: nn.Module, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _task(spec: Any) -> tuple[str, str | None]:
    """``(name shown, registered task or None)`` of a model given by name, as a module or a Predictor."""
    if isinstance(spec, (str, os.PathLike)):
        from ..errors import UnknownModelError
        from ..models import get_pretrained_cfg

        name = os.fspath(spec)
        try:
            return name, get_pretrained_cfg(name).task
        except UnknownModelError:
            return name, None  # a hub folder or an unknown name: loading says what it is
    model = spec.model if isinstance(spec, Predictor) else spec
    cfg = getattr(model, "pretrained_cfg", None)
    return getattr(cfg, "name", type(model).__name__), getattr(cfg, "task", None)


def check_role(spec: Any, role: str) -> None:
    """Refuse a model given in the wrong role: a localizer as the harmonizer, a harmonizer as the localizer ...

    Args:
        spec: A registered name, an ``nn.Module`` or a :class:`~inharmony.inference.Predictor`; one without a
            registered task (a hand-made module, a hub folder) passes.
        role: ``"harmonizer"``, ``"localizer"`` or ``"scorer"``.

    Raises:
        ValueError: the model's task is another role's; the message names the models of this role.

    Example:
        >>> check_role("pctnet", "harmonizer")
        >>> check_role("pctnet", "localizer")
        Traceback (most recent call last):
        ...
        ValueError: pctnet is a harmonizer (it changes the colour and lighting of a region it is given), ...
    """
    from ..models import list_models

    name, task = _task(spec)
    if task is None or task == _ROLES[role]:
        return
    actual = next(r for r, t in _ROLES.items() if t == task)
    fitting = ", ".join(list_models(task=_ROLES[role]))
    hint = " (it finds its region itself: give it as the harmonizer, without a mask)" if name == "s2am_maskfree" else ""
    raise ValueError(
        f"{name} is a {actual} ({_DOES[task]}), not a {role}{hint}: give it as the {actual} (the {actual}= "
        f"argument, --{'model' if actual == 'harmonizer' else actual} on the command line); {role}s: {fitting}"
    )


def load_module(spec: Any, weights: str | os.PathLike[str] | None, role: str, device: torch.device) -> nn.Module:
    """The model given as ``role`` (``"harmonizer"``, ``"scorer"``): a module as it is, or a name loaded with
    ``weights``; on ``device``, in eval mode."""
    if isinstance(spec, nn.Module):
        if weights is not None:
            raise ValueError(f"weights= is only used when the {role} is given by name")
        model = spec
    elif isinstance(spec, str):
        from ..models import load

        model = load(spec, weights)
    else:
        raise TypeError(f"the {role} must be a registered name or an nn.Module, got {type(spec).__name__}")
    return model.to(device).eval()


def default_device(device: str | torch.device | None) -> torch.device:
    """``device``, or CUDA when available, else the CPU."""
    return torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_localizer(
    spec: str | nn.Module | Predictor,
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    precision: str | None = "auto",
) -> Predictor:
    """The localizer's :class:`~inharmony.inference.Predictor`: a registered name (loaded with ``weights``), a
    module or a ready Predictor; a harmonizer or scorer given as localizer is refused (:func:`check_role`).
    A new Predictor runs at ``precision`` (default ``"auto"``: the fast path, see
    :func:`~inharmony.inference.optimize`; ``None``: eager).

    Example:
        >>> resolve_localizer("pctnet")
        Traceback (most recent call last):
        ...
        ValueError: pctnet is a harmonizer (it changes the colour and lighting of a region it is given), ...
    """
    check_role(spec, "localizer")
    if isinstance(spec, Predictor):
        return spec
    if isinstance(spec, nn.Module):
        return Predictor(spec, device=device, batch_size=batch_size, precision=precision)
    return Predictor(spec, weights=weights, device=device, batch_size=batch_size, precision=precision)


@dataclass(eq=False)
class Region:
    """One photo and the region to work on, from :func:`iter_regions`.

    Attributes:
        source: The photo as given.
        photo: ``(H, W, 3)`` uint8 RGB, writable; None when it could not be read.
        alpha: ``(H, W)`` float32 mask, quantised to 8-bit levels; None: a mask-free harmonizer finds it.
        predicted: Whether the localizer found the region (else the mask was given).
        error: Why the photo was skipped (an ``ImageReadError`` or ``DataError``), or None.
    """

    source: Any
    photo: np.ndarray | None = None
    alpha: np.ndarray | None = None
    predicted: bool = False
    error: Exception | None = None


def _quantised(alpha: np.ndarray) -> np.ndarray:
    # quantised like the written mask: a pixel the mask PNG shows as 0 is never touched
    return mask_levels(alpha).astype(np.float32) / np.float32(255.0)


def iter_regions(
    images: Iterable[ImageInput],
    mask: ImageInput | np.ndarray | None = None,
    localizer: Predictor | None = None,
    threshold: float = 0.5,
) -> Iterator[Region]:
    """Each photo read, with its region: ``mask`` (the same for every photo), else the localizer's soft mask.

    Without ``mask`` and ``localizer``, each region is None (a mask-free harmonizer finds its own). Errors of
    one photo (unreadable, a mask of another size) are yielded in :attr:`Region.error`, never raised.

    Example:
        >>> regions = list(iter_regions([np.zeros((20, 30, 3), np.uint8)], np.ones((20, 30))))
        >>> regions[0].alpha.shape, regions[0].predicted
        ((20, 30), False)
    """
    if mask is None and localizer is not None:
        for found in localizer.iter_masks(images, keep_images=True, skip_errors=True):
            if found.error is not None:
                yield Region(found.source, error=found.error)
                continue
            alpha = _quantised(soft_mask(found.mask(), threshold))
            yield Region(found.source, found.take_image(), alpha, predicted=True)
        return
    for source in images:
        try:
            photo = load_image_array(source)
            alpha = None if mask is None else _quantised(load_mask_array(mask, photo.shape[:2]))
        except (ImageReadError, DataError, FileNotFoundError) as err:
            yield Region(source, error=err)
            continue
        yield Region(source, photo if photo.flags.writeable else photo.copy(), alpha)


def check_region(alpha: np.ndarray, predicted: bool, threshold: float = 0.5) -> None:
    """Refuse an empty region: nothing to harmonize (or to score).

    Raises:
        DataError: no pixel of ``alpha`` is above 0 (the message says whether it was given or predicted).
    """
    if not alpha.any():
        raise DataError(
            f"the localizer found no inharmonious region (no pixel above threshold {threshold:g}): nothing to fix; "
            "give the region with a mask, or lower the threshold"
            if predicted
            else "the mask is empty (every pixel 0): there is no region to harmonize or score; 255 (or 1) marks it"
        )
