"""UNet: the baseline of the DIRL and MadisNet tables, as the MadisNet authors' code builds it.

A restatement of ``networks/UNet.py`` of ``bcmi/MadisNet-Inharmonious-Region-Localization`` with
``n_downs=5`` and a ResNet34 encoder (the configuration their training script uses):

* stem: conv3×3 stride 1 **without bias** → BN → ReLU, then ResNet34's ``layer1..layer4`` and a
  fifth stage (3×3 max-pool stride 2, three 512→512 basic blocks): the same five features as
  :class:`~inharmony.models.encoders.ResNetEncoder` (strides 1, 2, 4, 8, 16), whose stem
  convolution has a bias, so the stem convolution is replaced here;
* bottleneck: a double convolution (conv3×3 with bias → BN → ReLU, twice) at stride 16;
* five up blocks from the coarsest: the first stays at stride 16 (a conv3×3 only), the others
  upsample ×2 (bilinear, ``align_corners=True``) then conv3×3; each concatenates the encoder feature
  of its level and applies a double convolution;
* a 1×1 head at full resolution, then a sigmoid. The authors resize the logits to
  ``x.shape[2:][::-1]`` (width, height): a no-op on square inputs and a transposed mask on others;
  here the mask keeps the input's own height and width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._hub import HubMixin
from ._input import check_input
from ._registry import PretrainedCfg, register_model
from .encoders import ResNetEncoder

__all__ = ["UNet", "UNetLocalizer", "unet"]

SIZE_MULTIPLE = 16
UNET_PAPER = (
    "Olaf Ronneberger, Philipp Fischer, Thomas Brox. U-Net: Convolutional Networks for Biomedical Image "
    "Segmentation. MICCAI 2015. As configured by Liang et al., Inharmonious Region Localization by Magnifying "
    "Domain Discrepancy, AAAI 2022."
)
UNET_PAPER_URL = "https://arxiv.org/abs/1505.04597"


class DoubleConv(nn.Module):
    """(conv3×3 with bias → BN → ReLU) × 2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class UpBlock(nn.Module):
    """Optional bilinear ×2 → conv3×3 to the skip's width → concatenate the skip → :class:`DoubleConv`."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.reduce = nn.Conv2d(in_channels, skip_channels, 3, padding=1)
        self.fuse = DoubleConv(2 * skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        return self.fuse(torch.cat([self.reduce(x), skip], dim=1))


class UNetLocalizer(nn.Module):
    """The network of :class:`UNet` as a plain module (MadisNet's UNet localizer uses it).

    Args:
        pretrained_backbone: ImageNet initialisation of ``layer1..4``; see :class:`ResNetEncoder`.

    ``forward(x)`` returns the mask probabilities ``(B, 1, H, W)``.
    """

    def __init__(self, pretrained_backbone: bool | str = False) -> None:
        super().__init__()
        self.encoder = ResNetEncoder("resnet34", pretrained_backbone=pretrained_backbone)
        self.encoder.stem_conv = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        c = self.encoder.channels  # 64, 128, 256, 512, 512
        self.bottleneck = DoubleConv(c[4], c[4])
        # ups[i] ends at level i (the authors' ``u{i}``); the coarsest stays at stride 16.
        outs = (c[0], *c[:4])  # level 0 keeps the stem width (64)
        self.ups = nn.ModuleList(UpBlock(c[i], c[i], outs[i], upsample=i < 4) for i in range(5))
        self.head = nn.Conv2d(c[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        h = self.bottleneck(feats[4])
        for level in range(4, -1, -1):
            h = self.ups[level](h, feats[level])
        return torch.sigmoid(self.head(h))


class UNet(HubMixin, UNetLocalizer):
    """The UNet baseline (ResNet34 encoder, five levels) on an ImageNet-normalised image.

    Args:
        pretrained_backbone: ImageNet initialisation of the encoder (training from scratch: ``True``).

    Inputs are ImageNet-normalised RGB ``(B, 3, H, W)`` with ``H`` and ``W`` multiples of 16.

    Returns:
        ``{"mask": (B, 1, H, W)}`` in [0, 1].

    Example:
        >>> model = UNet().eval()
        >>> model(torch.randn(1, 3, 64, 64))["mask"].shape
        torch.Size([1, 1, 64, 64])
    """

    def __init__(self, pretrained_backbone: bool | str = False) -> None:
        super().__init__(pretrained_backbone=pretrained_backbone)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        check_input(x, SIZE_MULTIPLE)
        return {"mask": super().forward(x)}


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "unet",
            tag="ihd_le50",
            input_size=(3, 256, 256),
            paper=UNET_PAPER,
            paper_url=UNET_PAPER_URL,
            license="apache-2.0",
            metrics={"ap": 74.90, "f1": 0.6717, "iou": 64.74},
            notes="Reference scores: iHarmony4 le50 test split, as reported by DIRL and MadisNet. No published "
            "weights of the baseline alone; train it with configs/unet.yaml.",
            size_multiple=SIZE_MULTIPLE,
            download_args=("pretrained_backbone",),
        )
    ]
)
def unet(**kwargs) -> UNet:
    """The UNet baseline of DIRL's and MadisNet's tables (ResNet34 encoder, five levels)."""
    return UNet(**kwargs)
