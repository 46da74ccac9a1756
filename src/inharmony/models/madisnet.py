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
``Inharmonious_G.pth`` for the localizer, ``IHDRNet.pth``), in the authors' format: the tag names that
format (``weights_format="madisnet-libcom"``) and :mod:`inharmony.models.converters.madisnet`, the one place
that knows the authors' key names, reads them for ``create_model(pretrained=True)`` and :func:`inharmony.load`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._hub import HubMixin
from ._ihdrnet import IHDRNet
from ._input import check_input, check_outputs
from ._registry import Bound, PretrainedCfg, register_model
from .dirl import BidirectionalFeatureIntegration, GlobalContextDecoder, MaskGuidedDualAttention
from .encoders import ResNetEncoder
from .unet import UNetLocalizer

__all__ = ["LIBCOM_REPO", "MadisDIRL", "MadisNet", "madisnet", "madisnet_unet"]

SIZE_MULTIPLE = 16
MADISNET_PAPER = (
    "Jing Liang, Li Niu, Penghao Wu, Fengjun Guo, Teng Long. Inharmonious Region Localization by Magnifying "
    "Domain Discrepancy. AAAI 2022."
)
MADISNET_PAPER_URL = "https://arxiv.org/abs/2209.15368"
#: Hugging Face Hub repository of the libcom toolbox, which holds the published MadisNet(DIRL) weights.
LIBCOM_REPO = "BCMIZB/Libcom_pretrained_models"
LOCALIZERS = ("dirl", "unet")


class MadisDIRL(nn.Module):
    """The authors' DIRL configuration inside MadisNet: ResNet34 → BFI → MDA → GGD.

    Args:
        decoder_channels: ``ggd_ch`` (32 in the authors' code and libcom).
        pretrained_backbone: ImageNet initialisation of the encoder; see :class:`ResNetEncoder`.

    ``forward(x)`` returns ``(mask, attention)``: the mask ``(B,1,H,W)`` and the five MDA spatial
    gates resized to the input size (bilinear, ``align_corners=True``), finest level first;
    ``forward(x, attention=False)`` returns ``(mask, [])`` without running the finest level's BFI block
    and MDA, which only that level's gate reads (the same mask, bit for bit).
    """

    def __init__(self, decoder_channels: int = 32, pretrained_backbone: bool | str = False) -> None:
        super().__init__()
        self.encoder = ResNetEncoder("resnet34", pretrained_backbone=pretrained_backbone)
        self.fusion = BidirectionalFeatureIntegration(self.encoder.channels, decoder_channels)
        self.attention = nn.ModuleList(MaskGuidedDualAttention(decoder_channels) for _ in self.encoder.channels)
        self.decoder = GlobalContextDecoder(decoder_channels)

    def forward(self, x: torch.Tensor, attention: bool = True) -> tuple[torch.Tensor, list[torch.Tensor]]:
        size = x.shape[-2:]
        attended: list[torch.Tensor | None] = []
        maps = []
        for feat, mda in zip(self.fusion(self.encoder(x), finest=attention), self.attention, strict=True):
            if feat is None:
                attended.append(None)
                continue
            feat, gate = mda(feat)
            attended.append(feat)
            if attention:
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
        out = self.forward_outputs(x, self.output_keys)
        if self.training:  # the training loss compares the domains of the composite and of the retouched image
            out["composite"] = x
        return out

    @property
    def output_keys(self) -> tuple[str, ...]:
        """The keys of :meth:`forward`'s dict in eval mode, in order."""
        return ("mask", "retouched", "attention") if self.localizer_name == "dirl" else ("mask", "retouched")

    def forward_outputs(
        self, x: torch.Tensor, outputs: Sequence[str] = ("mask",)
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Only the ``outputs`` named (keys of :attr:`output_keys`, in that order).

        Without ``"attention"`` the DIRL localizer skips its finest level's BFI block and MDA (only that
        level's gate reads them): the same mask, bit for bit, for less work
        (:func:`~inharmony.inference.optimize` with ``outputs=("mask",)`` calls this).

        Example:
            >>> model = MadisNet(localizer="unet").eval()
            >>> list(model.forward_outputs(torch.randn(1, 3, 32, 32), ("mask",)))
            ['mask']
        """
        keys = check_outputs(outputs, self.output_keys)
        check_input(x, SIZE_MULTIPLE)
        retouched, _ = self.ihdrnet(x)
        maps: list[torch.Tensor] = []
        if self.localizer_name == "dirl":
            mask, maps = self.localizer(retouched, attention="attention" in keys)
        else:
            mask = self.localizer(retouched)
        every = {"mask": mask, "retouched": retouched, "attention": maps}
        return {key: every[key] for key in self.output_keys if key in keys}


_FAMILY = dict(
    input_size=(3, 256, 256),
    paper=MADISNET_PAPER,
    paper_url=MADISNET_PAPER_URL,
    size_multiple=SIZE_MULTIPLE,
    download_args=("pretrained_backbone",),
)
ARG_BOUNDS = {  # sane values of the constructor arguments (a config.json outside them is refused)
    "localizer": Bound(choices=LOCALIZERS),
    "decoder_channels": Bound(1, 1024),
    "luma_bins": Bound(1, 256),
    "theta": Bound(0.0, 1.0),
}


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "madisnet",
            tag="libcom",
            hf_hub_id=LIBCOM_REPO,
            weights_format="madisnet-libcom",  # the authors' .pth files, converted on first use
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
    ],
    arg_bounds=ARG_BOUNDS,
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
    ],
    arg_bounds=ARG_BOUNDS,
)
def madisnet_unet(**kwargs) -> MadisNet:
    """MadisNet with the authors' UNet localizer (ResNet34 encoder, five levels)."""
    return MadisNet(**{"localizer": "unet", **kwargs})
