"""Architectures as plain ``torch.nn.Module``s, their registry, and their Hub format.

Imports only torch, timm, huggingface_hub, safetensors and the standard library (never the
training stack): a ``torch.hub`` user needs nothing else.

Example:
    >>> from inharmony.models import create_model, list_models
    >>> "dirl" in list_models()
    True
    >>> model = create_model("dirl_resnet18")
"""

import importlib as _importlib
import pkgutil as _pkgutil

from ..errors import PretrainedWeightsUnavailableError
from ._builder import WEIGHTS_NAME, create_model, load_pretrained_weights
from ._checkpoint import load_state_dict_file, load_state_dict_strict, read_state_dict
from ._download import download_hub_file, ensure_hub_file_available
from ._hub import CONFIG_NAME, FORMAT_VERSION, HubMixin, from_pretrained, looks_like_hub_id
from ._input import check_input
from ._registry import (
    PretrainedCfg,
    get_entrypoint,
    get_pretrained_cfg,
    is_model,
    list_models,
    list_pretrained,
    register_model,
    split_model_name,
)
from .dirl import DIRL
from .encoders import ResNetEncoder
from .rsrnet import RSRNet

# Every public module of this package is a model family that registers its entry points on import:
# adding a model is adding its file.
for _module in _pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "encoders":
        _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "CONFIG_NAME",
    "DIRL",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "HubMixin",
    "PretrainedCfg",
    "PretrainedWeightsUnavailableError",
    "RSRNet",
    "ResNetEncoder",
    "check_input",
    "create_model",
    "download_hub_file",
    "ensure_hub_file_available",
    "from_pretrained",
    "get_entrypoint",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "load_pretrained_weights",
    "load_state_dict_file",
    "load_state_dict_strict",
    "looks_like_hub_id",
    "read_state_dict",
    "register_model",
    "split_model_name",
]
