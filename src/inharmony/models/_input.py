"""Input checks shared by every architecture."""

from __future__ import annotations

import torch

__all__ = ["check_input"]


def check_input(x: torch.Tensor, multiple: int) -> None:
    """Raise a clear ``ValueError`` unless ``x`` is ``(B, 3, H, W)``, H and W multiples of ``multiple``."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return  # shapes are symbolic while exporting; the rule is enforced in eager mode
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


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
