"""Which models and weights the page offers, and the one loaded copy of each: :class:`ModelCache`.

A choice of weights is one of :data:`PUBLISHED` (the tag's published weights, downloaded once by
``huggingface_hub`` and cached; offline, a clear message), :data:`UNTRAINED` (random weights, to try
the page without any download) or anything :func:`inharmony.load` takes (a hub folder, a
``.safetensors``/``.pth`` file, a Hub id ``org/name``). Loading happens on first use of a
``(model, weights)`` pair, never at import; the :class:`~inharmony.inference.Predictor` built then
is reused by every later request.

Example:
    >>> cache = ModelCache(precision=None, device="cpu")
    >>> predictor = cache.get("dirl_resnet18", UNTRAINED)
    >>> predictor is cache.get("dirl_resnet18", UNTRAINED)
    True
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable

import torch

from ..errors import InharmonyError
from ..inference import Predictor
from ..models import create_model, get_pretrained_cfg, is_model, list_models, takes_mask

__all__ = ["GIVEN", "PUBLISHED", "UNTRAINED", "ModelCache", "localizer_models", "weight_choices", "weights_key"]

PUBLISHED = "published"
"""Weights choice: the model's published weights (``inharmony.load(model)``)."""
UNTRAINED = "untrained"
"""Weights choice: random initial weights (the masks mean nothing; no download)."""
GIVEN = "given"
"""Weights choice of a ready :class:`~inharmony.inference.Predictor` handed to ``build_app``."""


def localizer_models() -> list[str]:
    """Registered models that take a photo alone and predict a mask (harmonizers that need one are left out).

    Example:
        >>> "madisnet" in localizer_models()
        True
    """
    return [name for name in list_models() if not takes_mask(name)]


def weight_choices(model: str, extra: str | None = None) -> list[tuple[str, str]]:
    """``(label, value)`` pairs of the weights offered for ``model``; ``extra`` (a path given at start) first.

    Example:
        >>> [value for _, value in weight_choices("madisnet")]
        ['published', 'untrained']
    """
    choices: list[tuple[str, str]] = []
    if extra and extra not in (PUBLISHED, UNTRAINED):
        choices.append(("the model given to the page" if extra == GIVEN else extra, extra))
    if not is_model(model):  # a ready predictor's own network, not in the registry
        return choices
    cfg = get_pretrained_cfg(model)
    if cfg.hf_hub_id:
        choices.append((f"published ({cfg.name})", PUBLISHED))
    choices.append(("untrained (random weights)", UNTRAINED))
    return choices


def weights_key(weights: str | os.PathLike[str] | None) -> str:
    """A weights choice as the cache keys it: ``None`` and ``""`` are :data:`PUBLISHED`; paths are stripped.

    Example:
        >>> weights_key(None), weights_key(" runs/hub ")
        ('published', 'runs/hub')
    """
    if weights is None or str(weights).strip() in ("", PUBLISHED):
        return PUBLISHED
    return os.fspath(weights).strip()


class ModelCache:
    """One :class:`~inharmony.inference.Predictor` per ``(model, weights)``, built on first use.

    The most recently used ``capacity`` predictors are kept (each holds a network: ~200 MB for MadisNet);
    loading is serialised, so two requests for a new pair load it once.

    Args:
        precision: Passed to :class:`~inharmony.inference.Predictor` (``"auto"``: the fastest on the device;
            ``"fp32"``: BatchNorm folded, channels_last, within 1e-5 of eager; ``None``: eager).
        device: Where the networks run (default: CUDA if available, else CPU).
        capacity: How many loaded models to keep.
        loader: ``loader(model, weights) -> nn.Module`` for weights other than :data:`UNTRAINED`
            (default :func:`inharmony.load`).
    """

    def __init__(
        self,
        precision: str | None = "auto",
        device: str | torch.device | None = None,
        capacity: int = 2,
        loader: Callable[[str, str | None], torch.nn.Module] | None = None,
    ) -> None:
        self.precision = precision
        self.device = device
        self.capacity = max(1, capacity)
        self._loader = loader
        self._items: OrderedDict[tuple[str, str], Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self._pinned: tuple[str, str] | None = None
        self.loads = 0
        """How many networks were loaded (a cache hit does not count)."""

    def put(self, model: str, weights: str, predictor: Predictor) -> None:
        """Hold a ready ``predictor`` under ``(model, weights)`` (it is never evicted by loads of others)."""
        with self._lock:
            self._items[(model, weights)] = predictor
            self._pinned = (model, weights)

    def has(self, model: str, weights: str | os.PathLike[str] | None = None) -> bool:
        """Whether ``(model, weights)`` is loaded."""
        return (model, weights_key(weights)) in self._items

    def get(self, model: str, weights: str | os.PathLike[str] | None = None) -> Predictor:
        """The predictor for ``model`` with ``weights``, loading it on first use.

        Raises:
            InharmonyError: unknown model, unusable weights, published weights out of reach (the message
                says what was tried and how to work offline).
            FileNotFoundError: ``weights`` names nothing.
        """
        key = (model, weights_key(weights))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            if key[1] == GIVEN:
                raise InharmonyError(
                    f"'{GIVEN}' weights belong to the model the page was started with, not {model!r}; "
                    f"choose '{PUBLISHED}', '{UNTRAINED}' or a weights path"
                )
            predictor = Predictor(self._network(*key), device=self.device, batch_size=1, precision=self.precision)
            self.loads += 1
            self._items[key] = predictor
            evictable = [k for k in self._items if k not in (key, self._pinned)]  # oldest first
            for old in evictable[: max(0, len(self._items) - self.capacity)]:
                del self._items[old]
            return predictor

    def _network(self, model: str, weights: str) -> torch.nn.Module:
        if weights == UNTRAINED:
            return create_model(model).eval()  # never downloads: pretrained=False, backbone off by default
        from ..models import load

        loader = self._loader or load
        return loader(model, None if weights == PUBLISHED else weights)
