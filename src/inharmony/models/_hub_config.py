"""``config.json`` of the Hub format: written from a model, read back and validated.

``{"architecture", "model_args", "pretrained_cfg", "inharmony_version", "format_version"}``:
``model_args`` are the recorded constructor arguments with the registry's ``download_args`` forced
off (the weights are in ``model.safetensors``; loading never downloads), ``pretrained_cfg`` the
registry entry (with the model's measured metrics when given). Reading checks the format version
and the architecture, and says when a folder comes from a newer inharmony.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import HubConfigError, UnknownModelError
from ..version import __version__
from ._builder import create_model
from ._registry import (
    PretrainedCfg,
    check_model_args,
    get_pretrained_cfg,
    is_model,
    list_models,
    split_model_name,
)

__all__ = ["CONFIG_NAME", "FORMAT_VERSION", "build_config", "read_config", "without_downloads"]

CONFIG_NAME = "config.json"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 1 << 20
"""Largest ``config.json`` read: save_pretrained writes a few kB."""


def build_config(
    model: nn.Module,
    model_name: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | list | None = None,
) -> dict[str, Any]:
    """The ``config.json`` dict for ``model``.

    The constructor arguments come from ``model_kwargs`` if given, else from those recorded when
    the model was built. Either way the model is rebuilt from them on the ``meta`` device and its
    parameter names and shapes are compared with this model's, so a config that would not load
    back is caught at save time.

    Raises:
        ValueError: the architecture is unknown, the arguments were not recorded, an argument is
            not JSON-serialisable, or the arguments do not rebuild this model.
    """
    architecture = _architecture_of(model, model_name)
    recorded = getattr(model, "_hub_mixin_config", None)
    if model_kwargs is None and not isinstance(recorded, Mapping):
        # Defaults would be a guess: arguments such as RSRNet's `iterations` change the outputs but
        # not the parameters, so no check could catch a wrong guess.
        raise ValueError(
            f"the constructor arguments of this {type(model).__name__} were not recorded; pass "
            f"model_kwargs={{...}} with the arguments it was built with ({{}} for {architecture!r}'s defaults)"
        )
    source = "model_kwargs" if model_kwargs is not None else "recorded"
    registry_cfg = get_pretrained_cfg(architecture)
    args = without_downloads(dict(model_kwargs if model_kwargs is not None else recorded), registry_cfg)
    try:
        json.dumps(args)
    except TypeError as err:
        raise ValueError(f"constructor arguments of {architecture!r} are not JSON-serialisable: {err}") from err
    with torch.device("meta"):
        expected = _shapes(create_model(architecture, **args))
    actual = _shapes(model)
    if expected != actual:
        differing = sorted(set(expected) ^ set(actual)) or [k for k in expected if expected[k] != actual.get(k)]
        hint = "check model_name and model_kwargs" if source == "model_kwargs" else "pass model_kwargs={...}"
        raise ValueError(
            f"{architecture!r} built with {args} ({source}) does not have this model's parameters "
            f"(first differences: {', '.join(differing[:5])}); {hint}"
        )
    own_cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(own_cfg, PretrainedCfg) and own_cfg.architecture == architecture:
        registry_cfg = own_cfg
    cfg = registry_cfg.to_dict()
    if metrics:
        from .model_card import normalise_metrics  # the card's tables (inharmony.metrics); only when saving

        overall = normalise_metrics(metrics).get("All")
        if overall:
            cfg["metrics"] = overall
    return {
        "architecture": architecture,
        "model_args": args,
        "pretrained_cfg": cfg,
        "inharmony_version": __version__,
        "format_version": FORMAT_VERSION,
    }


def _version(text: str) -> Any:
    from packaging.version import InvalidVersion, Version  # packaging: a dependency of huggingface_hub

    try:
        return Version(text)
    except InvalidVersion:
        return None


def read_config(path: str) -> dict[str, Any]:
    """Read and validate a ``config.json``; raise :class:`HubConfigError` saying what to do.

    Every constructor argument in ``model_args`` and every field of ``pretrained_cfg`` is checked against the
    model's declared bounds (:func:`~inharmony.models.check_model_args`, :class:`PretrainedCfg`) here, before
    the weights are downloaded or the network is built: the message names the file and the field.
    """
    size = os.path.getsize(path)
    if size > MAX_CONFIG_BYTES:
        raise HubConfigError(
            f"{path} is {size:,} bytes; a config.json written by save_pretrained is a few kB (at most "
            f"{MAX_CONFIG_BYTES:,} bytes are read): it is not inharmony's config.json, or it is damaged"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # ValueError: also a 5000-digit number
        raise HubConfigError(f"{path} is not valid JSON: {type(err).__name__}: {str(err)[:200]}") from err
    if not isinstance(config, dict) or "architecture" not in config:
        raise HubConfigError(
            f"{path} is not an inharmony config.json (no 'architecture' key); was the folder written by "
            "inharmony's save_pretrained?"
        )
    written_by = str(config.get("inharmony_version", "0"))
    theirs, ours = _version(written_by), _version(__version__)
    newer = theirs is not None and ours is not None and theirs > ours
    upgrade = (
        f"{path} was written by inharmony {written_by}, newer than the installed {__version__}; "
        "upgrade with `pip install -U inharmony`"
    )
    format_version = config.get("format_version", 1)
    if not isinstance(format_version, int) or isinstance(format_version, bool) or format_version < 1:
        raise HubConfigError(f"{path}: 'format_version' must be a positive integer, got {format_version!r}")
    if format_version > FORMAT_VERSION:
        if newer:
            raise HubConfigError(f"{upgrade} (config format {format_version} > {FORMAT_VERSION})")
        # The version string does not explain it (a development build may write a new format under the
        # same number): name the two formats and what the file claims, never "0.1.0 newer than 0.1.0".
        raise HubConfigError(
            f"{path} uses config format {format_version}, newer than the format {FORMAT_VERSION} that the "
            f"installed inharmony {__version__} reads (the file says it was written by inharmony {written_by}); "
            "upgrade with `pip install -U inharmony`"
        )
    if not isinstance(config["architecture"], str) or not is_model(config["architecture"]):
        raise HubConfigError(
            (upgrade + ": it holds" if newer else f"{path} holds")
            + f" architecture {config['architecture']!r}, which this installation does not know "
            f"(registered: {', '.join(list_models())})"
        )
    model_args = config.get("model_args", {})
    if not isinstance(model_args, dict):
        raise HubConfigError(f"{path}: 'model_args' must be an object, got {type(model_args).__name__}")
    stored_cfg = config.get("pretrained_cfg", {})
    if not isinstance(stored_cfg, dict):
        raise HubConfigError(f"{path}: 'pretrained_cfg' must be an object, got {type(stored_cfg).__name__}")
    try:
        registry_cfg = get_pretrained_cfg(config["architecture"])
    except UnknownModelError as err:
        raise HubConfigError(f"{path}: {err}") from None
    model_args = without_downloads(dict(model_args), registry_cfg)
    edited = "; the file is damaged or was edited: save the model again with save_pretrained"
    try:
        check_model_args(config["architecture"], model_args)
    except (TypeError, ValueError) as err:
        raise HubConfigError(f"{path}: model_args: {err}{edited}") from None
    try:
        PretrainedCfg.from_stored(stored_cfg, registry_cfg)
    except (TypeError, ValueError) as err:
        raise HubConfigError(f"{path}: pretrained_cfg: {err}{edited}") from None
    config = dict(config, model_args=model_args)
    config["_newer"] = upgrade if newer else None  # explains a later failure; never saved
    return config


def _architecture_of(model: nn.Module, model_name: str | None) -> str:
    if model_name is not None:
        architecture, _ = split_model_name(model_name)
        if not is_model(architecture):
            raise UnknownModelError(
                f"unknown model {architecture!r}; registered models: {', '.join(list_models())}"
            )
        return architecture
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, PretrainedCfg):
        return cfg.architecture
    guess = type(model).__name__.lower()
    if is_model(guess):
        return guess
    raise ValueError(
        f"cannot tell which registered model a {type(model).__name__} is; pass model_name=... "
        f"(one of {', '.join(list_models())})"
    )


def without_downloads(args: dict[str, Any], cfg: PretrainedCfg) -> dict[str, Any]:
    for name in cfg.download_args:
        if args.get(name):
            args[name] = False  # the weights are in model.safetensors; never download on load
    return args


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
