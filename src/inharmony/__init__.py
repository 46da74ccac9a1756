"""inharmony: inharmonious region localization (DIRL, RSRNet) in PyTorch.

Example:
    >>> import inharmony
    >>> inharmony.list_models()[:1]
    ['dirl']
    >>> model = inharmony.create_model("dirl").eval()

The inference and hub entry points (``load``, ``from_pretrained``, ``Predictor``) are imported on
first use, so ``import inharmony`` stays light (torch and timm only).
"""

from typing import Any

from .models import create_model, get_pretrained_cfg, list_models, list_pretrained
from .models._registry import set_pretrained_loader as _set_pretrained_loader

__version__ = "0.1.0"

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
_LAZY = {
    "Predictor": ("inharmony.inference", "Predictor"),
    "from_pretrained": ("inharmony.hub", "from_pretrained"),
    "load": ("inharmony.hub", "load"),
}


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


def _hub_weights_loader(model, cfg) -> None:
    # create_model(pretrained=True) on a tag with a hub id: hand over to the hub layer, imported now.
    from .hub import _load_registry_weights

    _load_registry_weights(model, cfg)


_set_pretrained_loader(_hub_weights_loader)
