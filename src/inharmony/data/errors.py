"""The error raised for bad iHarmony4 input (missing files, unreadable images, mismatched pairs)."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A problem with the dataset on disk: the message names the file and says what to do."""
