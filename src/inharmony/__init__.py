"""inharmony: inharmonious region localization (DIRL, RSRNet) in PyTorch.

Example:
    >>> import inharmony
    >>> inharmony.list_models()[:1]
    ['dirl']
    >>> model = inharmony.create_model("dirl").eval()

The names below are imported on first use (PEP 562), so ``import inharmony`` (and with it
``inharmony --help``) costs nothing until a model is asked for.
"""

from typing import Any

from .version import __version__

__all__ = [
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
    "Predictor": "inharmony.inference",
    "create_model": "inharmony.models",
    "from_pretrained": "inharmony.models",
    "get_pretrained_cfg": "inharmony.models",
    "list_models": "inharmony.models",
    "list_pretrained": "inharmony.models",
    "load": "inharmony.hub",
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
