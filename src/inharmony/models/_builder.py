"""``create_model``: build a registered architecture, then load its weights (never inside ``__init__``)."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from ..errors import PretrainedWeightsUnavailableError
from ._checkpoint import load_state_dict_file, load_state_dict_strict, read_state_dict
from ._download import download_hub_file
from ._registry import HUB_FORMAT, PretrainedCfg, check_model_args, get_entrypoint, get_pretrained_cfg

__all__ = ["WEIGHTS_NAME", "create_model", "load_pretrained_weights"]

#: File name of the weights in a Hub folder (the name PyTorchModelHubMixin writes).
WEIGHTS_NAME = "model.safetensors"


def load_pretrained_weights(model: nn.Module, cfg: PretrainedCfg) -> None:
    """Fill ``model`` with the published weights ``cfg`` points at (downloaded once, then cached).

    Files in the Hub format are loaded here; files in a foreign format (``cfg.weights_format`` names a
    converter, e.g. libcom's MadisNet ``.pth``) by that converter's ``load_published``.

    Raises:
        PretrainedWeightsUnavailableError: the tag has no published weights; the message lists the
            local alternatives.
        HubUnreachableError: offline and not cached, within a second.
    """
    if cfg.hf_hub_id is None:
        raise PretrainedWeightsUnavailableError(
            f"no published weights for {cfg.name!r} yet. Load weights you have instead: "
            f"inharmony.from_pretrained('path/to/hub_folder'), "
            f"inharmony.load({cfg.architecture!r}, weights='path/to/weights') (a hub folder, a state dict, "
            f"a Lightning .ckpt or the authors' checkpoint folder), or "
            f"create_model({cfg.architecture!r}, checkpoint_path='model.safetensors')."
        )
    if cfg.weights_format != HUB_FORMAT:
        # The converters build models through this package, so they are imported when first needed.
        from .converters import get_converter

        converter = get_converter(cfg.weights_format)
        if converter.load_published is None:
            raise ValueError(f"{cfg.name!r} publishes {cfg.weights_format!r} files, which that converter cannot load")
        converter.load_published(model, cfg)
        return
    path = download_hub_file(
        cfg.hf_hub_id,
        WEIGHTS_NAME,
        offline_hint=f"load a local copy: inharmony.load({cfg.architecture!r}, weights='path/to/folder')",
        revision=cfg.revision,
    )
    load_state_dict_strict(model, read_state_dict(path), f"{cfg.hf_hub_id}@{cfg.revision}/{WEIGHTS_NAME}")


def create_model(
    model_name: str,
    pretrained: bool = False,
    checkpoint_path: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model, optionally with weights.

    Args:
        model_name: ``"dirl"`` or ``"dirl.<tag>"``; see :func:`list_models` and :func:`list_pretrained`.
        pretrained: Load the published weights of the tag. Never the default: building a model
            must not download anything unless asked to.
        checkpoint_path: A local ``.safetensors`` or ``.pt``/``.pth`` state dict to load instead.
        **kwargs: Constructor arguments of the architecture, e.g. ``pretrained_backbone=True``.

    Returns:
        The model, with ``model.pretrained_cfg`` set. It is in training mode, as in timm.

    Raises:
        UnknownModelError: the name or tag is not registered (the message lists the known ones).
        TypeError: an argument the architecture does not take.
        ValueError: an argument of the wrong type or outside its sane range (see
            :func:`~inharmony.models.check_model_args`), refused before anything is allocated.

    Example:
        >>> import inharmony
        >>> model = inharmony.create_model("dirl")
        >>> model.pretrained_cfg.input_size
        (3, 224, 224)
    """
    if pretrained and checkpoint_path is not None:
        raise ValueError("give either pretrained=True or checkpoint_path, not both")
    entrypoint = get_entrypoint(model_name)
    cfg = get_pretrained_cfg(model_name)
    check_model_args(model_name, kwargs)
    model = entrypoint(**kwargs)
    model.pretrained_cfg = cfg
    if pretrained:
        load_pretrained_weights(model, cfg)
    elif checkpoint_path is not None:
        load_state_dict_file(model, checkpoint_path)
    return model
