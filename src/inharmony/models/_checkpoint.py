"""Read weight files and load them strictly, with errors that name the file and the keys.

This is the one place where inharmony reads a weights file (:func:`read_state_dict`: a state dict,
or with ``whole=True`` a Lightning checkpoint's payload) and loads a state dict into a model
(:func:`load_state_dict_strict`): the Hub format, plain weight files and every converter go through it.

A file that is not a checkpoint at all (empty, a Git LFS pointer, a saved web page, other bytes) is
named for what it is before any unpickling is tried, so no message ever suggests loading it unsafely.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.pth"
    >>> _ = path.write_text("version https://git-lfs.github.com/spec/v1\\noid sha256:ab\\nsize 9\\n")
    >>> diagnose_weight_file(path).split(": ", 1)[1][:35]
    'it is a Git LFS pointer (a small te'
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Mapping
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import CheckpointError

__all__ = ["diagnose_weight_file", "load_state_dict_file", "load_state_dict_strict", "read_state_dict"]

_HEAD = 1024  # bytes read to tell what a file is
_ZIP = b"PK\x03\x04"  # torch.save's default (zip) format
_TRUST_OPTION = "inharmony.load(..., trust_checkpoint=True) (CLI: --trust-checkpoint)"


def _is_safetensors(head: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON object of that length."""
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= size - 8 and head[8:9] == b"{"


def _is_torch(head: bytes) -> bool:
    """torch.save: a zip archive (default since PyTorch 1.6) or a pickle (protocol 2-5, legacy format)."""
    return head.startswith(_ZIP) or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _text(head: bytes) -> str | None:
    """The bytes as text if they are UTF-8 without control characters (a character cut at the end is fine)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:
            return None
        text = head[: err.start].decode("utf-8")
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return None
    return text


def diagnose_weight_file(path: str | os.PathLike[str]) -> str | None:
    """What a file that is not a PyTorch or safetensors file is, as an error message; ``None`` if it looks like one.

    Only the first bytes are read; nothing is unpickled. Recognised: an empty file, a Git LFS pointer, an
    HTML page (a download that saved a web page), another text file, and other bytes.

    Example:
        >>> import tempfile, pathlib
        >>> empty = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> empty.touch()
        >>> "it is empty (0 bytes)" in diagnose_weight_file(empty)
        True
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    if size == 0:
        return f"{path}: it is empty (0 bytes): the download or copy did not complete; fetch the weights again"
    if _is_safetensors(head, size) or _is_torch(head):
        return None
    text = _text(head)
    if text is not None and text.startswith("version https://git-lfs.github.com/spec/"):
        return (
            f"{path}: it is a Git LFS pointer (a small text file standing for the weights), not the weights: "
            "run `git lfs install && git lfs pull` in the repository, or download the file itself"
        )
    lowered = (text or "").lstrip().lower()
    if lowered.startswith(("<!doctype html", "<html", "<head", "<!--")) or "<html" in lowered[:300]:
        return (
            f"{path}: it is an HTML page, not weights: the download saved a web page (a login, error or "
            "'confirm download' page); download the file itself (e.g. the 'raw' or 'resolve' link)"
        )
    if text is not None:  # never quoted: the message may reach someone who must not read the file
        return f"{path}: it is a text file, not a PyTorch or safetensors weights file"
    return (
        f"{path}: it is not a PyTorch (torch.save) or safetensors file (it starts with bytes {head[:8].hex(' ')}); "
        "check that it is the weights file and that it downloaded completely"
    )


def _objects_message(path: str, err: Exception, trust_option: str | None) -> str:
    found = next((ln.strip() for ln in str(err).splitlines() if "Unsupported global" in ln), "")
    found = found.split("GLOBAL", 1)[-1].split(" was not", 1)[0].strip() if found else ""
    advice = (
        f"If you wrote this file yourself, pass {trust_option}."
        if trust_option
        else "If you made it yourself, re-save only the weights: torch.save(model.state_dict(), path)."
    )
    return (
        f"{path} holds Python objects beyond tensors and plain containers"
        + (f" (first: {found})" if found else "")
        + f", so it was not loaded (inharmony reads weights with torch.load(weights_only=True)). {advice}"
    )


def read_state_dict(
    path: str | os.PathLike[str],
    *,
    trust: bool = False,
    whole: bool = False,
    trust_option: str | None = None,
) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file or a ``torch.save``'d state dict (``weights_only=True``).

    The format is told from the file's first bytes, not its name. A ``{"state_dict": ...}`` wrapper is
    unwrapped; ``module.`` / ``model.`` prefixes are kept.

    Args:
        path: The weights file.
        trust: Allow arbitrary pickled objects (``weights_only=False``). Only for files you made.
        whole: Return the whole payload of a ``torch.save``'d dict (e.g. a Lightning checkpoint) unwrapped.
        trust_option: How the caller lets a user pass ``trust`` (e.g. ``"trust=True (CLI: --trust-checkpoint)"``),
            named in the message for a file holding Python objects; ``None``: no such option is offered.

    Raises:
        CheckpointError: the file is missing, is not a weights file (said what it is: empty, a Git LFS
            pointer, a web page, ...), is corrupt or truncated, holds Python objects (and ``trust`` is off),
            or holds no state dict.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.pth"
        >>> torch.save({"weight": torch.zeros(1)}, path)
        >>> list(read_state_dict(path))
        ['weight']
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    diagnosis = diagnose_weight_file(path)
    if diagnosis is not None:
        raise CheckpointError(f"cannot read checkpoint {diagnosis}")
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    try:
        if _is_safetensors(head, os.path.getsize(path)):
            state: Any = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            raise CheckpointError(_objects_message(path, err, trust_option)) from err
        raise CheckpointError(_corrupt(path, err)) from err
    except Exception as err:
        raise CheckpointError(_corrupt(path, err)) from err
    if whole:
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{path} does not hold a checkpoint dict (found {type(state).__name__})")
        return dict(state)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return dict(state)


def _corrupt(path: str, err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "error:" in ln.lower() or "failed" in ln.lower()), lines[0] if lines else "")
    detail = detail.split(". ")[0][:160]
    return (
        f"cannot read checkpoint {path}: it looks like a PyTorch/safetensors file but is corrupt or truncated "
        f"({type(err).__name__}: {detail}); use an intact copy (download or copy it again)"
    )


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


def load_state_dict_file(model: nn.Module, path: str | os.PathLike[str], *, trust: bool = False) -> None:
    """Load ``path`` (``.safetensors`` or a torch state dict) into ``model``, strictly.

    DataParallel's ``module.`` and a LightningModule's ``model.`` key prefixes are removed first.
    ``trust`` allows pickled Python objects (see :func:`read_state_dict`).
    """
    path = os.fspath(path)
    state = read_state_dict(path, trust=trust, trust_option=_TRUST_OPTION)
    state = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()}
    load_state_dict_strict(model, state, path)
