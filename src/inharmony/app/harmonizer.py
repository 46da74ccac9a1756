"""The page's optional "harmonize" step: :class:`HarmonizerSlot`.

The step exists only when :mod:`inharmony.inference.harmonizer` can be imported (the S2AM harmonizer); then the
page shows a button that fixes the colour and lighting of the region found, before | after. The
harmonizer is loaded on the first click and reused.

Example:
    >>> slot = HarmonizerSlot("s2am")
    >>> slot.available in (True, False)
    True
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import Any

import numpy as np

__all__ = ["HarmonizerSlot"]


def _harmonizer_class() -> Any:
    try:
        return importlib.import_module("inharmony.inference.harmonizer").Harmonizer
    except (ImportError, AttributeError):
        return None


class HarmonizerSlot:
    """A harmonizer, loaded on first use.

    Args:
        harmonizer: A registered harmonizer name (``"s2am"``), a ready object with
            ``__call__(image, mask) -> Harmonized`` (e.g. an :class:`inharmony.inference.harmonizer.Harmonizer`), or
            ``None`` for no harmonize step.
        weights: The harmonizer's weights (see :class:`inharmony.inference.harmonizer.Harmonizer`); ``None``: published.
        device: Where it runs.
    """

    def __init__(self, harmonizer: Any = "s2am", weights: str | os.PathLike[str] | None = None, device: Any = None):
        self._cls = _harmonizer_class()
        self._spec = harmonizer
        self._weights = weights
        self._device = device
        self._ready = harmonizer if harmonizer is not None and not isinstance(harmonizer, str) else None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether the page offers the step (a ready harmonizer, or the module is importable and one is named)."""
        return self._ready is not None or (self._spec is not None and self._cls is not None)

    def __call__(self, image: np.ndarray, mask: np.ndarray, localizer: Any) -> Any:
        """``Harmonized`` for ``image`` with the region ``mask`` (H×W float in [0, 1]).

        ``localizer`` (the page's current :class:`~inharmony.inference.Predictor`) is handed to the
        harmonizer so that it loads no second localizer; the mask given is the one used.
        """
        with self._lock:
            if self._ready is None:
                if not self.available:
                    raise RuntimeError("no harmonizer: inharmony.inference.harmonizer cannot be imported")
                self._ready = self._cls(
                    harmonizer=self._spec, weights=self._weights, localizer=localizer, device=self._device
                )
            harmonizer = self._ready
        return harmonizer(image, mask=mask)
