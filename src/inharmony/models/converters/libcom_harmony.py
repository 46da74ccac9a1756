"""libcom's PCTNet.pth and BargainNet.pth → :class:`~inharmony.models.pctnet.PCTNet` and ``BargainNet``.

The libcom toolbox publishes, on the Hugging Face Hub (``BCMIZB/Libcom_pretrained_models``, Apache-2.0),
``PCTNet.pth`` (its image harmonization model) and ``BargainNet.pth`` (its harmony score model), each a bare
state dict of libcom's module layout. These are the published weights of ``pctnet.libcom`` and
``bargainnet.libcom``: ``create_model(name, pretrained=True)`` downloads the file and converts it through
the model's ``checkpoint_filter_fn`` (a renaming: cheap, so nothing converted is cached). The same format
loads from a file or a folder with :func:`inharmony.load`, and ``inharmony convert harmony-libcom`` writes
a hub folder.

Files are read with ``torch.load(weights_only=True)``; every missing, unexpected or misshapen key is named
with its file.

Recognised (names and pickled key names only, no tensor read): a file holding libcom's PCTNet keys
(``encoder.transformer_enc.layers.*``) or BargainNet keys (``conv5f.weight``, ``convs.weight``), and a
folder holding ``PCTNet.pth`` or ``BargainNet.pth`` but no ``Inharmonious_G.pth`` (libcom's whole
``pretrained_models`` folder is the ``madisnet-libcom`` format's; pass the file itself there).

Example:
    >>> model = inharmony.load("pctnet", weights="PCTNet.pth")  # doctest: +SKIP
    >>> scorer = inharmony.load("bargainnet", weights="libcom_files/")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

from torch import nn

from ...errors import OfficialCheckpointError
from ...files import check_output_folder
from .. import (
    PretrainedCfg,
    create_model,
    describe_weights,
    download_hub_file,
    get_pretrained_cfg,
    load_state_dict_strict,
    read_state_dict,
)
from ..bargainnet import LIBCOM_FILE as BARGAINNET_FILE
from ..bargainnet import checkpoint_filter_fn as bargainnet_filter
from ..madisnet import LIBCOM_REPO
from ..pctnet import LIBCOM_FILE as PCTNET_FILE
from ..pctnet import checkpoint_filter_fn as pctnet_filter
from ._registry import ConvertCommand, Converter, register_converter

__all__ = [
    "LIBCOM_FILES",
    "convert_libcom_harmony",
    "is_libcom_harmony",
    "load_libcom_harmony",
    "load_libcom_published",
]

#: The file of each architecture in :data:`~inharmony.models.madisnet.LIBCOM_REPO`.
LIBCOM_FILES = {"pctnet": PCTNET_FILE, "bargainnet": BARGAINNET_FILE}
_FILTERS = {"pctnet": pctnet_filter, "bargainnet": bargainnet_filter}
# Key names only libcom's layout of each network has, as they appear in the pickled structure.
_MARKERS = {"pctnet": (b"encoder.transformer_enc.layers.",), "bargainnet": (b"conv5f.weight", b"convs.weight")}
_MADISNET_FILE = "Inharmonious_G.pth"
_HEAD = 1 << 16


def _pickle_structure(path: str) -> bytes:
    """The pickled structure (key names) of a torch file, without reading its tensors; ``b""`` if none."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                return archive.read(name)[: 16 * _HEAD] if name else b""
        with open(path, "rb") as fh:  # legacy format: the pickle comes first
            head = fh.read(_HEAD)
        return head if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5 else b""
    except (OSError, zipfile.BadZipFile):
        return b""


def _held_by_file(path: str) -> str | None:
    structure = _pickle_structure(path)
    return next((arch for arch, marks in _MARKERS.items() if all(m in structure for m in marks)), None)


def _held_by_keys(keys: Collection[str]) -> str | None:
    names = {str(key).removeprefix("module.") for key in keys}
    marks = {arch: [m.decode() for m in found] for arch, found in _MARKERS.items()}
    return next(
        (arch for arch, found in marks.items() if all(any(n.startswith(m) for n in names) for m in found)), None
    )


def _not_libcom(path: str | os.PathLike[str], state: Collection[str], expected: str) -> OfficialCheckpointError:
    return OfficialCheckpointError(f"{path} is not libcom's {expected}: it holds {describe_weights(state)}")


def identify_libcom_harmony(keys: Collection[str]) -> str | None:
    """``"libcom's PCTNet.pth"`` / ``"libcom's BargainNet.pth"`` for a state dict in its key names, else ``None``."""
    held = _held_by_keys(keys)
    return f"libcom's {LIBCOM_FILES[held]}" if held is not None else None


def is_libcom_harmony(source: str) -> bool:
    """Whether ``source`` is libcom's ``PCTNet.pth`` / ``BargainNet.pth`` or a folder holding one (see above)."""
    path = Path(source)
    if path.is_dir():
        has_file = any((path / name).is_file() for name in LIBCOM_FILES.values())
        return has_file and not (path / _MADISNET_FILE).is_file()
    return path.is_file() and _held_by_file(str(path)) is not None


def _fill(model: nn.Module, architecture: str, path: str, source: str) -> None:
    state = read_state_dict(path)
    load_state_dict_strict(model, _FILTERS[architecture](state, model), source)


def load_libcom_harmony(source: str | os.PathLike[str], architecture: str) -> nn.Module:
    """Build ``pctnet`` or ``bargainnet`` from libcom's file (or a folder holding it), in eval mode.

    Args:
        source: ``PCTNet.pth`` / ``BargainNet.pth`` (any name), or a folder holding the file of ``architecture``.
        architecture: ``"pctnet"`` or ``"bargainnet"``; it must be the network the file holds.

    Returns:
        The model, whose outputs equal libcom's network's with the same weights.

    Raises:
        OfficialCheckpointError: another architecture asked for, the folder lacks the file, or the file holds
            the other network.
        CheckpointError: the file is unreadable, or a key is missing, unexpected or misshapen (all named).

    Example:
        >>> model = load_libcom_harmony("pretrained_models/PCTNet.pth", "pctnet")  # doctest: +SKIP
    """
    if architecture not in LIBCOM_FILES:
        raise OfficialCheckpointError(
            f"{source} holds libcom's PCTNet or BargainNet weights; they load as 'pctnet' or 'bargainnet', "
            f"not {architecture!r}"
        )
    path = Path(source)
    if path.is_dir():
        file = path / LIBCOM_FILES[architecture]
        if not file.is_file():
            found = sorted(p.name for p in path.glob("*.pth"))
            raise OfficialCheckpointError(
                f"{architecture!r} needs libcom's {LIBCOM_FILES[architecture]} in {path}; "
                f"files found: {', '.join(found) or 'none'}"
            )
        path = file
    state = read_state_dict(path)
    held = _held_by_keys(state)
    if held is None:
        raise _not_libcom(path, state, LIBCOM_FILES[architecture])
    if held != architecture:
        raise OfficialCheckpointError(f"{path} holds libcom's {held!r}, not {architecture!r}; load it as {held!r}")
    model = create_model(architecture)
    load_state_dict_strict(model, _FILTERS[architecture](state, model), str(path))
    model.pretrained_cfg = get_pretrained_cfg(architecture)
    return model.eval()


def _snapshot_revision(path: str) -> str | None:
    """The commit of a Hugging Face cache path ``.../snapshots/<commit>/<file>``, if it is one."""
    parts = Path(path).parts
    return parts[-2] if len(parts) >= 3 and parts[-3] == "snapshots" else None


def load_libcom_published(model: nn.Module, cfg: PretrainedCfg) -> None:
    """Fill a freshly built ``pctnet`` / ``bargainnet`` with libcom's published file (downloaded once, cached).

    ``create_model(name, pretrained=True)`` calls this: the tag's ``weights_format`` names this format.
    ``model.pretrained_cfg.revision`` records the commit the file came from.

    Raises:
        OfficialCheckpointError: the architecture has no file in libcom's format.
        HubUnreachableError: offline (or the Hub unreachable) and not cached, within a second.

    Example:
        >>> model = inharmony.create_model("pctnet", pretrained=True)  # doctest: +SKIP
    """
    if cfg.architecture not in LIBCOM_FILES or cfg.hf_hub_id is None:
        raise OfficialCheckpointError(f"{cfg.name!r} has no file on the Hub in libcom's format")
    name = LIBCOM_FILES[cfg.architecture]
    hint = (
        f"download {name} from https://huggingface.co/{cfg.hf_hub_id} and use "
        f"inharmony.load({cfg.architecture!r}, weights='path/to/{name}')"
    )
    path = download_hub_file(cfg.hf_hub_id, name, offline_hint=hint, revision=cfg.revision)
    _fill(model, cfg.architecture, path, f"{cfg.hf_hub_id}/{name}")
    model.pretrained_cfg = dataclasses.replace(cfg, revision=cfg.revision or _snapshot_revision(path))


def convert_libcom_harmony(
    file: str, out: str, model: Literal["", "pctnet", "bargainnet"] = "", force: bool = False
) -> int:
    """Convert libcom's PCTNet.pth or BargainNet.pth into an inharmony hub folder.

    Args:
        file: libcom's file (from the Hugging Face Hub repository BCMIZB/Libcom_pretrained_models).
        out: Hub folder to write.
        model: ``pctnet`` or ``bargainnet``; by default, the network the file holds.
        force: Write into a non-empty ``--out`` folder.

    Example:
        inharmony convert harmony-libcom --file PCTNet.pth --out pctnet_hub
    """
    target = check_output_folder(out, force)
    architecture = model or _held_by_file(file)
    if not architecture:  # not recognised from its pickle: a safetensors copy, or not libcom's at all
        state = read_state_dict(file)
        architecture = _held_by_keys(state)
        if architecture is None:
            raise _not_libcom(file, state, " or ".join(LIBCOM_FILES.values()))
    net = load_libcom_harmony(file, architecture)
    net.save_pretrained(
        target,
        model_card_kwargs={
            "training_data": f"iHarmony4; weights released by the libcom toolbox ({LIBCOM_REPO}), converted "
            f"from {Path(file).name} by `inharmony convert harmony-libcom`.",
        },
    )
    print(f"wrote {target}/config.json, model.safetensors, README.md")
    return 0


def _load(source: str, architecture: str, *, trust: bool = False, **_: Any) -> nn.Module:
    # `trust` is not needed: libcom's files are bare state dicts, read with weights_only=True.
    return load_libcom_harmony(source, architecture)


register_converter(
    Converter(
        name="harmony-libcom",
        description="libcom's PCTNet.pth or BargainNet.pth (BCMIZB/Libcom_pretrained_models), or a folder holding it",
        detect=is_libcom_harmony,
        load=_load,
        architectures=tuple(LIBCOM_FILES),
        load_published=load_libcom_published,
        identify=identify_libcom_harmony,
        command=ConvertCommand(
            convert_libcom_harmony,
            "PCTNet / BargainNet: libcom's PCTNet.pth or BargainNet.pth",
            "inharmony convert harmony-libcom --file PCTNet.pth --out pctnet_hub",
        ),
    )
)
