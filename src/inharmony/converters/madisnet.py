"""The MadisNet authors' and libcom's checkpoints → :class:`~inharmony.models.madisnet.MadisNet` / UNet.

Two layouts of the same weights:

* the authors' zips (``bcmi/MadisNet-Inharmonious-Region-Localization``, ``dirl.zip`` / ``unet.zip``),
  unzipped: ``g_epoch{N|best}.pth`` (the localizer), ``ihdrnet_epoch{…}.pth`` and
  ``domain_encoder_epoch{…}.pth`` (training only, not needed to predict), each
  ``{"epoch", "best_acc", "state_dict", "opt"}`` with a ``MultiStepLR`` state in ``opt``;
* libcom's copy on the Hugging Face Hub (``BCMIZB/Libcom_pretrained_models``): ``Inharmonious_G.pth``
  and ``IHDRNet.pth`` in the same format (the DIRL localizer only).

Files are read with ``torch.load(weights_only=True)`` allowing ``collections.Counter`` only; every
missing, unexpected or misshapen key is named with its file. The key renaming lives beside the
model (:func:`inharmony.models.madisnet.official_key`), where ``create_model(pretrained=True)``
uses it too.

Example:
    >>> model = load_madisnet("MadisNet/dirl", "madisnet")  # doctest: +SKIP
    >>> model = inharmony.load("madisnet", weights="libcom_files/")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import OfficialCheckpointError
from ..models import create_model, get_pretrained_cfg
from ..models.madisnet import LIBCOM_FILES, LIBCOM_REPO, convert_official_state_dicts, read_official_checkpoint
from ._registry import Converter, register_converter

__all__ = [
    "convert_madisnet",
    "is_madisnet_libcom_folder",
    "is_madisnet_official_folder",
    "load_madisnet",
    "madisnet_files",
]

ARCHITECTURES = ("madisnet", "madisnet_unet", "unet")
_DIRL_KEY = "decoder.trans.im0.h_concat.conv.weight"
_UNET_KEY = "out_conv.0.weight"


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
        raise OfficialCheckpointError(f"{g_file} holds neither the authors' DIRL nor their UNet (no {_DIRL_KEY!r})")
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
    dir: str, out: str, model: str = "madisnet", epoch: str = "best", force: bool = False
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
    target = Path(out)
    if target.exists() and any(target.iterdir()) and not force:
        raise FileExistsError(f"{target} is not empty; choose another --out or pass --force")
    which: int | str = int(epoch) if epoch.isdigit() else epoch
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
    )
)
register_converter(
    Converter(
        name="madisnet-libcom",
        description="libcom's Inharmonious_G.pth + IHDRNet.pth folder (BCMIZB/Libcom_pretrained_models)",
        detect=is_madisnet_libcom_folder,
        load=_load,
        architectures=("madisnet",),
    )
)
