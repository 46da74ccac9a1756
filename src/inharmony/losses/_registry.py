"""Which loss trains which architecture: one table, filled by :func:`register_loss` next to each loss class.

The models never name their losses (``inharmony.models`` knows nothing of training); each loss family
names the architectures it serves, the way :func:`inharmony.models.register_model` names a model.

Example:
    >>> from inharmony.losses import loss_for_model
    >>> type(loss_for_model("rsrnet.ihd_le50")).__name__  # a weight tag resolves to its architecture
    'RSRNetLoss'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from ..errors import UnknownModelError
from ..models import get_pretrained_cfg

__all__ = ["get_loss_class", "loss_for_model", "register_loss"]

LossClass = TypeVar("LossClass", bound=type[nn.Module])

_LOSSES: dict[str, type[nn.Module]] = {}
"""Architecture name (``PretrainedCfg.architecture``) → the loss class it trains with."""


def register_loss(*architectures: str) -> Callable[[LossClass], LossClass]:
    """Class decorator: ``cls`` is the default training loss of each named architecture.

    A class may serve several architectures (and be registered more than once); an architecture has
    one loss. The class must build with no arguments (its defaults are the paper's recipe).

    Args:
        *architectures: Registered model names without a weight tag, e.g. ``"dirl", "dirl_resnet18"``.

    Raises:
        ValueError: no name given, or an architecture that already has a loss.

    Example:
        >>> from torch import nn
        >>> @register_loss("my_localizer")  # doctest: +SKIP
        ... class MyLoss(nn.Module):
        ...     def forward(self, outputs, target):
        ...         return {"loss": (outputs["mask"] - target).abs().mean()}
        >>> register_loss("my_other_localizer")(MaskLoss)  # an existing class  # doctest: +SKIP
    """
    if not architectures or not all(isinstance(a, str) and a and "." not in a for a in architectures):
        raise ValueError(f"register_loss takes one or more architecture names (no weight tag), got {architectures!r}")

    def decorate(cls: LossClass) -> LossClass:
        taken = {a: _LOSSES[a].__name__ for a in architectures if a in _LOSSES and _LOSSES[a] is not cls}
        if taken:
            raise ValueError(f"{cls.__name__}: these architectures already have a loss: {taken}")
        for architecture in architectures:
            _LOSSES[architecture] = cls
        return cls

    return decorate


def get_loss_class(name: str) -> type[nn.Module]:
    """The loss class registered for model ``name`` (a registered name, with or without a weight tag).

    Raises:
        UnknownModelError: ``name`` is not a registered model.
        ValueError: the model has no registered loss.

    Example:
        >>> get_loss_class("dirl_resnet18").__name__
        'DIRLLoss'
    """
    try:
        architecture = get_pretrained_cfg(name).architecture
    except UnknownModelError as err:
        raise UnknownModelError(f"no default loss for {name!r}: {err}. Pass a loss module explicitly.") from err
    loss_class = _LOSSES.get(architecture)
    if loss_class is None:
        raise ValueError(
            f"model {name!r} has no default loss: register one with inharmony.losses.register_loss"
            f"({architecture!r}) or pass a loss module"
        )
    return loss_class


def loss_for_model(name: str, **kwargs: Any) -> nn.Module:
    """The default loss recipe of a registered model, built from its registered class.

    Args:
        name: Registered model name (``"dirl"``, ``"rsrnet.ihd_le50"``, ...).
        **kwargs: Constructor arguments of that loss class, e.g. ``decay=0.9`` for
            :class:`~inharmony.losses.RSRNetLoss` or ``vgg_weights=False`` to build MadisNet's loss offline.

    Example:
        >>> type(loss_for_model("dirl_resnet18")).__name__
        'DIRLLoss'
        >>> loss_for_model("rsrnet", decay=0.5).decay
        0.5
    """
    return get_loss_class(name)(**kwargs)
