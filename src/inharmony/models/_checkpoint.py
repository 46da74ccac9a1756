"""Load a plain state-dict file into a model, with errors that name the file and the keys."""

from __future__ import annotations

import os
from collections.abc import Mapping

import timm.models
import torch
from torch import nn

__all__ = ["CheckpointError", "load_state_dict_file", "load_state_dict_strict"]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


def _read(path: str) -> Mapping[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            # timm reads safetensors for us, so models/ needs no import beyond torch and timm.
            return timm.models.load_state_dict(path, use_ema=False, device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from err
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return state


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state)`` that reports every missing, unexpected or misshapen key by name."""
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
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: " + " | ".join(problems)
        )
    model.load_state_dict(state, strict=True)


def load_state_dict_file(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load ``path`` (``.safetensors`` or a torch state dict) into ``model``, strictly."""
    path = os.fspath(path)
    state = _read(path)
    state = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()}
    load_state_dict_strict(model, state, path)
