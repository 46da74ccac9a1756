"""Architectures as plain ``torch.nn.Module``s, their registry, their Hub format, and all weight loading.

Imports only torch, timm, huggingface_hub, safetensors and the standard library (never the
training stack): a ``torch.hub`` user needs nothing else. Weights reach a model in one of three
ways, all from here: ``create_model(name, pretrained=True)`` (the tag's published files, in the Hub
format or a foreign one its :class:`PretrainedCfg` names), :func:`from_pretrained` (a Hub folder or
id) and :func:`load` (whatever you have, including the authors' checkpoints that
:mod:`inharmony.models.converters` reads).

Example:
    >>> from inharmony.models import create_model, list_models
    >>> "dirl" in list_models()
    True
    >>> model = create_model("dirl_resnet18")
"""

import importlib as _importlib
import pkgutil as _pkgutil

from ..errors import HubConfigError, PretrainedWeightsUnavailableError
from ._builder import WEIGHTS_NAME, create_model, load_pretrained_weights
from ._checkpoint import load_state_dict_file, load_state_dict_strict, read_state_dict
from ._download import download_hub_file, ensure_hub_file_available, hub_cache_dir
from ._facts import ModelFacts, model_facts, models_markdown, takes_mask
from ._hub import (
    CONFIG_NAME,
    FORMAT_VERSION,
    HubMixin,
    from_pretrained,
    looks_like_hub_id,
    push_to_hub,
    save_pretrained,
)
from ._hub_config import build_config
from ._input import check_input, check_outputs
from ._load import WeightSource, describe_weights, guess_architectures, identify_weights, load, weight_sources
from ._registry import (
    HUB_FORMAT,
    Bound,
    PretrainedCfg,
    check_model_args,
    get_entrypoint,
    get_pretrained_cfg,
    is_model,
    list_models,
    list_pretrained,
    register_model,
    split_model_name,
)
from ._torch_hub import torch_hub_entrypoints
from .dirl import DIRL
from .encoders import ResNetEncoder
from .rsrnet import RSRNet

# Every other public module of this package is a model family that registers its entry points on import:
# adding a model is adding its file. The converters import this package, so they are imported when first
# needed (create_model(pretrained=True) of a foreign format, load), never while it initialises.
_NOT_FAMILIES = {"encoders", "converters", "model_card"}
for _module in _pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name not in _NOT_FAMILIES:
        _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "CONFIG_NAME",
    "DIRL",
    "FORMAT_VERSION",
    "HUB_FORMAT",
    "WEIGHTS_NAME",
    "Bound",
    "HubConfigError",
    "HubMixin",
    "ModelFacts",
    "PretrainedCfg",
    "PretrainedWeightsUnavailableError",
    "RSRNet",
    "ResNetEncoder",
    "WeightSource",
    "build_config",
    "check_input",
    "check_model_args",
    "check_outputs",
    "create_model",
    "describe_weights",
    "download_hub_file",
    "ensure_hub_file_available",
    "from_pretrained",
    "get_entrypoint",
    "get_pretrained_cfg",
    "guess_architectures",
    "hub_cache_dir",
    "identify_weights",
    "is_model",
    "list_models",
    "list_pretrained",
    "load",
    "load_pretrained_weights",
    "load_state_dict_file",
    "load_state_dict_strict",
    "looks_like_hub_id",
    "model_facts",
    "models_markdown",
    "push_to_hub",
    "read_state_dict",
    "register_model",
    "save_pretrained",
    "split_model_name",
    "takes_mask",
    "torch_hub_entrypoints",
    "weight_sources",
]
