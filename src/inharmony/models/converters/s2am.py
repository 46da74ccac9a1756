"""The S2AM authors' checkpoints (``vinthony/s2am``) → :class:`~inharmony.models.s2am.S2AM` / ``S2AMMaskFree``.

The authors' ``save_checkpoint`` writes one file per run (``checkpoint.pth.tar``, ``model_best.pth.tar``;
their released S2AD model is ``rascv2.pth.tar``): ``{"epoch", "arch", "state_dict", "best_acc",
"optimizer"}``, the state dict in the key names of their nested ``UnetGenerator``
(``model.model.sub.model....attention.spliced_attention.fc.0.weight``), possibly with DataParallel's
``module.`` prefix; a bare state dict is accepted too. Their ``rascv2`` loads as ``s2am``, their
``maskedurasc`` and ``urasc`` (the same weights) as ``s2am_maskfree``. Files are read with
``torch.load(weights_only=True)``; the format needs nothing beyond tensors and plain containers.

Example:
    >>> model = inharmony.load("s2am", weights="rascv2.pth.tar")  # doctest: +SKIP
    >>> model = load_s2am("model_best.pth.tar", "s2am_maskfree")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ...errors import OfficialCheckpointError
from ...files import check_output_folder
from .. import create_model, describe_weights, get_pretrained_cfg, read_state_dict
from ..s2am import S2AMModule, smoothing_kernel
from ._registry import ConvertCommand, Converter, register_converter

__all__ = [
    "ARCHITECTURES",
    "convert_official_state_dict",
    "convert_s2am",
    "is_s2am_checkpoint",
    "load_s2am",
    "official_key",
    "read_s2am_checkpoint",
    "to_official_state_dict",
]

#: The authors' architecture names (``--arch``, saved as ``"arch"``) → ours.
ARCHITECTURES = {"rascv2": "s2am", "maskedurasc": "s2am_maskfree", "urasc": "s2am_maskfree"}
_ROOT, _SUB = "model.model.", "sub.model."
_MARKER = b"model.model.sub.model."  # every UnetGenerator of their code nests its blocks this way
_HEAD = 1 << 20  # the keys of a legacy-format file are in its first pickle, well within this
_GAUSSIAN = "attention.gaussianMask.weight"
_OPTIONAL_SUFFIX = ".num_batches_tracked"  # absent from files written by torch < 0.4.1

_GATES = {
    "background_gate": "background_attention",
    "mixed_gate": "mixed_attention",
    "foreground_gate": "spliced_attention",
}
_LEARN = {"conv1": "rconv1", "bn1": "rbn1", "conv2": "rconv2", "bn2": "rbn2"}
_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(pattern), rename)
    for pattern, rename in [
        (r"^net\.stem\.(.+)$", lambda m: f"{_ROOT}down.0.{m[1]}"),
        (r"^net\.head\.(.+)$", lambda m: f"{_ROOT}up.1.{m[1]}"),
        (r"^net\.levels\.(\d+)\.(down|up)\.conv\.(.+)$", lambda m: f"{_level(m[1])}{m[2]}.1.{m[3]}"),
        (r"^net\.levels\.(\d+)\.(down|up)\.bn\.(.+)$", lambda m: f"{_level(m[1])}{m[2]}.2.{m[3]}"),
        (r"^net\.levels\.(\d+)\.attention\.learnable\.(\w+)\.(.+)$",
         lambda m: f"{_level(m[1])}attention.connection.{_LEARN[m[2]]}.{m[3]}"),
        (r"^net\.levels\.(\d+)\.attention\.(\w+_gate)\.fc([12])\.(.+)$",
         lambda m: f"{_level(m[1])}attention.{_GATES[m[2]]}.fc.{2 * int(m[3]) - 2}.{m[4]}"),
        (r"^net\.levels\.(\d+)\.attention\.spatial\.conv([12])\.(.+)$",
         lambda m: f"{_level(m[1])}attention.mask_attention.fc.{2 * int(m[2]) - 2}.{m[3]}"),
    ]
]  # fmt: skip


def _level(index: str) -> str:
    # Our levels[i] is the authors' (i + 1)-th nested ``sub`` block.
    return _ROOT + _SUB * (int(index) + 1)


def official_key(key: str) -> str:
    """The authors' name of one of our ``s2am`` / ``s2am_maskfree`` state-dict keys.

    Example:
        >>> official_key("net.levels.0.attention.foreground_gate.fc1.weight")
        'model.model.sub.model.attention.spliced_attention.fc.0.weight'
        >>> official_key("net.levels.2.down.bn.running_var")
        'model.model.sub.model.sub.model.sub.model.down.2.running_var'
    """
    for pattern, rename in _RULES:
        match = pattern.match(key)
        if match:
            return rename(match)
    raise KeyError(f"no official name for S2AM key {key!r}")


def to_official_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our weights in the authors' layout (with their Gaussian buffers for ``s2am``): what ``rascv2`` loads.

    Example:
        >>> sd = to_official_state_dict(create_model("s2am", num_downs=5))
        >>> sd["model.model.down.0.weight"].shape
        torch.Size([64, 4, 4, 4])
    """
    out = {official_key(key): value for key, value in model.state_dict().items()}
    for index, level in enumerate(model.net.levels):
        if isinstance(level.attention, S2AMModule) and not level.attention.mask_free:
            out[_level(str(index)) + _GAUSSIAN] = smoothing_kernel()
    return out


def _pickle_head(path: str) -> bytes:
    """The bytes holding a torch file's pickled structure (keys included), without reading its tensors."""
    try:
        if zipfile.is_zipfile(path):  # torch.save's format since PyTorch 1.6
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                return archive.read(name)[: 8 * _HEAD] if name else b""
        with open(path, "rb") as fh:  # the legacy format (PyTorch 0.4): pickles first, then the tensors
            head = fh.read(_HEAD)
        return head if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5 else b""
    except (OSError, zipfile.BadZipFile):
        return b""


def identify_s2am(keys: Collection[str]) -> str | None:
    """``"a network of the S2AM authors' code ..."`` for a state dict in their key names, else ``None``."""
    if any(str(key).removeprefix("module.").startswith(_ROOT) for key in keys):
        return "a network of the S2AM authors' code (vinthony/s2am: their nested UnetGenerator key names)"
    return None


def is_s2am_checkpoint(source: str) -> bool:
    """Whether ``source`` is a file holding a network of the S2AM authors' code (their nested key names).

    Only the pickled structure is scanned (no tensor is read, nothing is unpickled).
    """
    return os.path.isfile(source) and _MARKER in _pickle_head(source)


def read_s2am_checkpoint(
    path: str | os.PathLike[str], *, trust: bool = False
) -> tuple[dict[str, torch.Tensor], str | None]:
    """``(state dict, arch)`` of one of the authors' files, ``module.`` prefixes removed.

    ``arch`` is the ``"arch"`` the file records (their ``--arch``, e.g. ``"rascv2"``), or ``None``.

    Raises:
        CheckpointError: missing, not a weights file (said what it is), corrupt or truncated, or holding
            Python objects beyond tensors and plain containers (and ``trust`` is off).
        OfficialCheckpointError: no state dict of tensors in it.
    """
    file = os.fspath(path)
    payload = read_state_dict(file, trust=trust, whole=True, trust_option="inharmony.load(..., trust_checkpoint=True)")
    arch = payload.get("arch")
    state = payload.get("state_dict", payload)
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OfficialCheckpointError(
            f"{file} is not an S2AM checkpoint: expected a state dict of tensors, or a dict with a 'state_dict' of them"
        )
    return {str(k).removeprefix("module."): v for k, v in state.items()}, arch if isinstance(arch, str) else None


def _held_architecture(state: Mapping[str, torch.Tensor], arch: str | None) -> tuple[str | None, str]:
    """``(our name or None, description)`` of the network a state dict of the authors' code holds."""
    named = f" (its 'arch' is {arch!r})" if arch else ""
    if any(k.endswith("attention.mask_attention.fc.0.weight") for k in state):
        return "s2am_maskfree", f"the mask-free S2AM (maskedurasc / urasc){named}"
    first = state.get(_ROOT + _SUB + "attention.connection.rconv1.weight")
    stem = state.get(_ROOT + "down.0.weight")
    if first is not None and stem is not None and first.shape[1] == 2 * stem.shape[0] and stem.shape[1] == 4:
        return "s2am", f"S2AD with the mask (rascv2){named}"
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch], f"{arch!r}, with other shapes"
    if first is not None:
        return None, (
            f"another network of the S2AM code{named}: an attention module on the skip connections only (like "
            "'rascv1', S2ASC) or a modified UNet; inharmony builds rascv2 (S2AD) and maskedurasc"
        )
    return None, f"another network of the S2AM code{named} without S2AM modules (like their plain 'unet')"


def convert_official_state_dict(
    state: Mapping[str, torch.Tensor], model: nn.Module, source: str = "the checkpoint"
) -> dict[str, torch.Tensor]:
    """Our state dict for ``model`` from the authors' state dict, every mismatch named.

    Raises:
        OfficialCheckpointError: listing every missing, unexpected or misshapen key, and a Gaussian
            buffer that is not the authors' kernel.
    """
    ours = model.state_dict()
    name_map = {official_key(key): key for key in ours}
    problems, converted = [], {}
    kernel = smoothing_kernel()
    gaussians = set(to_official_state_dict(model)) - set(name_map)  # constant buffers: checked, not loaded
    for key, value in state.items():
        if key in gaussians:
            if tuple(value.shape) != tuple(kernel.shape) or not torch.allclose(value.float(), kernel, atol=1e-6):
                problems.append(f"{key!r} is not the authors' 5×5 Gaussian kernel")
            continue
        if key not in name_map:
            problems.append(f"unexpected key {key!r}")
            continue
        target = ours[name_map[key]]
        if tuple(value.shape) != tuple(target.shape):
            problems.append(f"key {key!r} has shape {tuple(value.shape)}, expected {tuple(target.shape)}")
            continue
        converted[name_map[key]] = value.to(target.dtype)
    for official, key in name_map.items():
        if official not in state:
            if key.endswith(_OPTIONAL_SUFFIX):
                converted[key] = torch.zeros((), dtype=torch.long)
            else:
                problems.append(f"missing key {official!r}")
    if problems:
        shown = "\n  ".join(problems[:25])
        more = f"\n  … and {len(problems) - 25} more" if len(problems) > 25 else ""
        raise OfficialCheckpointError(f"{source} does not match {type(model).__name__}:\n  {shown}{more}")
    return converted


def load_s2am(path: str | os.PathLike[str], architecture: str = "s2am", *, trust: bool = False) -> nn.Module:
    """Build ``s2am`` or ``s2am_maskfree`` from one of the authors' checkpoint files, in eval mode.

    Args:
        path: Their ``.pth.tar`` (``{"arch", "state_dict", ...}``) or a bare state dict in their key names.
        architecture: ``"s2am"`` (their ``rascv2``) or ``"s2am_maskfree"`` (their ``maskedurasc`` / ``urasc``);
            it must be the network the file holds.
        trust: Read the file with ``weights_only=False`` (only for a file you trust).

    Returns:
        The model; its outputs equal the authors' network's with the same weights.

    Raises:
        CheckpointError: unreadable (missing, not a weights file, corrupt, or holding Python objects).
        OfficialCheckpointError: of another network (the message says which network it looks like and the
            name to load it as), or with missing, unexpected or misshapen keys (named).

    Example:
        >>> model = load_s2am("rascv2.pth.tar", "s2am")  # doctest: +SKIP
    """
    source = os.fspath(path)
    state, arch = read_s2am_checkpoint(source, trust=trust)
    if identify_s2am(state) is None:
        raise OfficialCheckpointError(
            f"{source} is not a checkpoint of the S2AM authors' code (none of its keys starts with {_ROOT!r}): "
            f"it holds {describe_weights(state)}"
        )
    held, description = _held_architecture(state, arch)
    if held is None:
        raise OfficialCheckpointError(f"{source} holds {description}; it cannot be loaded as {architecture!r}")
    if held != architecture:
        raise OfficialCheckpointError(f"{source} holds {description}, not {architecture!r}: load it as {held!r}")
    num_downs = max(key.count(_SUB) for key in state) + 1
    stem = state.get(_ROOT + "down.0.weight")
    kwargs = {"num_downs": num_downs, "base_channels": int(stem.shape[0]) if stem is not None else 64}
    with torch.device("meta"):  # no random initialisation of 67 M parameters that are overwritten at once
        model = create_model(architecture, **kwargs)
    model.load_state_dict(convert_official_state_dict(state, model, source), strict=True, assign=True)
    for module in model.modules():  # non-persistent buffers are not in a state dict: make them real
        if isinstance(module, S2AMModule) and not module.mask_free:
            module.smoothing = smoothing_kernel()
    model.pretrained_cfg = get_pretrained_cfg(architecture)
    return model.eval()


def convert_s2am(file: str, out: str, model: Literal["s2am", "s2am_maskfree"] = "s2am", force: bool = False) -> int:
    """Convert the S2AM authors' checkpoint into an inharmony hub folder.

    Reads one of the files the authors' code writes (``rascv2.pth.tar``, ``model_best.pth.tar``,
    ``checkpoint.pth.tar``: ``{"arch", "state_dict", ...}``, or a bare state dict in their key names)
    and writes ``config.json``, ``model.safetensors`` and a model card.

    Args:
        file: The authors' checkpoint file.
        out: Hub folder to write.
        model: ``s2am`` (their rascv2, with the mask) or ``s2am_maskfree`` (their maskedurasc / urasc).
        force: Write into a non-empty ``--out`` folder.

    Example:
        inharmony convert s2am-official --file rascv2.pth.tar --out s2am_hub
    """
    target = check_output_folder(out, force)
    net = load_s2am(file, model)
    net.save_pretrained(
        target,
        model_card_kwargs={
            "training_data": f"weights released by the S2AM authors (vinthony/s2am), converted from "
            f"{Path(file).name} by `inharmony convert s2am-official`.",
        },
    )
    print(f"wrote {target}/config.json, model.safetensors, README.md")
    return 0


def _load(source: str, architecture: str, *, trust: bool = False, **_: Any) -> nn.Module:
    return load_s2am(source, architecture, trust=trust)


register_converter(
    Converter(
        name="s2am-official",
        description="the S2AM authors' checkpoint file (vinthony/s2am: rascv2 / maskedurasc .pth.tar)",
        detect=is_s2am_checkpoint,
        load=_load,
        architectures=tuple(sorted(set(ARCHITECTURES.values()))),
        identify=identify_s2am,
        command=ConvertCommand(
            convert_s2am,
            "S2AM (vinthony/s2am): the authors' released checkpoint (.pth.tar), with or without the mask",
            "inharmony convert s2am-official --file s2am_checkpoint.pth.tar --out s2am_hub",
        ),
    )
)
