"""Checkpoints written by ``inharmony fit`` (Lightning ``.ckpt`` of a ``LocalizationTask``) → the bare network.

This is the one place that reads a Lightning checkpoint: :func:`inharmony.load`, ``inharmony push``
and the training commands' ``--ckpt_path`` check all call :func:`read_lightning_checkpoint`. It
needs only torch: the task saves the model name and ``model_kwargs`` as hyper-parameters and the
network's weights under ``"model.<key>"``, so no Lightning import is needed to rebuild it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ...errors import CheckpointError
from .. import create_model, get_pretrained_cfg, load_state_dict_strict, read_state_dict
from ._registry import Converter, register_converter

__all__ = ["is_lightning_checkpoint", "load_lightning_checkpoint", "read_lightning_checkpoint"]


def read_lightning_checkpoint(path: str | os.PathLike[str], *, trust: bool = False) -> dict[str, Any]:
    """The payload of a Lightning checkpoint, loaded with ``weights_only=True`` unless ``trust``.

    Args:
        path: A ``.ckpt`` file.
        trust: Allow arbitrary pickled objects (``weights_only=False``). Only for files you made.

    Returns:
        The checkpoint dict (``state_dict``, ``hyper_parameters``, ``epoch``, ...), tensors on the CPU.

    Raises:
        CheckpointError: the file is missing, not a weights file at all (empty, a Git LFS pointer, an HTML
            page, other bytes: said which), corrupt or truncated, holds pickled objects (and ``trust`` is
            off), or is not a Lightning checkpoint (no ``state_dict``).

    Example:
        >>> payload = read_lightning_checkpoint("runs/dirl/checkpoints/last.ckpt")  # doctest: +SKIP
        >>> payload["hyper_parameters"]["model"]  # doctest: +SKIP
        'dirl'
    """
    path = os.fspath(path)
    # read_state_dict names a file that is not a checkpoint (empty, a Git LFS pointer, a web page) for
    # what it is before unpickling anything, so no message suggests loading such a file with trust.
    payload = read_state_dict(path, trust=trust, whole=True, trust_option="trust=True (CLI: --trust-checkpoint)")
    if "state_dict" not in payload:
        raise CheckpointError(
            f"{path} is not a Lightning checkpoint (no 'state_dict'). For bare network weights use "
            f"inharmony.load('<model>', weights='{path}') or 'inharmony predict --weights {path}'."
        )
    return payload


def load_lightning_checkpoint(path: str | os.PathLike[str], *, trust: bool = False) -> tuple[nn.Module, dict]:
    """Rebuild the bare network from a ``LocalizationTask`` checkpoint (``.ckpt``).

    Args:
        path: The ``.ckpt`` file written by ``inharmony fit``.
        trust: See :func:`read_lightning_checkpoint`.

    Returns:
        ``(model in eval mode, hyper_parameters)``.

    Example:
        >>> model, hparams = load_lightning_checkpoint("runs/dirl/checkpoints/best.ckpt")  # doctest: +SKIP
    """
    path = os.fspath(path)
    payload = read_lightning_checkpoint(path, trust=trust)
    hparams = dict(payload.get("hyper_parameters") or {})
    name = hparams.get("model")
    if not isinstance(name, str):
        raise CheckpointError(
            f"{path} does not record a registered model name in its hyper-parameters (found model={name!r}); "
            "it was trained with a ready nn.Module. Rebuild that module yourself and call its save_pretrained."
        )
    kwargs = hparams.get("model_kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise CheckpointError(f"{path}: its hyper-parameter model_kwargs is not a mapping ({type(kwargs).__name__})")
    kwargs = dict(kwargs)
    for flag in get_pretrained_cfg(name).download_args:
        if kwargs.get(flag):
            kwargs[flag] = False  # the trained weights replace the ImageNet initialisation anyway
    try:
        model = create_model(name, **kwargs)  # every argument is checked against its bounds before building
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: hyper-parameters: cannot build {name!r} from model_kwargs: {err}") from err
    state = {k.removeprefix("model."): v for k, v in payload["state_dict"].items() if k.startswith("model.")}
    if not state:
        raise CheckpointError(f"{path} has no 'model.*' weights in its state_dict")
    load_state_dict_strict(model, state, path)
    return model.eval(), hparams


def is_lightning_checkpoint(source: str) -> bool:
    """Whether ``source`` is a file named ``*.ckpt``."""
    return Path(source).suffix == ".ckpt" and os.path.isfile(source)


def _load(source: str, architecture: str, *, trust: bool = False) -> nn.Module:
    model, hparams = load_lightning_checkpoint(source, trust=trust)
    if model.pretrained_cfg.architecture != architecture:
        raise CheckpointError(
            f"{source} was trained as {hparams.get('model')!r}, not {architecture!r}; "
            f"use --model {hparams.get('model')}"
        )
    return model


register_converter(
    Converter(
        name="lightning",
        description="a Lightning .ckpt written by 'inharmony fit'",
        detect=is_lightning_checkpoint,
        load=_load,
    )
)
