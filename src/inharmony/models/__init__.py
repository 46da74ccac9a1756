"""Architectures as plain ``torch.nn.Module``s. Imports only torch, timm and the standard library."""

from . import dirl as _dirl  # noqa: F401  (registers the DIRL entry points)
from . import rsrnet as _rsrnet  # noqa: F401  (registers the RSRNet entry points)
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
from .rsrnet import RSRNet

__all__ = [
    "DIRL",
    "PretrainedCfg",
    "PretrainedWeightsUnavailableError",
    "RSRNet",
    "ResNetEncoder",
    "create_model",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "register_model",
]
