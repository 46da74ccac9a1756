"""The page's optional "fix" step: :class:`HarmonizerSlot`.

When a harmonizer is named (PCTNet by default, with its published weights), the page shows a button that fixes
the colour and lighting of the region found at the photo's full size, before | after, with the harmony score
of both (BargainNet, libcom's score; higher is more harmonious). The harmonizer
(:class:`inharmony.inference.harmonizer.Harmonizer`) and its scorer are loaded on the first click and reused.

Example:
    >>> HarmonizerSlot("pctnet").available, HarmonizerSlot(None).available
    (True, False)
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from ..inference.harmonizer import Harmonizer

__all__ = ["HarmonizerSlot"]


class HarmonizerSlot:
    """A harmonizer (and its harmony scorer), loaded on first use.

    Args:
        harmonizer: A registered harmonizer name (``"pctnet"``, ``"s2am"``), a ready object with
            ``__call__(image, mask) -> Harmonized`` (e.g. an :class:`inharmony.inference.harmonizer.Harmonizer`), or
            ``None`` for no fix step.
        weights: The harmonizer's weights (see :class:`inharmony.inference.harmonizer.Harmonizer`); ``None``: published.
        device: Where it runs.
        scorer: The harmony scorer of a harmonizer given by name (``"bargainnet"``, published weights), or None
            for no scores. A ready harmonizer brings its own (or none).
        scorer_weights: The scorer's weights; ``None``: published.
    """

    def __init__(
        self,
        harmonizer: Any = "pctnet",
        weights: str | os.PathLike[str] | None = None,
        device: Any = None,
        scorer: Any = "bargainnet",
        scorer_weights: str | os.PathLike[str] | None = None,
    ):
        self._spec = harmonizer
        self._weights = weights
        self._device = device
        self._scorer = (scorer, scorer_weights)
        self._ready = harmonizer if harmonizer is not None and not isinstance(harmonizer, str) else None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether the page offers the step (a ready harmonizer, or one is named)."""
        return self._ready is not None or self._spec is not None

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> Any:
        """``Harmonized`` for ``image`` with the region ``mask`` (H×W float in [0, 1]), scored when a scorer is set.

        The page always gives the region it found, so the harmonizer loads no localizer of its own.
        """
        with self._lock:
            if self._ready is None:
                if not self.available:
                    raise RuntimeError("no harmonizer: this page was started without one")
                scorer, scorer_weights = self._scorer
                self._ready = Harmonizer(
                    harmonizer=self._spec,
                    weights=self._weights,
                    localizer=None,
                    device=self._device,
                    scorer=scorer,
                    scorer_weights=scorer_weights if scorer is not None else None,
                )
            harmonizer = self._ready
        return harmonizer(image, mask=mask)
