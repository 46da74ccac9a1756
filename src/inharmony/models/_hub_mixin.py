"""``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` on the models, without importing the Hub here.

``inharmony.models`` imports only torch, timm and the standard library, so the architectures
cannot inherit ``huggingface_hub.PyTorchModelHubMixin`` directly. :class:`HubMixin` is the thin
stand-in: it records the constructor arguments when a model is created (the same way the Hub
mixin does, in ``__new__``, so ``__init__`` and its signature stay untouched for jsonargparse)
and its methods import :mod:`inharmony.hub` only when called. All the Hub logic (config.json,
safetensors, model card, upload) lives in :mod:`inharmony.hub`.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

__all__ = ["HubMixin", "init_kwargs"]

_KWARGS_ATTR = "_hub_init_kwargs"


class HubMixin:
    """Mixin for ``nn.Module`` architectures: Hub-format save, load and upload.

    Put it first in the bases (``class DIRL(HubMixin, nn.Module)``). The constructor arguments
    become ``config.json``'s ``model_args``; see :func:`inharmony.hub.save_pretrained`.

    Example:
        >>> model = inharmony.create_model("dirl_resnet18")  # doctest: +SKIP
        >>> model.save_pretrained("my_dirl", metrics={"ap": 80.0})  # doctest: +SKIP
        >>> same = type(model).from_pretrained("my_dirl")  # doctest: +SKIP
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        instance = super().__new__(cls)
        object.__setattr__(instance, _KWARGS_ATTR, _bind_init_arguments(cls, args, kwargs))
        return instance

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> Any:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card to a folder.

        Keyword arguments go to :func:`inharmony.hub.save_pretrained` (``metrics``, ``model_card_kwargs``,
        ``push_to_hub``, ``repo_id``, ...).
        """
        from ..hub import save_pretrained

        return save_pretrained(self, save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Upload the model (weights, config, model card) to ``repo_id``; see :func:`inharmony.hub.push_to_hub`."""
        from ..hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> Any:
        """Load a folder or Hub repository written by :meth:`save_pretrained`; it must hold this class."""
        from ..hub import from_pretrained

        return from_pretrained(pretrained_model_name_or_path, expected_class=cls, **kwargs)


def _bind_init_arguments(cls: type, args: tuple, kwargs: dict) -> dict[str, Any] | None:
    """Constructor arguments (defaults filled in) as a flat dict, or ``None`` if they do not bind."""
    signature = inspect.signature(cls.__init__)
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError:
        return None  # __init__ raises the real error right after
    bound.apply_defaults()
    captured: dict[str, Any] = {}
    for name, value in list(bound.arguments.items())[1:]:
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            captured.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                return None  # positional extras have no name to record
        else:
            captured[name] = value
    return captured


def init_kwargs(model: Any) -> dict[str, Any] | None:
    """The constructor arguments recorded by :class:`HubMixin`, or ``None`` if the model has none."""
    recorded = model.__dict__.get(_KWARGS_ATTR)
    return dict(recorded) if recorded is not None else None
