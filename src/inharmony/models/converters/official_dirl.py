"""The authors' DIRL checkpoints (``bcmi/DIRL-Inharmonious-Region-Localization``) → :class:`DIRL`.

The official DIRL code saves two files per run, ``encoder_epoch{N|best|latest}.pth`` and
``decoder_epoch{…}.pth``, each a dict ``{"epoch", "best_acc", "state_dict", "opt"}`` where ``opt``
is a ``MultiStepLR`` state dict and keys may carry DataParallel's ``module.`` prefix. The files are
read with ``torch.load(weights_only=True)``; the only global the format needs beyond tensors and
plain containers is ``collections.Counter`` (the scheduler's milestones), so that alone is allowed.
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path

import torch

from ...errors import CheckpointError, OfficialCheckpointError
from ...files import check_output_folder
from .. import describe_weights, get_pretrained_cfg, read_state_dict
from ..dirl import DIRL
from ._registry import ConvertCommand, Converter, check_epoch, refuse_other_format, register_converter

__all__ = [
    "convert_dirl_official",
    "dirl_key_to_official",
    "dirl_to_official_state_dicts",
    "load_official_dirl",
    "official_dirl_files",
]


# Ours → official, applied in order; the first rule whose pattern matches renames the key.
_FUSION_NAMES = {
    "high_to_low": "top_down",
    "low_to_high": "bottom_up",
    "high_to_mid": "top_down_h2m",
    "mid_to_low": "top_down_m2l",
    "low_to_mid": "bottom_up_l2m",
    "mid_to_high": "bottom_up_m2h",
    "merge_low": "l_concat",
    "merge_mid": "m_concat",
    "merge_high": "h_concat",
}
_DECODER_NAMES = {"gate_conv": "conv_inup", "bottom_conv": "conv_inbottom", "fuse": "conv_cat"}
_INNER = {"conv": "conv", "bn": "norm"}
_RULES: list[tuple[re.Pattern[str], object]] = [
    (re.compile(r"^encoder\.stem_conv\.(.+)$"), lambda m: f"inconv.{m[1]}"),
    (re.compile(r"^encoder\.stem_bn\.(.+)$"), lambda m: f"inbn.{m[1]}"),
    (re.compile(r"^encoder\.layer(\d)\.(.+)$"), lambda m: f"encoder{m[1]}.{m[2]}"),
    (
        re.compile(r"^fusion\.levels\.(\d)\.(\w+)\.(conv|bn)\.(.+)$"),
        lambda m: f"trans.im{m[1]}.{_FUSION_NAMES[m[2]]}.{_INNER[m[3]]}.{m[4]}",
    ),
    (
        re.compile(r"^attention\.(\d)\.channel\.conv\.(.+)$"),
        lambda m: f"attention_layers.mda_{m[1]}.ChannelGate.conv.{m[2]}",
    ),
    (
        re.compile(r"^attention\.(\d)\.spatial\.(reduce|project)\.(.+)$"),
        lambda m: f"attention_layers.mda_{m[1]}.SpatialGate.spatial."
        f"{0 if m[2] == 'reduce' else 1}.{m[3]}",
    ),
    (
        re.compile(r"^decoder\.blocks\.(\d)\.(\w+)\.(conv|bn)\.(.+)$"),
        lambda m: f"decoder_layers.deconv.decoder.d{m[1]}.{_DECODER_NAMES[m[2]]}.{_INNER[m[3]]}.{m[4]}",
    ),
    (re.compile(r"^decoder\.head\.(.+)$"), lambda m: f"decoder_layers.deconv.decoder.d0.conv5.{m[1]}"),
]
# The official outermost GGD block builds a conv that its forward never calls (see models/dirl.py).
_UNUSED_OFFICIAL_PREFIX = "decoder_layers.deconv.decoder.d0.conv4."
_ENCODER_KEY = re.compile(r"^(inconv|inbn|encoder\d)\.")
_OPTIONAL_SUFFIX = ".num_batches_tracked"  # absent from checkpoints written by torch < 0.4.1


def dirl_key_to_official(key: str) -> str:
    """Name in the official code of a :class:`~inharmony.models.dirl.DIRL` state-dict key.

    Example:
        >>> dirl_key_to_official("encoder.stem_conv.weight")
        'inconv.weight'
    """
    for pattern, rename in _RULES:
        match = pattern.match(key)
        if match:
            return rename(match)  # type: ignore[operator]
    raise KeyError(f"no official name for DIRL key {key!r}")


def dirl_to_official_state_dicts(model: DIRL) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split a DIRL state dict into the official ``(encoder, decoder)`` state dicts.

    The never-used official ``conv4`` weights are not produced; :func:`load_official_dirl` does
    not need them.
    """
    encoder, decoder = {}, {}
    for key, value in model.state_dict().items():
        official = dirl_key_to_official(key)
        (encoder if _ENCODER_KEY.match(official) else decoder)[official] = value
    return encoder, decoder


def official_dirl_files(path: str | os.PathLike[str], epoch: str | int = "best") -> tuple[Path, Path]:
    """The ``(encoder, decoder)`` checkpoint paths of ``epoch`` in ``path``; raises if either is missing."""
    folder = Path(path)
    if not folder.is_dir():
        raise OfficialCheckpointError(
            f"{folder} is not a directory; pass the folder that holds encoder_epoch{epoch}.pth "
            f"and decoder_epoch{epoch}.pth"
        )
    files = (folder / f"encoder_epoch{epoch}.pth", folder / f"decoder_epoch{epoch}.pth")
    for file in files:
        if not file.is_file():
            refuse_other_format(folder, ("dirl-official",), "the DIRL authors' checkpoints")
            found = sorted(p.name for p in folder.glob("*_epoch*.pth"))
            raise OfficialCheckpointError(
                f"missing official checkpoint file {file}. Files found in {folder}: "
                f"{', '.join(found) or 'none'}. Choose the epoch with epoch=... (e.g. 'best', 'latest', 60)."
            )
    return files


def _read_official(file: Path) -> dict[str, torch.Tensor]:
    try:
        with torch.serialization.safe_globals([collections.Counter]):
            payload = read_state_dict(file, whole=True)  # names a file that is no checkpoint, or runs code
    except CheckpointError as err:
        raise OfficialCheckpointError(str(err)) from err
    state = payload.get("state_dict", payload)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OfficialCheckpointError(
            f"{file} is not an official DIRL checkpoint: expected a dict with a 'state_dict' of tensors"
        )
    return {key.removeprefix("module."): value for key, value in state.items()}


def identify_official_dirl(keys: Collection[str]) -> str | None:
    """Which of the authors' two files a state dict with these key names is, or ``None``."""
    if "inconv.weight" in keys and any(key.startswith("encoder1.") for key in keys):
        return "an encoder file of the DIRL authors' checkpoints (encoder_epochN.pth)"
    if any(key.startswith("trans.im0.") for key in keys) and any(key.startswith("decoder_layers.") for key in keys):
        return "a decoder file of the DIRL authors' checkpoints (decoder_epochN.pth)"
    return None


def _not_dirl(file: Path, state: Mapping[str, torch.Tensor], role: str) -> OfficialCheckpointError:
    return OfficialCheckpointError(
        f"{file} is not the {role} file of the DIRL authors' checkpoints: it holds {describe_weights(state)}"
    )


def load_official_dirl(
    path: str | os.PathLike[str],
    epoch: str | int = "best",
) -> DIRL:
    """Build DIRL from the authors' checkpoint pair, in eval mode.

    Args:
        path: Folder holding ``encoder_epoch{epoch}.pth`` and ``decoder_epoch{epoch}.pth``.
        epoch: ``"best"``, ``"latest"`` or an epoch number, as in the official file names.

    Returns:
        A :class:`~inharmony.models.dirl.DIRL` (ResNet34; decoder width read from the weights)
        whose outputs equal the official network's with the same weights.

    Raises:
        OfficialCheckpointError: a file is missing, unreadable or corrupt, or a key is missing,
            unexpected or of the wrong shape (the message names the file and the key).

    Example:
        >>> model = load_official_dirl("checkpoints/dirl", epoch="best")  # doctest: +SKIP
        >>> model(images)["mask"]  # doctest: +SKIP
    """
    encoder_file, decoder_file = official_dirl_files(path, epoch)
    loaded = {encoder_file: _read_official(encoder_file), decoder_file: _read_official(decoder_file)}
    for file, role in ((encoder_file, "encoder"), (decoder_file, "decoder")):
        if f"{role} file" not in (identify_official_dirl(loaded[file]) or ""):
            raise _not_dirl(file, loaded[file], role)
    origin = {key: file for file, state in loaded.items() for key in state}
    official = {key: value for state in loaded.values() for key, value in state.items()}
    if "encoder1.0.conv3.weight" in official:
        raise OfficialCheckpointError(
            f"{encoder_file} holds a ResNet50 encoder; only the released ResNet34 DIRL is supported"
        )
    width_key = "trans.im0.h_concat.conv.weight"
    if width_key not in official:
        raise OfficialCheckpointError(f"{decoder_file} has no key {width_key!r}; is it a DIRL decoder?")
    model = DIRL(backbone="resnet34", decoder_channels=int(official[width_key].shape[0]))

    ours = model.state_dict()
    name_map = {dirl_key_to_official(key): key for key in ours}
    problems = []
    converted = {}
    for key, value in official.items():
        if key.startswith(_UNUSED_OFFICIAL_PREFIX):
            continue
        if key not in name_map:
            problems.append(f"unexpected key {key!r} in {origin[key]}")
            continue
        target = ours[name_map[key]]
        if tuple(value.shape) != tuple(target.shape):
            problems.append(
                f"key {key!r} in {origin[key]} has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
            )
            continue
        converted[name_map[key]] = value.to(target.dtype)
    for official_key, key in name_map.items():
        if official_key not in official:
            if key.endswith(_OPTIONAL_SUFFIX):
                converted[key] = ours[key]
                continue
            file = encoder_file if _ENCODER_KEY.match(official_key) else decoder_file
            problems.append(f"missing key {official_key!r} in {file}")
    if problems:
        shown = "\n  ".join(problems[:25])
        more = f"\n  … and {len(problems) - 25} more" if len(problems) > 25 else ""
        raise OfficialCheckpointError(f"official DIRL checkpoint does not match:\n  {shown}{more}")
    model.load_state_dict(converted, strict=True)
    model.pretrained_cfg = get_pretrained_cfg("dirl")
    return model.eval()


def convert_dirl_official(
    dir: str, out: str, epoch: str = "best", metrics: str | None = None, force: bool = False
) -> int:
    """Convert the DIRL authors' released checkpoints into an inharmony hub folder.

    Reads ``encoder_epoch{EPOCH}.pth`` and ``decoder_epoch{EPOCH}.pth`` of
    bcmi/DIRL-Inharmonious-Region-Localization and writes ``config.json``, ``model.safetensors`` and
    a model card.

    Args:
        dir: Folder holding the official checkpoint pair.
        out: Hub folder to write.
        epoch: ``best``, ``latest`` or an epoch number.
        metrics: ``metrics.json`` measured for these weights (for the model card).
        force: Write into a non-empty ``--out`` folder.

    Example:
        inharmony convert dirl-official --dir DIRL/checkpoints --epoch best --out dirl_hub
    """
    from ..model_card import read_metrics_file  # the card's tables; only needed when writing a folder

    which = check_epoch(epoch, ("best", "latest"))
    target = check_output_folder(out, force)
    card_metrics = read_metrics_file(metrics) if metrics else None
    model = load_official_dirl(dir, epoch=which)
    model.save_pretrained(  # the converted DIRL recorded its constructor arguments and its registry entry
        target,
        metrics=card_metrics,
        model_card_kwargs={
            "training_data": "iHarmony4, le50 training split; weights released by the DIRL authors "
            f"(converted from encoder/decoder_epoch{which}.pth by `inharmony convert dirl-official`).",
        },
    )
    print(f"wrote {target}/config.json, model.safetensors, README.md")
    return 0


def is_official_dirl_folder(source: str) -> bool:
    """Whether ``source`` is a folder holding the authors' ``encoder_epoch*.pth`` files."""
    path = Path(source)
    return path.is_dir() and any(path.glob("encoder_epoch*.pth"))


def _load(source: str, architecture: str, *, trust: bool = False, epoch: str | int = "best") -> DIRL:
    # `trust` is not needed: the official format is read with weights_only=True and a one-entry allow-list.
    if architecture != "dirl":
        raise OfficialCheckpointError(f"{source} holds the authors' DIRL checkpoints, not {architecture!r}")
    return load_official_dirl(source, epoch=epoch)


register_converter(
    Converter(
        name="dirl-official",
        description="the DIRL authors' encoder_epoch*.pth + decoder_epoch*.pth folder",
        detect=is_official_dirl_folder,
        load=_load,
        architectures=("dirl",),
        takes_epoch=True,
        identify=identify_official_dirl,
        command=ConvertCommand(
            convert_dirl_official,
            "bcmi/DIRL: encoder_epochX.pth + decoder_epochX.pth",
            "inharmony convert dirl-official --dir DIRL/checkpoints --epoch best --out dirl_hub",
        ),
    )
)
