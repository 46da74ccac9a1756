"""The encoder both DIRL and RSRNet use: ResNet with a full-resolution stem and a fifth block.

Both papers take torchvision's ResNet34, replace its 7×7 stride-2 stem and max-pool by a 3×3
stride-1 convolution (64 channels, with bias) + BN + ReLU, keep ``layer1..layer4`` unchanged and
add a fifth stage (3×3 max-pool, stride 2, then three 512→512 basic blocks). The five feature
maps therefore have strides 1, 2, 4, 8, 16. ``layer1`` runs at the input's full resolution, which
is why DIRL costs ~200 GFLOPs at 224×224.
"""

from __future__ import annotations

import os

import timm
import torch
from timm.models.resnet import BasicBlock
from torch import nn

from ._download import ensure_hub_file_available

__all__ = ["BACKBONE_WEIGHTS", "ResNetEncoder"]

# ImageNet weights the papers used: torchvision's, which timm publishes under these tags.
BACKBONE_WEIGHTS = {
    "resnet18": "resnet18.tv_in1k",
    "resnet34": "resnet34.tv_in1k",
}


class ResNetEncoder(nn.Module):
    """ResNet18/34 encoder with a stride-1 stem; returns five features at strides 1, 2, 4, 8, 16.

    Args:
        backbone: ``"resnet34"`` (both papers) or ``"resnet18"`` (a lighter variant).
        pretrained_backbone: ``False`` (random init), ``True`` (ImageNet weights through timm,
            tag ``<backbone>.tv_in1k``, downloaded once into the Hugging Face cache) or a path to a
            local timm/torchvision ResNet state dict (``.safetensors``, ``.pth``, ``.bin``).

    Example:
        >>> encoder = ResNetEncoder("resnet34")
        >>> [f.shape[1] for f in encoder(torch.zeros(1, 3, 32, 32))]
        [64, 128, 256, 512, 512]
    """

    def __init__(self, backbone: str = "resnet34", pretrained_backbone: bool | str = False) -> None:
        super().__init__()
        if backbone not in BACKBONE_WEIGHTS:
            raise ValueError(
                f"unsupported backbone {backbone!r}; choose one of {sorted(BACKBONE_WEIGHTS)}"
            )
        resnet = _build_resnet(backbone, pretrained_backbone)
        self.backbone = backbone
        self.channels = (64, 128, 256, 512, 512)
        self.strides = (1, 2, 4, 8, 16)
        self.stem_conv = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=True)
        self.stem_bn = nn.BatchNorm2d(64)
        self.stem_act = nn.ReLU(inplace=True)
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        self.pool5 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer5 = nn.Sequential(*(BasicBlock(512, 512) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features ``[f1, f2, f4, f8, f16]`` (64, 128, 256, 512, 512 channels)."""
        x = self.stem_act(self.stem_bn(self.stem_conv(x)))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f4 = self.layer3(f2)
        f8 = self.layer4(f4)
        f16 = self.layer5(self.pool5(f8))
        return [f1, f2, f4, f8, f16]


def _build_resnet(backbone: str, pretrained_backbone: bool | str) -> nn.Module:
    if pretrained_backbone is False or pretrained_backbone is None:
        return timm.create_model(backbone, pretrained=False)
    tag = BACKBONE_WEIGHTS[backbone]
    if isinstance(pretrained_backbone, (str, os.PathLike)):
        path = os.fspath(pretrained_backbone)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"backbone weights file not found: {path}")
        return timm.create_model(tag, pretrained=True, pretrained_cfg_overlay={"file": path})
    hub_id = f"timm/{tag}"
    ensure_hub_file_available(
        hub_id,
        ("model.safetensors", "pytorch_model.bin"),
        offline_hint=(
            f"pass pretrained_backbone='path/to/{tag}.safetensors' (a local copy of the weights), "
            "or pretrained_backbone=False to start from random weights"
        ),
    )
    return timm.create_model(tag, pretrained=True)
