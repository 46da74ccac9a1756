"""inharmony: inharmonious region localization (DIRL, RSRNet) in PyTorch.

Example:
    >>> import inharmony
    >>> inharmony.list_models()[:1]
    ['dirl']
    >>> model = inharmony.create_model("dirl").eval()

``Predictor`` is imported on first use, so ``import inharmony`` stays light (torch, timm and
huggingface_hub only).
"""

from typing import Any

from .hub import load
from .models import create_model, from_pretrained, get_pretrained_cfg, list_models, list_pretrained
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

# name -> (module, attribute), imported on first access (PEP 562).
_LAZY = {"Predictor": ("inharmony.inference", "Predictor")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'inharmony' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
