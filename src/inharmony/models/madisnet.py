"""MadisNet: Inharmonious Region Localization by Magnifying Domain Discrepancy (Liang et al., AAAI 2022).

An improved HDRNet (:class:`~inharmony.models._ihdrnet.IHDRNet`, 1.47 M parameters) maps the
composite into a colour space where the inharmonious region stands out; a localizer runs on the
mapped image. This module reproduces the computation of the authors' code
(``bcmi/MadisNet-Inharmonious-Region-Localization``, also shipped by libcom), so that their released
weights, converted, give the same outputs:

* ``madisnet``: iHDRNet → their DIRL configuration (ResNet34, ``ggd_ch=32``, ``mda_mode="mask"``). Its
  BFI, MDA and GGD blocks compute exactly what :mod:`inharmony.models.dirl`'s do, which are reused;
  what differs from the DIRL release is that the attention maps are resized to the input size
  with ``align_corners=True``. The unused outermost GGD convolution (9,280 parameters of the
  authors' 53,471,354) is left out, as in :class:`~inharmony.models.dirl.DIRL`.
* ``madisnet_unet``: iHDRNet → their UNet (:class:`~inharmony.models.unet.UNetLocalizer`).

The localizer sees the retouched image as iHDRNet returns it, in (0, 1) and *not*
ImageNet-normalised, as in the authors' training and test code. The input of the whole network is
the ImageNet-normalised composite, at 256×256 for the published weights.

The published weights are libcom's copy on the Hugging Face Hub (``BCMIZB/Libcom_pretrained_models``:
``Inharmonious_G.pth`` for the localizer, ``IHDRNet.pth``). The functions at the end of this module
read the authors' and libcom's files (``torch.load(weights_only=True)``, ``collections.Counter``
allowed for the scheduler state they carry) and rename their keys to ours;
:mod:`inharmony.converters.madisnet` recognises their folders for :func:`inharmony.load`.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import nn

from ..errors import OfficialCheckpointError
from ..files import atomic_write_bytes
from ._checkpoint import load_state_dict_strict
from ._download import _cache_dir, download_hub_file
from ._hub import HubMixin
from ._ihdrnet import IHDRNet
from ._input import check_input
from ._registry import PretrainedCfg, register_model
from .dirl import BidirectionalFeatureIntegration, GlobalContextDecoder, MaskGuidedDualAttention
from .encoders import ResNetEncoder
from .unet import UNetLocalizer

__all__ = [
    "LIBCOM_FILES",
    "LIBCOM_REPO",
    "MadisDIRL",
    "MadisNet",
    "convert_official_state_dicts",
    "madisnet",
    "madisnet_unet",
    "official_key",
    "read_official_checkpoint",
    "to_official_state_dicts",
]

SIZE_MULTIPLE = 16
MADISNET_PAPER = (
    "Jing Liang, Li Niu, Penghao Wu, Fengjun Guo, Teng Long. Inharmonious Region Localization by Magnifying "
    "Domain Discrepancy. AAAI 2022."
)
MADISNET_PAPER_URL = "https://arxiv.org/abs/2209.15368"
#: Hugging Face Hub repository of the libcom toolbox, which holds the published MadisNet(DIRL) weights.
LIBCOM_REPO = "BCMIZB/Libcom_pretrained_models"
#: libcom's files there: ``{role: file name}`` (the localizer ``g`` and the colour mapper).
LIBCOM_FILES = {"g": "Inharmonious_G.pth", "ihdrnet": "IHDRNet.pth"}
LOCALIZERS = ("dirl", "unet")


class MadisDIRL(nn.Module):
    """The authors' DIRL configuration inside MadisNet: ResNet34 → BFI → MDA → GGD.

    Args:
        decoder_channels: ``ggd_ch`` (32 in the authors' code and libcom).
        pretrained_backbone: ImageNet initialisation of the encoder; see :class:`ResNetEncoder`.

    ``forward(x)`` returns ``(mask, attention)``: the mask ``(B,1,H,W)`` and the five MDA spatial
    gates resized to the input size (bilinear, ``align_corners=True``), finest level first.
    """

    def __init__(self, decoder_channels: int = 32, pretrained_backbone: bool | str = False) -> None:
        super().__init__()
        self.encoder = ResNetEncoder("resnet34", pretrained_backbone=pretrained_backbone)
        self.fusion = BidirectionalFeatureIntegration(self.encoder.channels, decoder_channels)
        self.attention = nn.ModuleList(MaskGuidedDualAttention(decoder_channels) for _ in self.encoder.channels)
        self.decoder = GlobalContextDecoder(decoder_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        size = x.shape[-2:]
        attended, maps = [], []
        for feat, mda in zip(self.fusion(self.encoder(x)), self.attention, strict=True):
            feat, gate = mda(feat)
            attended.append(feat)
            maps.append(F.interpolate(gate, size=size, mode="bilinear", align_corners=True))
        return torch.sigmoid(self.decoder(attended)), maps


class MadisNet(HubMixin, nn.Module):
    """MadisNet: iHDRNet colour mapping, then a localizer on the mapped image.

    Args:
        localizer: ``"dirl"`` (the paper's best, 87.88 AP) or ``"unet"``.
        decoder_channels: Width of the DIRL localizer's decoder (``ggd_ch``; ignored by the UNet).
        pretrained_backbone: ImageNet initialisation of the localizer's ResNet34 (for training).
        luma_bins: Depth of iHDRNet's bilateral grid.
        theta: Central-difference weight of iHDRNet's splat convolutions.

    Inputs are ImageNet-normalised RGB ``(B, 3, H, W)`` with ``H`` and ``W`` multiples of 16; the
    published weights were trained and evaluated at 256×256.

    Returns:
        ``{"mask": (B,1,H,W), "retouched": (B,3,H,W), "attention": [five (B,1,H,W)]}``, all in
        [0, 1]; ``"retouched"`` is iHDRNet's image (0–1 RGB) that the localizer saw; ``"attention"``
        (DIRL localizer only) are the MDA gates, finest level first. In training mode the dict also
        holds ``"composite"`` (the input), which :class:`inharmony.losses.madisnet.MadisNetLoss` needs.

    Example:
        >>> model = MadisNet().eval()
        >>> out = model(torch.randn(1, 3, 64, 64))
        >>> out["mask"].shape, out["retouched"].shape, len(out["attention"])
        (torch.Size([1, 1, 64, 64]), torch.Size([1, 3, 64, 64]), 5)
    """

    def __init__(
        self,
        localizer: str = "dirl",
        decoder_channels: int = 32,
        pretrained_backbone: bool | str = False,
        luma_bins: int = 16,
        theta: float = 0.7,
    ) -> None:
        super().__init__()
        if localizer not in LOCALIZERS:
            raise ValueError(f"localizer must be one of {LOCALIZERS}, got {localizer!r}")
        self.localizer_name = localizer
        self.ihdrnet = IHDRNet(luma_bins=luma_bins, theta=theta)
        if localizer == "dirl":
            self.localizer: nn.Module = MadisDIRL(decoder_channels, pretrained_backbone)
        else:
            self.localizer = UNetLocalizer(pretrained_backbone)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        check_input(x, SIZE_MULTIPLE)
        retouched, _ = self.ihdrnet(x)
        if self.localizer_name == "dirl":
            mask, maps = self.localizer(retouched)
            out = {"mask": mask, "retouched": retouched, "attention": maps}
        else:
            out = {"mask": self.localizer(retouched), "retouched": retouched}
        if self.training:  # the training loss compares the domains of the composite and of the retouched image
            out["composite"] = x
        return out

    def load_published_weights(self, cfg: PretrainedCfg) -> None:
        """Fill the model with libcom's published files (downloaded, converted and cached once).

        ``create_model(..., pretrained=True)`` calls this. The converted weights are cached as
        safetensors beside the Hugging Face cache (``<HF_HUB_CACHE>/inharmony-converted/``), keyed by
        the downloaded files, and ``model.pretrained_cfg.revision`` records the commit they came from.

        Raises:
            HubUnreachableError: offline (or the Hub unreachable) and not cached, within a second;
                the message names the repository, both files and the local alternative.
        """
        if self.localizer_name != "dirl" or cfg.hf_hub_id is None:
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
                {role: (path, read_official_checkpoint(path)) for role, path in paths.items()}, self
            )
            revision = _snapshot_revision(paths["g"])
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(cached, save(state, metadata={"source": cfg.hf_hub_id, "revision": revision or ""}))
        load_state_dict_strict(self, state, f"{cfg.hf_hub_id} ({', '.join(LIBCOM_FILES.values())})")
        self.pretrained_cfg = dataclasses.replace(cfg, revision=cfg.revision or _snapshot_revision(paths["g"]))


_FAMILY = dict(
    input_size=(3, 256, 256),
    paper=MADISNET_PAPER,
    paper_url=MADISNET_PAPER_URL,
    size_multiple=SIZE_MULTIPLE,
    default_loss="inharmony.losses.madisnet.MadisNetLoss",
    download_args=("pretrained_backbone",),
)


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "madisnet",
            tag="libcom",
            hf_hub_id=LIBCOM_REPO,
            # No commit is pinned (none could be verified offline); the commit downloaded is recorded
            # in model.pretrained_cfg.revision and in the converted file's metadata.
            revision=None,
            license="apache-2.0",
            metrics={"ap": 87.88, "f1": 0.8204, "iou": 76.51},
            notes=(
                "Weights: the authors' MadisNet(DIRL), as the libcom toolbox publishes them (Inharmonious_G.pth, "
                "IHDRNet.pth; repository tagged Apache-2.0). Reference scores: iHarmony4 le50 test split, as "
                "reported in the paper, at 256x256."
            ),
            **_FAMILY,
        )
    ]
)
def madisnet(**kwargs) -> MadisNet:
    """MadisNet with the DIRL localizer (ResNet34, ``ggd_ch=32``), as the authors and libcom build it."""
    return MadisNet(**{"localizer": "dirl", **kwargs})


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "madisnet_unet",
            tag="ihd_le50",
            license="unknown",
            metrics={"ap": 80.18, "f1": 0.7370, "iou": 68.45},
            notes=(
                "Reference scores: iHarmony4 le50 test split, as reported in the paper. The authors' weights are a "
                "zip on Google Drive/Dropbox (g_, ihdrnet_, domain_encoder_epochbest.pth): "
                "inharmony.load('madisnet_unet', weights='unzipped/folder')."
            ),
            **_FAMILY,
        )
    ]
)
def madisnet_unet(**kwargs) -> MadisNet:
    """MadisNet with the authors' UNet localizer (ResNet34 encoder, five levels)."""
    return MadisNet(**{"localizer": "unet", **kwargs})


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
    if not file.is_file():
        raise OfficialCheckpointError(f"checkpoint file not found: {file}")
    try:
        with torch.serialization.safe_globals([collections.Counter]):
            payload = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):  # torch reports unreadable bytes as an unpickling error too
            raise OfficialCheckpointError(
                f"cannot read {file} as a PyTorch checkpoint (corrupt or truncated?): {_unpickler_message(err)}"
            ) from err
        raise OfficialCheckpointError(
            f"{file} holds objects the authors' checkpoint format does not use, so it was not loaded "
            f"(weights_only=True): {_unpickler_message(err)}"
        ) from err
    except Exception as err:
        raise OfficialCheckpointError(
            f"cannot read {file} as a PyTorch checkpoint (corrupt or truncated?): {type(err).__name__}: {err}"
        ) from err
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


def _unpickler_message(err: Exception) -> str:
    """The one informative line of torch's long weights-only error."""
    lines = [line.strip() for line in str(err).splitlines() if "WeightsUnpickler error" in line]
    return lines[0].split(". Please use")[0] if lines else str(err).splitlines()[0]


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
    return Path(_cache_dir()) / "inharmony-converted" / repo / name
