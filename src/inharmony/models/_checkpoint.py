"""Read state-dict files and load them strictly, with errors that name the file and the keys.

This is the one place where inharmony loads a state dict into a model: the Hub format, plain
weight files and every converter go through :func:`load_state_dict_strict`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import CheckpointError

__all__ = ["load_state_dict_file", "load_state_dict_strict", "read_state_dict"]


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or a ``torch.save``'d state dict (``weights_only=True``).

    A ``{"state_dict": ...}`` wrapper is unwrapped; ``module.`` / ``model.`` prefixes are kept.

    Raises:
        CheckpointError: the file is missing, unreadable, or holds no state dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            state = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from err
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return dict(state)


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state)`` that reports every missing, unexpected or misshapen key by name.

    Args:
        model: The network to fill.
        state: Its state dict, keys as in ``model.state_dict()``.
        source: Where the weights came from, for the message (a path or a Hub id).

    Raises:
        CheckpointError: naming up to 20 keys of each kind of mismatch.

    Example:
        >>> net = nn.Linear(2, 1)
        >>> load_state_dict_strict(net, {"weight": torch.zeros(1, 2)}, "w.pth")
        Traceback (most recent call last):
        ...
        inharmony.errors.CheckpointError: w.pth does not fit Linear: missing keys (1): bias
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
    if misshapen:
        problems.append(f"wrong shapes ({len(misshapen)}): {'; '.join(misshapen[:20])}")
    if problems:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + " | ".join(problems))
    model.load_state_dict(state, strict=True)


def load_state_dict_file(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load ``path`` (``.safetensors`` or a torch state dict) into ``model``, strictly.

    DataParallel's ``module.`` and a LightningModule's ``model.`` key prefixes are removed first.
    """
    path = os.fspath(path)
    state = read_state_dict(path)
    state = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()}
    load_state_dict_strict(model, state, path)
