"""inharmony: find, score and fix the inharmonious region of a composite photo, in PyTorch.

Localizers (DIRL, RSRNet, MadisNet, UNet) find the region whose colour or lighting does not match the
rest, harmonizers (PCTNet, S2AM) fix it, and BargainNet scores how harmonious a photo is; with the
iHarmony4 data, the papers' metrics, Lightning training and a weight hub.

Example:
    >>> import inharmony
    >>> "dirl" in inharmony.list_models(task="localization")
    True
    >>> model = inharmony.create_model("dirl").eval()

The names below are imported on first use (PEP 562), so ``import inharmony`` (and with it
``inharmony --help``) costs nothing until a model is asked for.
"""

from typing import Any

from .version import __version__

__all__ = [
    "Harmonizer",
    "HarmonyScorer",
    "Predictor",
    "__version__",
    "create_model",
    "from_pretrained",
    "get_pretrained_cfg",
    "list_models",
    "list_pretrained",
    "load",
]

# name -> module that defines it, imported on first access.
_LAZY = {
    "HarmonyScorer": "inharmony.inference.scorer",
    "Harmonizer": "inharmony.inference.harmonizer",
    "Predictor": "inharmony.inference",
    "create_model": "inharmony.models",
    "from_pretrained": "inharmony.models",
    "get_pretrained_cfg": "inharmony.models",
    "list_models": "inharmony.models",
    "list_pretrained": "inharmony.models",
    "load": "inharmony.models",
}


def __getattr__(name: str) -> Any:
    import importlib.util

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")  # inharmony.models etc. without an explicit import
    else:
        raise AttributeError(f"module 'inharmony' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
