"""Input checks shared by every architecture."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["check_input", "check_outputs"]


def check_input(x: torch.Tensor, multiple: int) -> None:
    """Raise a clear ``ValueError`` unless ``x`` is ``(B, 3, H, W)``, H and W multiples of ``multiple``.

    Anything but a tensor (a numpy array, a PIL image) raises a ``TypeError`` that points to
    :class:`inharmony.Predictor`.

    Example:
        >>> check_input(torch.zeros(1, 3, 32, 48), 16)
    """
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return  # shapes are symbolic while exporting; the rule is enforced in eager mode
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"the model takes a normalised float tensor of shape (B, 3, H, W), got {_describe(x)}. "
            "For images (paths, PIL images, H×W×3 uint8 arrays) use inharmony.Predictor(model), which "
            "resizes and normalises them; for a prepared array use torch.from_numpy(array)."
        )
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(
            f"expected a normalised RGB batch of shape (B, 3, H, W), got {tuple(x.shape)}"
        )
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(
            f"input size {h}×{w} is not supported: height and width must be multiples of {multiple} "
            f"(the encoder downsamples 4 times). Resize or pad the image, e.g. to "
            f"{_round_up(h, multiple)}×{_round_up(w, multiple)}; inharmony.inference.Predictor "
            f"does this for you."
        )
    if not x.is_floating_point():
        raise ValueError(f"expected a float tensor, got dtype {x.dtype}")


def _describe(x: object) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    kind = f"{type(x).__module__}.{type(x).__name__}".removeprefix("builtins.")
    return kind + (f" of shape {tuple(shape)}" if shape is not None else "") + (f", dtype {dtype}" if dtype else "")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def check_outputs(outputs: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    """``outputs`` (the keys a caller of ``forward_outputs`` asks for) as a tuple; a ``KeyError`` naming the
    keys the network has when one is unknown or none is asked.

    Example:
        >>> check_outputs(["mask"], ("mask", "attention"))
        ('mask',)
    """
    keys = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    unknown = [key for key in keys if key not in known]
    if unknown or not keys:
        wanted = ", ".join(map(repr, unknown)) if unknown else "no key"
        raise KeyError(f"outputs={keys!r} asks for {wanted}; this network returns {', '.join(map(repr, known))}")
    return keys
