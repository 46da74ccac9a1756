"""Load a model from whatever weights you have: :func:`load`.

:func:`load` walks an ordered table of weight sources, each a ``(detect, load)`` pair, and uses the
first whose ``detect`` accepts the path: the published weights of a tag, a Hub-format folder,
each registered converter of a foreign format (:mod:`inharmony.converters`: the authors' DIRL
folder, a Lightning ``.ckpt``, ...), a plain state-dict file, a Hub id. A new format is a
converter module; this file does not change.

The Hub format itself (``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``) belongs to every
architecture through :class:`inharmony.models.HubMixin`; the functions of the same names here are
kept for code written against earlier versions.

Example:
    >>> import inharmony
    >>> model = inharmony.load("dirl", weights="runs/dirl/hub")  # doctest: +SKIP
    >>> model = inharmony.load("dirl", weights="DIRL/checkpoints")  # the authors' files  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .converters import list_converters, load_lightning_checkpoint
from .errors import CheckpointError, HubConfigError
from .models import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    HubMixin,
    create_model,
    from_pretrained,
    get_pretrained_cfg,
    list_models,
    load_state_dict_file,
    load_state_dict_strict,
    looks_like_hub_id,
    split_model_name,
)
from .models import get_entrypoint as _check_registered  # raises UnknownModelError listing the models

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "HubConfigError",
    "WeightSource",
    "build_config",
    "from_pretrained",
    "load",
    "load_lightning_checkpoint",
    "push_to_hub",
    "save_pretrained",
    "torch_hub_entrypoints",
    "weight_sources",
]


@dataclass(frozen=True)
class WeightSource:
    """One row of :func:`load`'s table.

    Attributes:
        name: What the source is, for messages.
        detect: ``detect(path) -> bool``.
        load: ``load(path, model_name, options) -> nn.Module``; ``options`` holds ``revision``,
            ``trust_checkpoint`` and the constructor ``model_kwargs``.
    """

    name: str
    detect: Callable[[str], bool]
    load: Callable[[str, str, Mapping[str, Any]], nn.Module]


def _is_hub_folder(source: str) -> bool:
    return os.path.isdir(source) and os.path.isfile(os.path.join(source, CONFIG_NAME))


def _from_hub(source: str, model: str, options: Mapping[str, Any]) -> nn.Module:
    return from_pretrained(source, revision=options.get("revision"), expected_architecture=model)


def _from_state_dict(source: str, model: str, options: Mapping[str, Any]) -> nn.Module:
    net = create_model(model, **options.get("model_kwargs", {}))
    load_state_dict_file(net, source, trust=bool(options.get("trust_checkpoint", False)))
    return net


def _apply_model_kwargs(net: nn.Module, model_kwargs: Mapping[str, Any], source: str) -> nn.Module:
    """``net`` rebuilt with ``model_kwargs`` over its recorded constructor arguments, same weights.

    Arguments that leave the parameters unchanged (RSRNet's ``iterations``, a threshold) apply; one that
    changes them (another backbone, other widths) cannot fit the weights and is refused, naming the value
    the weights were saved with.
    """
    recorded = dict(getattr(net, "_hub_mixin_config", None) or {})
    cfg = getattr(net, "pretrained_cfg", None)
    if cfg is None or not recorded:
        raise ValueError(
            f"constructor arguments ({', '.join(model_kwargs)}) cannot be applied to the weights in {source}: "
            "their model did not record its arguments"
        )
    args = {**recorded, **model_kwargs}
    for flag in get_pretrained_cfg(cfg.architecture).download_args:
        if args.get(flag):
            args[flag] = False  # the loaded weights replace any downloaded initialisation
    try:
        rebuilt = create_model(cfg.architecture, **args)
    except TypeError as err:
        raise ValueError(f"{cfg.architecture!r} does not take {', '.join(model_kwargs)}: {err}") from err
    try:
        load_state_dict_strict(rebuilt, net.state_dict(), source)
    except CheckpointError as err:
        saved = ", ".join(f"{k}={recorded[k]!r}" for k in model_kwargs if k in recorded)
        asked = ", ".join(f"{k}={v!r}" for k, v in model_kwargs.items())
        raise CheckpointError(
            f"the weights in {source} were saved with {saved or 'other arguments'}; {asked} changes the "
            f"network's parameters, so they cannot be used with it. Drop the argument, or use weights trained "
            f"with it ({str(err).split(': ', 1)[-1][:200]})"
        ) from err
    rebuilt.pretrained_cfg = cfg
    return rebuilt


def weight_sources() -> list[WeightSource]:
    """The table :func:`load` walks, in order (the converters as registered now)."""
    converters = [
        WeightSource(
            c.name,
            c.detect,
            lambda source, model, options, c=c: c.load(
                source, split_model_name(model)[0], trust=options.get("trust_checkpoint", False)
            ),
        )
        for c in list_converters()
    ]
    return [
        WeightSource("hub folder (config.json + model.safetensors)", _is_hub_folder, _from_hub),
        *converters,
        WeightSource("state-dict file (.safetensors, .pth, .pt)", os.path.isfile, _from_state_dict),
        WeightSource("Hugging Face Hub id (org/name)", looks_like_hub_id, _from_hub),
    ]


def load(
    model: str = "dirl",
    weights: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    device: str | torch.device | None = None,
    trust_checkpoint: bool = False,
    **model_kwargs: Any,
) -> nn.Module:
    """A ready-to-run model from whatever weights you have.

    Args:
        model: Registered name, e.g. ``"dirl"`` or ``"dirl.ihd_le50"``.
        weights: ``None`` for the tag's published weights; a hub folder or Hub id (``org/name``);
            a ``.safetensors`` / ``.pt`` / ``.pth`` state dict; a Lightning ``.ckpt`` from ``inharmony fit``;
            or a format of :func:`inharmony.converters.list_converters` (the authors' DIRL folder, ...).
        revision: Hub revision when ``weights`` is a Hub id.
        device: Where to put the model (default CPU).
        trust_checkpoint: Allow pickled objects in a ``.ckpt`` you made yourself.
        **model_kwargs: Constructor arguments. With a plain state dict they build the network; with weights
            that record their arguments (a hub folder, a ``.ckpt``, a converted format) they replace the
            recorded ones when the weights still fit (e.g. RSRNet's ``iterations=3``), else a
            :class:`~inharmony.errors.CheckpointError` names the value the weights were saved with.

    Returns:
        The model in eval mode.

    Example:
        >>> model = inharmony.load("dirl", weights="runs/dirl/hub")  # doctest: +SKIP
    """
    _check_registered(model)
    if weights is None:
        net = create_model(model, pretrained=True, **model_kwargs)
    else:
        source = os.fspath(weights)
        options = {"revision": revision, "trust_checkpoint": trust_checkpoint, "model_kwargs": model_kwargs}
        table = weight_sources()
        row = next((r for r in table if r.detect(source)), None)
        if row is None:
            kinds = "; ".join(r.name for r in table)
            what = "folder holds none of" if os.path.isdir(source) else "is not a file, a folder or a Hub id:"
            raise FileNotFoundError(f"weights not found: {source} {what} {kinds}")
        net = row.load(source, model, options)
        if model_kwargs and row.load is not _from_state_dict:
            # A hub folder, a .ckpt or a converted format builds its network from recorded arguments:
            # apply the caller's on top rather than silently ignoring them.
            net = _apply_model_kwargs(net, model_kwargs, source)
    net = net.eval()
    return net.to(device) if device is not None else net


# ---------------------------------------------------------------------- torch.hub


def _hub_entrypoint(name: str) -> Callable[..., nn.Module]:
    def entrypoint(*, pretrained: bool = False, weights: str | os.PathLike[str] | None = None, **kwargs: Any):
        if pretrained and weights is not None:
            raise ValueError("give either pretrained=True or weights=..., not both")
        if not pretrained and weights is None:
            return create_model(name, **kwargs).eval()
        return load(name, weights=weights, **kwargs)

    cfg = get_pretrained_cfg(name)
    summary = (_check_registered(name).__doc__ or name).strip().splitlines()[0]
    scores = cfg.metrics
    reference = (
        f"Reference scores on the iHarmony4 le50 test split (paper): AP {scores['ap']} %, F1 {scores['f1']}, "
        f"IoU {scores['iou']} %."
        if {"ap", "f1", "iou"} <= set(scores)
        else "No reference scores."
    )
    published = "published" if cfg.hf_hub_id else "not published yet: raises a clear error; then pass weights"
    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = (
        f"{summary}\n\n{cfg.paper}\n{reference}\n\n"
        f"Args:\n"
        f"    pretrained: Load the published weights of {cfg.name!r} ({published}).\n"
        f"    weights: A hub folder, a Hub id, a state-dict file, a Lightning .ckpt or a converted format\n"
        f"        (see inharmony.load).\n"
        f"    **kwargs: Constructor arguments for a fresh model.\n\n"
        f"Returns:\n    The model in eval mode; input: ImageNet-normalised RGB (B, 3, H, W), H and W multiples "
        f"of {cfg.size_multiple}.\n"
    )
    return entrypoint


def torch_hub_entrypoints() -> dict[str, Callable[..., nn.Module]]:
    """One ``torch.hub`` entry point per registered model (``hubconf.py`` publishes exactly these).

    Each takes keyword-only ``pretrained`` and ``weights`` plus constructor arguments and returns the
    model in eval mode; its docstring (``torch.hub.help``) gives the paper and reference scores.

    Example:
        >>> import inharmony
        >>> sorted(torch_hub_entrypoints()) == inharmony.list_models()
        True
    """
    return {name: _hub_entrypoint(name) for name in list_models()}


# ---------------------------------------------------------------------- earlier API, kept


def _hub_model(model: nn.Module) -> HubMixin:
    if not isinstance(model, HubMixin):
        raise ValueError(
            f"the constructor arguments of this {type(model).__name__} were not recorded (its class does not "
            "inherit inharmony.models.HubMixin); build it with inharmony.create_model"
        )
    return model


def build_config(
    model: nn.Module,
    model_name: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``model.hub_config(...)``: the ``config.json`` dict (see :meth:`HubMixin.hub_config`)."""
    return _hub_model(model).hub_config(model_name, model_kwargs, metrics)


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike[str], **kwargs: Any) -> Path:
    """``model.save_pretrained(save_directory, **kwargs)`` (see :meth:`HubMixin.save_pretrained`)."""
    return _hub_model(model).save_pretrained(save_directory, **kwargs)


def push_to_hub(model: nn.Module, repo_id: str, **kwargs: Any) -> str:
    """``model.push_to_hub(repo_id, **kwargs)`` (see :meth:`HubMixin.push_to_hub`)."""
    return _hub_model(model).push_to_hub(repo_id, **kwargs)
