"""Flip test-time augmentation: a network's maps averaged over flipped copies of its input.

An inharmonious region stays the same region when the photo is mirrored, so a localizer's mask
should flip with its input. Averaging the masks of the flipped copies (each flipped back) cancels
part of a small network's orientation-dependent errors, for 2 or 4 passes per image instead of 1.
``ttach`` does this for segmentation models in general; it is written here because its wrappers
expect a tensor or a fixed key, while our models return dicts with lists of maps (attention, RSR
masks) and it would be one more dependency for a torch.hub user.

Example:
    >>> import torch
    >>> from inharmony.models import create_model
    >>> model = FlipAverage(create_model("dirl_tiny").eval(), flips="hv")  # 4 passes: as is, h, v, both
    >>> model(torch.randn(1, 3, 32, 32))["mask"].shape
    torch.Size([1, 1, 32, 32])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["FLIP_CHOICES", "FlipAverage"]

#: ``h``: as is + mirrored left-right (2 passes); ``v``: + upside down (2); ``hv``: all four of
#: as is, left-right, upside down and both (4 passes, the whole group of flips).
FLIP_CHOICES: dict[str, tuple[tuple[int, ...], ...]] = {
    "h": ((), (-1,)),
    "v": ((), (-2,)),
    "hv": ((), (-1,), (-2,), (-2, -1)),
}


def _is_map(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() == 4 and value.is_floating_point()


def _each_map(fn: Callable[[torch.Tensor], torch.Tensor], value: Any) -> Any:
    """``value`` with ``fn`` applied to every floating 4-D tensor in it (alone, or in dicts, lists, tuples)."""
    if _is_map(value):
        return fn(value)
    if isinstance(value, dict):
        return {k: _each_map(fn, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_each_map(fn, v) for v in value)
    return value


def _add_maps(total: Any, value: Any) -> Any:
    """``total`` with each map of ``value`` added to the map in the same place (same nesting)."""
    if _is_map(total):
        return total + value
    if isinstance(total, dict):
        return {k: _add_maps(v, value[k]) for k, v in total.items()}
    if isinstance(total, (list, tuple)):
        return type(total)(_add_maps(t, v) for t, v in zip(total, value, strict=True))
    return total


class FlipAverage(nn.Module):
    """Run ``model`` on flipped copies of the batch and average its spatial outputs, flipped back.

    Every floating 4-D tensor of the output (a dict's values, and the tensors inside its lists and
    tuples, at any resolution) is the mean over the passes, each flipped back to the input's
    orientation, as float32: a probability map stays in [0, 1]. Anything else (e.g. a vector) is the
    plain pass's. The wrapper holds no weights of its own; ``state_dict`` is the model's under ``model.``.

    Args:
        model: A network called as ``model(x)`` with ``x`` a ``(B, C, H, W)`` batch, in eval mode.
        flips: ``"h"``, ``"v"`` (2 passes) or ``"hv"`` (4 passes): see :data:`FLIP_CHOICES`.

    Raises:
        ValueError: ``flips`` is not one of :data:`FLIP_CHOICES`.

    Example:
        >>> import torch
        >>> net = nn.Conv2d(3, 1, 3, padding=1)
        >>> averaged = FlipAverage(net, flips="h")
        >>> x = torch.randn(1, 3, 8, 8)
        >>> torch.allclose(averaged(x), (net(x) + net(x.flip(-1)).flip(-1)) / 2)
        True
    """

    def __init__(self, model: nn.Module, flips: Literal["h", "v", "hv"] = "hv") -> None:
        super().__init__()
        if flips not in FLIP_CHOICES:
            raise ValueError(f"flips must be one of {', '.join(map(repr, FLIP_CHOICES))}, got {flips!r}")
        self.model = model
        self.flips = flips
        if getattr(model, "pretrained_cfg", None) is not None:
            self.pretrained_cfg = model.pretrained_cfg

    @property
    def passes(self) -> int:
        """Forward passes per batch."""
        return len(FLIP_CHOICES[self.flips])

    def extra_repr(self) -> str:
        return f"flips={self.flips!r}, passes={self.passes}"

    def forward(self, x: torch.Tensor) -> Any:
        if x.dim() != 4:
            raise ValueError(f"FlipAverage needs a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        total: Any = None
        for dims in FLIP_CHOICES[self.flips]:
            out = self.model(x.flip(dims)) if dims else self.model(x)
            if dims:
                out = _each_map(lambda m, dims=dims: m.flip(dims), out)
            out = _each_map(lambda m: m.float(), out)  # float32 sums: bf16 maps would lose the average's digits
            total = out if total is None else _add_maps(total, out)
        return _each_map(lambda m: m / self.passes, total)
