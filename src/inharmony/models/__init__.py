"""Architectures as plain ``torch.nn.Module``s. Imports only torch, timm and the standard library."""

from . import dirl as _dirl  # noqa: F401  (registers the DIRL entry points)
from ._registry import (
    PretrainedCfg,
    PretrainedWeightsUnavailableError,
    create_model,
    get_pretrained_cfg,
    is_model,
    list_models,
    list_pretrained,
    register_model,
)
from .dirl import DIRL
from .encoders import ResNetEncoder

__all__ = [
    "DIRL",
    "PretrainedCfg",
    "PretrainedWeightsUnavailableError",
    "ResNetEncoder",
    "create_model",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "register_model",
]
