"""``torch.hub`` entry points, one per registered model: what ``hubconf.py`` publishes.

Example:
    >>> import torch
    >>> model = torch.hub.load("inharmony/inharmony", "dirl", pretrained=True)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch import nn

from ._builder import create_model
from ._load import load
from ._registry import get_entrypoint, get_pretrained_cfg, list_models, reference_scores_text

__all__ = ["torch_hub_entrypoints"]


def _docstring(name: str) -> str:
    cfg = get_pretrained_cfg(name)
    summary = (get_entrypoint(name).__doc__ or name).strip().splitlines()[0]
    where = "iHarmony4 le50 test split (paper)" if "ap" in cfg.metrics else "iHarmony4 test set (authors)"
    scores = reference_scores_text(cfg.metrics)
    reference = f"Reference scores on the {where}: {scores}." if scores else "No reference scores."
    published = "published" if cfg.hf_hub_id else "not published yet: raises a clear error; then pass weights"
    return (
        f"{summary}\n\n{cfg.paper}\n{reference}\n\n"
        f"Args:\n"
        f"    pretrained: Load the published weights of {cfg.name!r} ({published}).\n"
        f"    weights: A hub folder, a Hub id, a state-dict file, a Lightning .ckpt or a converted format\n"
        f"        (see inharmony.load).\n"
        f"    **kwargs: Constructor arguments for a fresh model.\n\n"
        f"Returns:\n    The model in eval mode; input: ImageNet-normalised RGB (B, 3, H, W), H and W multiples "
        f"of {cfg.size_multiple}.\n"
    )


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def entrypoint(*, pretrained: bool = False, weights: str | os.PathLike[str] | None = None, **kwargs: Any):
        if pretrained and weights is not None:
            raise ValueError("give either pretrained=True or weights=..., not both")
        if not pretrained and weights is None:
            return create_model(name, **kwargs).eval()
        return load(name, weights=weights, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = _docstring(name)
    return entrypoint


def torch_hub_entrypoints() -> dict[str, Callable[..., nn.Module]]:
    """One ``torch.hub`` entry point per registered model (``hubconf.py`` publishes exactly these).

    Each takes keyword-only ``pretrained`` and ``weights`` plus constructor arguments (and ``epoch`` for an
    authors' checkpoint folder, see :func:`inharmony.load`) and returns the model in eval mode; its docstring
    (``torch.hub.help``) gives the paper and reference scores.

    Example:
        >>> import inharmony
        >>> sorted(torch_hub_entrypoints()) == inharmony.list_models()
        True
    """
    return {name: _entrypoint(name) for name in list_models()}
