"""Parsing of the bench options that arrive as text: lists of counts and image sizes.

Every value is checked here, where it is parsed, so a bad one gets a message naming its option
(``--photo-size must be WIDTHxHEIGHT with both sides at least 1 ...``) instead of a traceback from
inside a measurement. Whole-number options are typed :data:`PositiveInt` in each mode's ``run``, so
jsonargparse refuses ``--threads 0`` while parsing.

Example:
    >>> parse_counts("1,2,8", "--batches"), parse_size("64x48", "--photo-size")
    ([1, 2, 8], (64, 48))
"""

from __future__ import annotations

from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt

__all__ = ["NonNegativeInt", "PositiveFloat", "PositiveInt", "parse_counts", "parse_size", "parse_sizes"]


def parse_counts(text: str, option: str) -> list[int]:
    """Positive whole numbers separated by commas (``"1,2,4,8"``)."""
    try:
        values = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"{option} must be positive whole numbers separated by commas, e.g. 1,2,4,8; got {text!r}")
    return values


def parse_size(text: str, option: str, order: str = "WIDTHxHEIGHT") -> tuple[int, int]:
    """``"AxB"`` as two positive whole numbers ``(A, B)``; ``order`` names the sides in the message."""
    try:
        first, second = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        first = second = 0
    if first < 1 or second < 1 or first * second > 400_000_000:
        raise ValueError(
            f"{option} must be {order} with both sides at least 1 px and at most 400 megapixels in all, "
            f"e.g. 4000x3000; got {text!r}"
        )
    return first, second


def parse_sizes(text: str, option: str, order: str = "HEIGHTxWIDTH") -> list[tuple[int, int]]:
    """Sizes separated by commas (``"480x640,4000x6000"``), each as :func:`parse_size`."""
    sizes = [parse_size(part, option, order) for part in str(text).split(",") if part.strip()]
    if not sizes:
        raise ValueError(f"{option} must name at least one size, e.g. 480x640; got {text!r}")
    return sizes
