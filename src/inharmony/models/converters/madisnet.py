"""The MadisNet authors' and libcom's checkpoints → :class:`~inharmony.models.madisnet.MadisNet` / UNet.

Two layouts of the same weights:

* the authors' zips (``bcmi/MadisNet-Inharmonious-Region-Localization``, ``dirl.zip`` / ``unet.zip``),
  unzipped: ``g_epoch{N|best}.pth`` (the localizer), ``ihdrnet_epoch{…}.pth`` and
  ``domain_encoder_epoch{…}.pth`` (training only, not needed to predict), each
  ``{"epoch", "best_acc", "state_dict", "opt"}`` with a ``MultiStepLR`` state in ``opt``;
* libcom's copy on the Hugging Face Hub (``BCMIZB/Libcom_pretrained_models``): ``Inharmonious_G.pth``
  and ``IHDRNet.pth`` in the same format (the DIRL localizer only). These are the published weights of
  ``madisnet.libcom``: ``create_model("madisnet", pretrained=True)`` downloads, converts and caches them
  through :func:`load_libcom_weights`.

Files are read with ``torch.load(weights_only=True)`` allowing ``collections.Counter`` only; every
missing, unexpected or misshapen key is named with its file. This module is the one place that knows
the authors' key names (:func:`official_key`).

Example:
    >>> model = load_madisnet("MadisNet/dirl", "madisnet")  # doctest: +SKIP
    >>> model = inharmony.load("madisnet", weights="libcom_files/")  # doctest: +SKIP
    >>> model = inharmony.load("madisnet", weights="MadisNet/dirl", epoch=60)  # the authors' files  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save
from torch import nn

from ...errors import CheckpointError, OfficialCheckpointError
from ...files import atomic_write_bytes, check_output_folder
from .. import (
    PretrainedCfg,
    create_model,
    describe_weights,
    download_hub_file,
    get_pretrained_cfg,
    hub_cache_dir,
    load_state_dict_strict,
    read_state_dict,
)
from ..madisnet import LIBCOM_REPO
from ._registry import ConvertCommand, Converter, check_epoch, refuse_other_format, register_converter

__all__ = [
    "LIBCOM_FILES",
    "UNUSED_OFFICIAL_PREFIX",
    "convert_madisnet",
    "convert_official_state_dicts",
    "is_madisnet_libcom_folder",
    "is_madisnet_official_folder",
    "load_libcom_weights",
    "load_madisnet",
    "madisnet_files",
    "official_key",
    "read_official_checkpoint",
    "to_official_state_dicts",
]

#: libcom's files in :data:`~inharmony.models.madisnet.LIBCOM_REPO`: ``{role: file name}`` (the localizer ``g``
#: and the colour mapper).
LIBCOM_FILES = {"g": "Inharmonious_G.pth", "ihdrnet": "IHDRNet.pth"}
ARCHITECTURES = ("madisnet", "madisnet_unet", "unet")
_DIRL_KEY = "decoder.trans.im0.h_concat.conv.weight"
_UNET_KEY = "out_conv.0.weight"


# ---------------------------------------------------------------------- the authors' key layout

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def _rules(table: list[tuple[str, Callable[[re.Match[str]], str]]]) -> list[Rule]:
    return [(re.compile(pattern), rename) for pattern, rename in table]


_BLOCK = {"conv1": "0", "bn1": "1", "conv2": "3", "bn2": "4"}  # DoubleConv → the authors' nn.Sequential indices
_ATTENTION = {"query": "query_conv", "key": "key_conv", "value": "value_conv"}
_IHDRNET_RULES = _rules([
    (r"^coeffs\.splat\.(\d+)\.(conv|bn)\.(.+)$", lambda m: f"coeffs.splat_features.{2 * int(m[1])}.{m[2]}.{m[3]}"),
    (r"^coeffs\.blocks\.(\d+)\.(.+)$", lambda m: f"coeffs.res_blks.{m[1]}.{m[2]}"),
    (r"^coeffs\.attention\.gamma$", lambda m: "coeffs.sa.gamma"),
    (r"^coeffs\.attention\.(query|key|value)\.(.+)$", lambda m: f"coeffs.sa.{_ATTENTION[m[1]]}.{m[2]}"),
    (r"^coeffs\.head\.(.+)$", lambda m: f"coeffs.conv_out.conv.{m[1]}"),
    (r"^guide\.conv(\d)\.(.+)$", lambda m: f"guide.conv{m[1]}.conv.{m[2]}"),
    (r"^guide\.bn1\.(.+)$", lambda m: f"guide.conv1.norm.{m[1]}"),
])  # fmt: skip
_FUSION = {
    "high_to_low": "top_down", "low_to_high": "bottom_up", "high_to_mid": "top_down_h2m",
    "mid_to_low": "top_down_m2l", "low_to_mid": "bottom_up_l2m", "mid_to_high": "bottom_up_m2h",
    "merge_low": "l_concat", "merge_mid": "m_concat", "merge_high": "h_concat",
}  # fmt: skip
_GGD = {"gate_conv": "conv_inup", "bottom_conv": "conv_inbottom", "fuse": "conv_cat"}
_NORM = {"conv": "conv", "bn": "norm"}
_DIRL_RULES = _rules([
    (r"^encoder\.stem_conv\.(.+)$", lambda m: f"encoder.inconv.{m[1]}"),
    (r"^encoder\.stem_bn\.(.+)$", lambda m: f"encoder.inbn.{m[1]}"),
    (r"^encoder\.layer(\d)\.(.+)$", lambda m: f"encoder.encoder{m[1]}.{m[2]}"),
    (r"^fusion\.levels\.(\d)\.(\w+)\.(conv|bn)\.(.+)$",
     lambda m: f"decoder.trans.im{m[1]}.{_FUSION[m[2]]}.{_NORM[m[3]]}.{m[4]}"),
    (r"^attention\.(\d)\.channel\.conv\.(.+)$",
     lambda m: f"decoder.attention_layers.mda_{m[1]}.ChannelGate.conv.{m[2]}"),
    (r"^attention\.(\d)\.spatial\.(reduce|project)\.(.+)$",
     lambda m: f"decoder.attention_layers.mda_{m[1]}.SpatialGate.spatial.{int(m[2] == 'project')}.{m[3]}"),
    (r"^decoder\.blocks\.(\d)\.(\w+)\.(conv|bn)\.(.+)$",
     lambda m: f"decoder.decoder_layers.deconv.decoder.d{m[1]}.{_GGD[m[2]]}.{_NORM[m[3]]}.{m[4]}"),
    (r"^decoder\.head\.(.+)$", lambda m: f"decoder.decoder_layers.deconv.decoder.d0.conv5.{m[1]}"),
])  # fmt: skip
_UNET_RULES = _rules([
    (r"^encoder\.stem_conv\.(.+)$", lambda m: f"in_conv.0.{m[1]}"),
    (r"^encoder\.stem_bn\.(.+)$", lambda m: f"in_conv.1.{m[1]}"),
    (r"^encoder\.layer([1-4])\.(.+)$", lambda m: f"downs.d{int(m[1]) - 1}.{m[2]}"),
    (r"^encoder\.layer5\.(\d)\.(.+)$", lambda m: f"downs.d4.{int(m[1]) + 1}.{m[2]}"),
    (r"^bottleneck\.(conv1|bn1|conv2|bn2)\.(.+)$", lambda m: f"bottleneck.double_conv.{_BLOCK[m[1]]}.{m[2]}"),
    (r"^ups\.([0-3])\.reduce\.(.+)$", lambda m: f"ups.u{m[1]}.up.1.{m[2]}"),
    (r"^ups\.4\.reduce\.(.+)$", lambda m: f"ups.u4.up.{m[1]}"),
    (r"^ups\.(\d)\.fuse\.(conv1|bn1|conv2|bn2)\.(.+)$",
     lambda m: f"ups.u{m[1]}.conv.double_conv.{_BLOCK[m[2]]}.{m[3]}"),
    (r"^head\.(.+)$", lambda m: f"out_conv.0.{m[1]}"),
])  # fmt: skip
# The authors' DIRL localizer also builds an outermost GGD convolution that its forward never calls.
UNUSED_OFFICIAL_PREFIX = "decoder.decoder_layers.deconv.decoder.d0.conv4."
_OPTIONAL_SUFFIX = ".num_batches_tracked"  # absent from files written by torch < 0.4.1


def _rename(rules: list[Rule], key: str, what: str) -> str:
    for pattern, rename in rules:
        match = pattern.match(key)
        if match:
            return rename(match)
    raise KeyError(f"no official name for {what} key {key!r}")


def official_key(key: str, localizer: str = "dirl") -> tuple[str, str]:
    """``(role, key)`` of one of our state-dict keys in the authors' files (role ``"g"`` or ``"ihdrnet"``).

    Works for :class:`MadisNet` keys (``ihdrnet.*``, ``localizer.*``) and, with ``localizer="unet"``,
    for :class:`~inharmony.models.unet.UNet` keys (no prefix).

    Example:
        >>> official_key("ihdrnet.coeffs.splat.1.conv.weight")
        ('ihdrnet', 'coeffs.splat_features.2.conv.weight')
        >>> official_key("localizer.encoder.stem_conv.weight")
        ('g', 'encoder.inconv.weight')
    """
    if key.startswith("ihdrnet."):
        return "ihdrnet", _rename(_IHDRNET_RULES, key.removeprefix("ihdrnet."), "iHDRNet")
    key = key.removeprefix("localizer.")
    rules = _DIRL_RULES if localizer == "dirl" else _UNET_RULES
    return "g", _rename(rules, key, f"{localizer} localizer")


def _localizer_of(model: nn.Module) -> str:
    return getattr(model, "localizer_name", "unet")  # a bare UNet has no iHDRNet


def to_official_state_dicts(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Our weights in the authors' layout: ``{"g": ..., "ihdrnet": ...}`` (``"g"`` only for a bare UNet).

    The never-used ``conv4`` of the authors' DIRL localizer is not produced; loading does not need it.
    """
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in model.state_dict().items():
        role, official = official_key(key, _localizer_of(model))
        out.setdefault(role, {})[official] = value
    return out


def read_official_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict of one of the authors' or libcom's ``.pth`` files, ``module.`` prefixes removed.

    The files are ``{"epoch", "best_acc", "state_dict", "opt"}`` with a ``MultiStepLR`` state in
    ``opt``; they are read with ``weights_only=True``, allowing ``collections.Counter`` (the
    scheduler's milestones) and nothing else beyond tensors and plain containers.

    Raises:
        OfficialCheckpointError: missing, unreadable, holding other objects, or not a state dict.
    """
    file = Path(path)
    try:
        with torch.serialization.safe_globals([collections.Counter]):
            payload = read_state_dict(file, whole=True)  # names a file that is no checkpoint, or runs code
    except CheckpointError as err:
        raise OfficialCheckpointError(str(err)) from err
    state = payload.get("state_dict", payload) if isinstance(payload, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OfficialCheckpointError(
            f"{file} is not a MadisNet checkpoint: expected a dict with a 'state_dict' of tensors"
        )
    return {key.removeprefix("module."): value for key, value in state.items()}


def convert_official_state_dicts(
    files: Mapping[str, tuple[str | os.PathLike[str], Mapping[str, torch.Tensor]]], model: nn.Module
) -> dict[str, torch.Tensor]:
    """Our state dict for ``model`` from the authors' state dicts, every mismatch named.

    Args:
        files: ``{role: (path, state dict)}`` for roles ``"g"`` and (MadisNet) ``"ihdrnet"``;
            the path is only used in messages.
        model: A :class:`MadisNet` or :class:`~inharmony.models.unet.UNet`, for the key list and shapes.

    Raises:
        OfficialCheckpointError: listing every missing, unexpected or misshapen key with its file.
    """
    ours = model.state_dict()
    localizer = _localizer_of(model)
    name_map = {official_key(key, localizer): key for key in ours}
    problems, converted = [], {}
    for role, (path, state) in files.items():
        for key, value in state.items():
            if role == "g" and localizer == "dirl" and key.startswith(UNUSED_OFFICIAL_PREFIX):
                continue
            if (role, key) not in name_map:
                problems.append(f"unexpected key {key!r} in {path}")
                continue
            target = ours[name_map[role, key]]
            if tuple(value.shape) != tuple(target.shape):
                problems.append(f"key {key!r} in {path} has shape {tuple(value.shape)}, expected {tuple(target.shape)}")
                continue
            converted[name_map[role, key]] = value.to(target.dtype)
    for (role, official), key in name_map.items():
        if role in files and official not in files[role][1]:
            if key.endswith(_OPTIONAL_SUFFIX):
                converted[key] = ours[key]
            else:
                problems.append(f"missing key {official!r} in {files[role][0]}")
    if problems:
        shown = "\n  ".join(problems[:25])
        more = f"\n  … and {len(problems) - 25} more" if len(problems) > 25 else ""
        raise OfficialCheckpointError(
            f"the checkpoint does not match {type(model).__name__} ({localizer}):\n  {shown}{more}"
        )
    return converted


def identify_madisnet(keys: Collection[str]) -> str | None:
    """Which of the MadisNet authors' (or libcom's) files a state dict with these key names is, or ``None``."""
    if _DIRL_KEY in keys or _UNET_KEY in keys:
        localizer = "DIRL" if _DIRL_KEY in keys else "UNet"
        return (
            f"the {localizer} localizer of the MadisNet authors' checkpoints (g_epochN.pth, libcom's "
            "Inharmonious_G.pth)"
        )
    if any(key.startswith("coeffs.splat_features.") for key in keys):
        return "the iHDRNet file of the MadisNet authors' checkpoints (ihdrnet_epochN.pth, libcom's IHDRNet.pth)"
    return None


# ---------------------------------------------------------------------- the authors' and libcom's folders


def is_madisnet_official_folder(source: str) -> bool:
    """Whether ``source`` is a folder holding the authors' ``g_epoch*.pth`` files."""
    path = Path(source)
    return path.is_dir() and any(path.glob("g_epoch*.pth"))


def is_madisnet_libcom_folder(source: str) -> bool:
    """Whether ``source`` is a folder holding libcom's ``Inharmonious_G.pth``."""
    return (Path(source) / LIBCOM_FILES["g"]).is_file()


def madisnet_files(path: str | os.PathLike[str], epoch: str | int = "best") -> dict[str, Path]:
    """``{"g": ..., "ihdrnet": ...}`` in a folder of either layout (``"ihdrnet"`` absent if there is none).

    Raises:
        OfficialCheckpointError: not a folder, or no localizer file (the files found are listed).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise OfficialCheckpointError(
            f"{folder} is not a directory; pass the folder holding g_epoch{epoch}.pth and ihdrnet_epoch{epoch}.pth "
            f"(the authors' zip, unzipped) or {' and '.join(LIBCOM_FILES.values())} (libcom's files)"
        )
    if (folder / LIBCOM_FILES["g"]).is_file():
        names = dict(LIBCOM_FILES)
    else:
        names = {"g": f"g_epoch{epoch}.pth", "ihdrnet": f"ihdrnet_epoch{epoch}.pth"}
    files = {role: folder / name for role, name in names.items() if (folder / name).is_file()}
    if "g" not in files:
        refuse_other_format(folder, ("madisnet-official", "madisnet-libcom"), "the MadisNet or libcom checkpoints")
        found = sorted(p.name for p in folder.glob("*.pth"))
        raise OfficialCheckpointError(
            f"missing {folder / names['g']}. Files found in {folder}: {', '.join(found) or 'none'}. "
            f"Choose the epoch with epoch=... (e.g. 'best', 60) or pass the folder holding the files."
        )
    return files


def load_madisnet(
    path: str | os.PathLike[str], architecture: str = "madisnet", epoch: str | int = "best"
) -> nn.Module:
    """Build ``madisnet``, ``madisnet_unet`` or ``unet`` from the authors' or libcom's files, in eval mode.

    Args:
        path: Folder holding ``g_epoch{epoch}.pth`` + ``ihdrnet_epoch{epoch}.pth`` (the authors' zip,
            unzipped), or ``Inharmonious_G.pth`` + ``IHDRNet.pth`` (libcom's).
        architecture: Registered name to build; it must be the network the files hold.
        epoch: ``"best"`` or an epoch number, as in the authors' file names.

    Returns:
        The model, whose outputs equal the authors' network's with the same weights.

    Raises:
        OfficialCheckpointError: a file is missing, unreadable or of another network, or a key is
            missing, unexpected or of the wrong shape (the message names the file and the key).

    Example:
        >>> model = load_madisnet("MadisNet/unet", "madisnet_unet")  # doctest: +SKIP
    """
    if architecture not in ARCHITECTURES:
        raise OfficialCheckpointError(
            f"{path} holds MadisNet checkpoints; they load as one of {', '.join(ARCHITECTURES)}, not {architecture!r}"
        )
    files = madisnet_files(path, epoch)
    states = {role: (file, read_official_checkpoint(file)) for role, file in files.items()}
    g_file, g_state = states["g"]
    if _DIRL_KEY in g_state:
        held, kwargs = "madisnet", {"decoder_channels": int(g_state[_DIRL_KEY].shape[0])}
    elif _UNET_KEY in g_state:
        held, kwargs = ("madisnet_unet" if "ihdrnet" in states else "unet"), {}
    else:
        raise OfficialCheckpointError(
            f"{g_file} is not the localizer of the MadisNet authors' checkpoints (neither their DIRL nor their UNet): "
            f"it holds {describe_weights(g_state)}"
        )
    if "ihdrnet" in states and "iHDRNet" not in (identify_madisnet(states["ihdrnet"][1]) or ""):
        ihdrnet_file, ihdrnet_state = states["ihdrnet"]
        raise OfficialCheckpointError(
            f"{ihdrnet_file} is not the iHDRNet file of the MadisNet authors' checkpoints: it holds "
            f"{describe_weights(ihdrnet_state)}"
        )
    if architecture != held:
        if architecture == "unet" and held == "madisnet_unet":
            reason = "its UNet was trained on iHDRNet's retouched images (an iHDRNet file is beside it)"
        else:
            reason = "the files hold another network"
        raise OfficialCheckpointError(
            f"{Path(path)} holds {held!r}, not {architecture!r}: {reason}; load it as {held!r}"
        )
    if "ihdrnet" not in states and architecture != "unet":
        raise OfficialCheckpointError(
            f"{Path(path)} has a localizer ({g_file.name}) but no iHDRNet file (ihdrnet_epoch{epoch}.pth or "
            f"{LIBCOM_FILES['ihdrnet']}); MadisNet needs both"
        )
    with torch.device("meta"):  # no random initialisation of 55 M parameters that are overwritten at once
        model = create_model(architecture, **kwargs)
    model.load_state_dict(convert_official_state_dicts(states, model), strict=True, assign=True)
    model.pretrained_cfg = get_pretrained_cfg(architecture)
    return model.eval()


def convert_madisnet(
    dir: str,
    out: str,
    model: Literal["madisnet", "madisnet_unet", "unet"] = "madisnet",
    epoch: str = "best",
    force: bool = False,
) -> int:
    """Convert the MadisNet authors' or libcom's checkpoints into an inharmony hub folder.

    Reads ``Inharmonious_G.pth`` + ``IHDRNet.pth`` (libcom, from the Hugging Face Hub repository
    BCMIZB/Libcom_pretrained_models) or ``g_epochX.pth`` + ``ihdrnet_epochX.pth`` (the authors' zip)
    and writes ``config.json``, ``model.safetensors`` and a model card.

    Args:
        dir: Folder holding the files.
        out: Hub folder to write.
        model: ``madisnet``, ``madisnet_unet`` or ``unet``: the network the files hold.
        epoch: For the authors' files: ``best`` or an epoch number.
        force: Write into a non-empty ``--out`` folder.

    Example:
        inharmony convert madisnet-libcom --dir libcom_files --out madisnet_hub
    """
    which = check_epoch(epoch, ("best",))
    target = check_output_folder(out, force)
    net = load_madisnet(dir, model, epoch=which)
    source = (
        f"libcom's {' and '.join(LIBCOM_FILES.values())} ({LIBCOM_REPO})"
        if is_madisnet_libcom_folder(dir)
        else f"the authors' g_/ihdrnet_epoch{which}.pth"
    )
    net.save_pretrained(
        target,
        model_card_kwargs={
            "training_data": f"iHarmony4, le50 training split; weights released by the MadisNet authors "
            f"(converted from {source} by `inharmony convert madisnet-libcom`).",
        },
    )
    print(f"wrote {target}/config.json, model.safetensors, README.md")
    return 0


# ---------------------------------------------------------------------- libcom's published files


def _snapshot_revision(path: str) -> str | None:
    """The commit hash of a Hugging Face cache path ``.../snapshots/<commit>/<file>``, if it is one."""
    parts = Path(path).parts
    return parts[-2] if len(parts) >= 3 and parts[-3] == "snapshots" else None


def _converted_cache_path(cfg: PretrainedCfg, paths: Mapping[str, str]) -> Path:
    """Where the converted weights of these downloaded files live: keyed by the files themselves."""
    digest = hashlib.sha256()
    for role in sorted(paths):
        real = os.path.realpath(paths[role])
        stat = os.stat(real)
        digest.update(f"{role}:{real}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    repo = (cfg.hf_hub_id or "local").replace("/", "--")
    name = f"{cfg.architecture}-{digest.hexdigest()[:16]}.safetensors"
    return Path(hub_cache_dir()) / "inharmony-converted" / repo / name


def load_libcom_weights(model: nn.Module, cfg: PretrainedCfg) -> None:
    """Fill a MadisNet(DIRL) with libcom's published files (downloaded, converted and cached once).

    ``create_model("madisnet", pretrained=True)`` calls this: the tag's ``weights_format`` names this
    format. The converted weights are cached as safetensors beside the Hugging Face cache
    (``<HF_HUB_CACHE>/inharmony-converted/``), keyed by the downloaded files, and
    ``model.pretrained_cfg.revision`` records the commit they came from.

    Args:
        model: A freshly built ``madisnet`` (DIRL localizer).
        cfg: The tag whose files to load (``hf_hub_id``, ``revision``).

    Raises:
        OfficialCheckpointError: the model or tag has no files in libcom's format.
        HubUnreachableError: offline (or the Hub unreachable) and not cached, within a second;
            the message names the repository, both files and the local alternative.

    Example:
        >>> import inharmony
        >>> model = inharmony.create_model("madisnet")  # doctest: +SKIP
        >>> load_libcom_weights(model, inharmony.get_pretrained_cfg("madisnet"))  # doctest: +SKIP
    """
    if _localizer_of(model) != "dirl" or cfg.hf_hub_id is None:
        raise OfficialCheckpointError(f"{cfg.name!r} has no files on the Hub in libcom's format")
    hint = (
        f"download {' and '.join(LIBCOM_FILES.values())} from https://huggingface.co/{cfg.hf_hub_id} into a "
        f"folder and use inharmony.load({cfg.architecture!r}, weights='that/folder'), or convert them once: "
        f"`inharmony convert madisnet-libcom --dir that/folder --out madisnet_hub`"
    )
    paths = {
        role: download_hub_file(cfg.hf_hub_id, name, offline_hint=hint, revision=cfg.revision)
        for role, name in LIBCOM_FILES.items()
    }
    state, cached = None, _converted_cache_path(cfg, paths)
    if cached.is_file():
        try:
            state = load_file(cached, device="cpu")
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            state = None
    if state is None:
        state = convert_official_state_dicts(
            {role: (path, read_official_checkpoint(path)) for role, path in paths.items()}, model
        )
        revision = _snapshot_revision(paths["g"])
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached, save(state, metadata={"source": cfg.hf_hub_id, "revision": revision or ""}))
    load_state_dict_strict(model, state, f"{cfg.hf_hub_id} ({', '.join(LIBCOM_FILES.values())})")
    model.pretrained_cfg = dataclasses.replace(cfg, revision=cfg.revision or _snapshot_revision(paths["g"]))


def _load(source: str, architecture: str, *, trust: bool = False, epoch: str | int = "best") -> nn.Module:
    # `trust` is not needed: the format is read with weights_only=True and a one-entry allow-list.
    return load_madisnet(source, architecture, epoch=epoch)


register_converter(
    Converter(
        name="madisnet-official",
        description="the MadisNet authors' g_epoch*.pth + ihdrnet_epoch*.pth folder",
        detect=is_madisnet_official_folder,
        load=_load,
        architectures=ARCHITECTURES,
        takes_epoch=True,
        identify=identify_madisnet,
    )
)
register_converter(
    Converter(
        name="madisnet-libcom",
        description="libcom's Inharmonious_G.pth + IHDRNet.pth folder (BCMIZB/Libcom_pretrained_models)",
        detect=is_madisnet_libcom_folder,
        load=_load,
        architectures=("madisnet",),
        load_published=load_libcom_weights,
        command=ConvertCommand(
            convert_madisnet,
            "MadisNet: libcom's Inharmonious_G.pth + IHDRNet.pth, or the authors' g_/ihdrnet_epochX.pth",
            "inharmony convert madisnet-libcom --dir libcom_files --out madisnet_hub",
        ),
    )
)
