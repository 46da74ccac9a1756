"""DIRL: Deep Inharmonious Region Localization (Liang, Cong, Niu, Zhang; ICME 2021).

This module reproduces the computation of the authors' released code, which is what produced
the published numbers and the released checkpoint, including where it differs from the paper:

* Bi-directional Feature Integration (BFI) fuses each level with its neighbours; its convolution
  blocks apply ReLU *before* the convolution (which has a bias), then BatchNorm, and upsample by
  nearest-neighbour ×2.
* Mask-guided Dual Attention (MDA) uses ECA channel attention (a 1-D convolution over pooled
  channels, not CBAM's MLP) and a spatial gate conv3×3-BN-ReLU → conv7×7-BN → sigmoid; it
  returns ``x·A + x`` where ``x`` is the channel-attended feature.
* The Global-context Guided Decoder (GGD) upsamples bilinearly with ``align_corners=True``. It
  never reads the finest (stride-1) BFI output; the mask comes from the stride-2 level, upsampled
  ×2, then a 1×1 convolution and a sigmoid. The official outermost block also holds a 3×3
  convolution that is never called; it is left out here (an unused parameter breaks DDP without
  ``find_unused_parameters``) and the converter drops its weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._hub import HubMixin
from ._input import check_input, check_outputs
from ._registry import Bound, PretrainedCfg, register_model
from .encoders import BACKBONE_WEIGHTS, PAPER_WIDTHS, ResNetEncoder, checkpointed

__all__ = ["DIRL", "dirl", "dirl_resnet18", "dirl_tiny"]

DIRL_PAPER = (
    "Jing Liang, Li Niu, Liqing Zhang. Inharmonious Region Localization. ICME 2021."
)
DIRL_PAPER_URL = "https://arxiv.org/abs/2104.09453"
SIZE_MULTIPLE = 16


OUTPUTS = ("mask", "attention")
"""The keys of DIRL's output dict, in order."""


def _upsample_nearest(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def _upsample_bilinear(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)


class PreActConvBN(nn.Module):
    """ReLU → conv 3×3 (with bias) → BatchNorm: the convolution block of BFI."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.act = nn.ReLU(inplace=False)  # not in place: the input is reused by the caller
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.act(x)))


class ConvBN(nn.Module):
    """Conv (no bias) → BatchNorm → optional ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        relu: bool = False,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, momentum=bn_momentum)
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class TwoLevelFusion(nn.Module):
    """BFI over two neighbouring levels, output at the finer (``"low"``) or coarser (``"high"``) one."""

    def __init__(self, low_channels: int, high_channels: int, out_channels: int, output: str) -> None:
        super().__init__()
        if output not in ("low", "high"):
            raise ValueError(f"output must be 'low' or 'high', got {output!r}")
        self.output = output
        self.high_to_low = PreActConvBN(high_channels, low_channels)
        self.low_to_high = PreActConvBN(low_channels, high_channels, stride=2)
        low_stride = 1 if output == "low" else 2
        self.merge_low = PreActConvBN(2 * low_channels, out_channels, stride=low_stride)
        self.merge_high = PreActConvBN(2 * high_channels, out_channels)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        top_down = low + self.high_to_low(_upsample_nearest(high))
        bottom_up = high + self.low_to_high(low)
        low_cat = torch.cat([top_down, low], dim=1)
        high_cat = torch.cat([high, bottom_up], dim=1)
        if self.output == "low":
            return self.merge_low(low_cat) + self.merge_high(_upsample_nearest(high_cat))
        return self.merge_low(low_cat) + self.merge_high(high_cat)


class ThreeLevelFusion(nn.Module):
    """BFI over three neighbouring levels, output at the middle one."""

    def __init__(
        self, low_channels: int, mid_channels: int, high_channels: int, out_channels: int
    ) -> None:
        super().__init__()
        self.high_to_mid = PreActConvBN(high_channels, mid_channels)
        self.mid_to_low = PreActConvBN(mid_channels, low_channels)
        self.low_to_mid = PreActConvBN(low_channels, mid_channels, stride=2)
        self.mid_to_high = PreActConvBN(mid_channels, high_channels, stride=2)
        self.merge_low = PreActConvBN(2 * low_channels, out_channels, stride=2)
        self.merge_mid = PreActConvBN(2 * mid_channels, out_channels)
        self.merge_high = PreActConvBN(2 * high_channels, out_channels)

    def forward(self, low: torch.Tensor, mid: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        mid_down = mid + self.high_to_mid(_upsample_nearest(high))
        low_down = low + self.mid_to_low(_upsample_nearest(mid_down))
        mid_up = mid + self.low_to_mid(low)
        high_up = high + self.mid_to_high(mid_up)
        return (
            self.merge_low(torch.cat([low_down, low], dim=1))
            + self.merge_mid(torch.cat([mid_down, mid_up], dim=1))
            + self.merge_high(_upsample_nearest(torch.cat([high, high_up], dim=1)))
        )


class BidirectionalFeatureIntegration(nn.Module):
    """Five BFI blocks, one per encoder level, each ``out_channels`` wide at that level's stride."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        c = in_channels
        self.levels = nn.ModuleList(
            [
                TwoLevelFusion(c[0], c[1], out_channels, output="low"),
                ThreeLevelFusion(c[0], c[1], c[2], out_channels),
                ThreeLevelFusion(c[1], c[2], c[3], out_channels),
                ThreeLevelFusion(c[2], c[3], c[4], out_channels),
                TwoLevelFusion(c[3], c[4], out_channels, output="high"),
            ]
        )

        self.grad_checkpointing = False

    def forward(self, feats: list[torch.Tensor], finest: bool = True) -> list[torch.Tensor | None]:
        """The five fused levels, finest first; with ``finest=False`` the first is ``None``, not computed
        (the decoder never reads it: only the finest attention map does)."""
        first, *middle, last = self.levels
        # The first two blocks read the stride-1 feature: the full-resolution stage.
        out: list[torch.Tensor | None]
        if self.grad_checkpointing:
            out = [checkpointed(first, feats[0], feats[1], modules=[first]) if finest else None]
            out.append(checkpointed(middle[0], feats[0], feats[1], feats[2], modules=[middle[0]]))
        else:
            out = [first(feats[0], feats[1]) if finest else None, middle[0](feats[0], feats[1], feats[2])]
        out += [block(feats[i], feats[i + 1], feats[i + 2]) for i, block in enumerate(middle) if i > 0]
        out.append(last(feats[3], feats[4]))
        return out


class EfficientChannelAttention(nn.Module):
    """ECA: global average pool, 1-D convolution across channels (k=3, no bias), sigmoid, rescale."""

    def __init__(self, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3)).unsqueeze(1)  # (B, 1, C)
        weights = torch.sigmoid(self.conv(pooled)).transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)
        return x * weights


class SpatialGate(nn.Module):
    """conv3×3-BN-ReLU → conv7×7-BN → sigmoid. BatchNorm momentum 0.01, as in the official code."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = ConvBN(channels, channels, 3, relu=True, bn_momentum=0.01)
        self.project = ConvBN(channels, 1, 7, relu=False, bn_momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.project(self.reduce(x)))


class MaskGuidedDualAttention(nn.Module):
    """MDA: ECA channel attention, then a spatial gate ``A``; returns ``(x·A + x, A)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channel = EfficientChannelAttention()
        self.spatial = SpatialGate(channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.channel(x)
        attention = self.spatial(x)
        return x * attention + x, attention


class GuidedDecoderBlock(nn.Module):
    """One GGD step: the coarser ``up`` path gates the skip feature; the ``bottom`` path is carried."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate_conv = ConvBN(channels, channels)
        self.bottom_conv = ConvBN(channels, channels)
        self.fuse = ConvBN(2 * channels, channels)

    def forward(
        self, skip: torch.Tensor, up: torch.Tensor, bottom: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gated = self.gate_conv(_upsample_bilinear(up)) * skip
        bottom = self.bottom_conv(_upsample_bilinear(bottom))
        return self.fuse(torch.cat([gated, bottom], dim=1)), bottom


class GlobalContextDecoder(nn.Module):
    """GGD: decodes from stride 16 through strides 8, 4, 2, then ×2 and a 1×1 head (mask logits)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # blocks[i] consumes the level at stride 2**(i + 1): 2, 4, 8.
        self.blocks = nn.ModuleList(GuidedDecoderBlock(channels) for _ in range(3))
        self.head = nn.Conv2d(channels, 1, kernel_size=1)
        self.grad_checkpointing = False

    def forward(self, feats: Sequence[torch.Tensor | None]) -> torch.Tensor:
        up = bottom = feats[4]
        for level in (3, 2, 1):
            up, bottom = self.blocks[level - 1](feats[level], up, bottom)
        if self.grad_checkpointing:  # the ×2 upsampled map is full resolution
            return checkpointed(self._full_resolution_head, up, modules=[])
        return self._full_resolution_head(up)

    def _full_resolution_head(self, up: torch.Tensor) -> torch.Tensor:
        return self.head(_upsample_bilinear(up))


class DIRL(HubMixin, nn.Module):
    """DIRL network: ResNet encoder → BFI → MDA at every level → GGD → mask.

    Args:
        backbone: Encoder, ``"resnet34"`` (the paper) or ``"resnet18"``.
        decoder_channels: Width of the BFI outputs, MDA and GGD (official: 32).
        pretrained_backbone: ImageNet initialisation of the encoder; see :class:`ResNetEncoder`.
        encoder_widths: Channels of the encoder's ``layer1..layer4`` (official: ``PAPER_WIDTHS``);
            see :class:`ResNetEncoder`.

    Inputs are ImageNet-normalised RGB ``(B, 3, H, W)`` with ``H`` and ``W`` multiples of 16.

    Returns:
        ``{"mask": (B,1,H,W), "attention": [five (B,1,H,W) maps]}``, all in [0, 1]. The
        attention maps are MDA's spatial gates, bilinearly resized to the input size
        (``align_corners=False``, as in the official code), ordered from the finest level
        (stride 1) to the coarsest (stride 16).

    ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` come from :class:`HubMixin`.

    Example:
        >>> model = DIRL().eval()
        >>> out = model(torch.randn(1, 3, 64, 64))
        >>> out["mask"].shape, len(out["attention"])
        (torch.Size([1, 1, 64, 64]), 5)
    """

    def __init__(
        self,
        backbone: str = "resnet34",
        decoder_channels: int = 32,
        pretrained_backbone: bool | str = False,
        encoder_widths: Sequence[int] = PAPER_WIDTHS,
    ) -> None:
        super().__init__()
        self.encoder = ResNetEncoder(backbone, pretrained_backbone=pretrained_backbone, widths=encoder_widths)
        self.fusion = BidirectionalFeatureIntegration(self.encoder.channels, decoder_channels)
        self.attention = nn.ModuleList(
            MaskGuidedDualAttention(decoder_channels) for _ in self.encoder.channels
        )
        self.decoder = GlobalContextDecoder(decoder_channels)
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the full-resolution stage in backward instead of storing its activations.

        Covers the encoder's stem and ``layer1``, the two BFI blocks that read the stride-1 feature,
        the stride-1 MDA and the decoder's full-resolution head: the activations that dominate a
        training step's memory. Costs about one more forward of those parts per step; outputs,
        gradients and BatchNorm statistics are unchanged.

        Example:
            >>> model = DIRL(backbone="resnet18")
            >>> model.set_grad_checkpointing()
            >>> model(torch.randn(2, 3, 32, 32))["mask"].shape
            torch.Size([2, 1, 32, 32])
        """
        self.grad_checkpointing = bool(enable)
        self.encoder.set_grad_checkpointing(enable)
        self.fusion.grad_checkpointing = bool(enable)
        self.decoder.grad_checkpointing = bool(enable)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        return self.forward_outputs(x, OUTPUTS)

    def forward_outputs(
        self, x: torch.Tensor, outputs: Sequence[str] = OUTPUTS
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Only the ``outputs`` named (keys of :meth:`forward`'s dict, in that order).

        Without ``"attention"`` the finest level's BFI block and MDA are not run: the decoder never
        reads them, so the mask is the same, bit for bit, for 10 % fewer FLOPs (187 instead of 209 GFLOP
        for DIRL at 224²); :func:`~inharmony.inference.optimize` with ``outputs=("mask",)`` calls this.

        Example:
            >>> model = DIRL(backbone="resnet18").eval()
            >>> list(model.forward_outputs(torch.randn(1, 3, 32, 32), ("mask",)))
            ['mask']
        """
        keys = check_outputs(outputs, OUTPUTS)
        check_input(x, SIZE_MULTIPLE)
        size = x.shape[-2:]
        want_maps = "attention" in keys
        feats = self.fusion(self.encoder(x), finest=want_maps)
        attended: list[torch.Tensor | None] = []
        maps = []
        for level, (feat, mda) in enumerate(zip(feats, self.attention, strict=True)):
            if feat is None:
                attended.append(None)
                continue
            if level == 0 and self.grad_checkpointing:
                feat, attention = checkpointed(mda, feat, modules=[mda])
            else:
                feat, attention = mda(feat)
            attended.append(feat)
            if want_maps:
                maps.append(F.interpolate(attention, size=size, mode="bilinear", align_corners=False))
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {}
        if "mask" in keys:
            out["mask"] = torch.sigmoid(self.decoder(attended))
        if want_maps:
            out["attention"] = maps
        return out


# Facts every tag of the family shares: the registry hands them to the hub, data, loss and export layers.
_FAMILY = dict(
    paper=DIRL_PAPER,
    paper_url=DIRL_PAPER_URL,
    size_multiple=SIZE_MULTIPLE,
    download_args=("pretrained_backbone",),
)
# Sane values of DIRL's constructor arguments: a saved config.json or a command line outside them is refused.
ARG_BOUNDS = {
    "backbone": Bound(choices=tuple(BACKBONE_WEIGHTS)),
    "decoder_channels": Bound(1, 1024),
    "encoder_widths": Bound(2, 4096, length=(4, 4)),
}


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "dirl",
            tag="ihd_le50",
            license="cc-by-nc-4.0",
            metrics={"ap": 80.02, "f1": 0.7317, "iou": 67.85},
            notes="Reference scores: iHarmony4 le50 test split, as reported in the paper.",
            **_FAMILY,
        )
    ],
    arg_bounds=ARG_BOUNDS,
)
def dirl(**kwargs) -> DIRL:
    """DIRL with a ResNet34 encoder and 32-channel decoder, as the official code trains it."""
    return DIRL(**{"backbone": "resnet34", "decoder_channels": 32, **kwargs})


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "dirl_resnet18",
            license="apache-2.0",
            notes="Lighter variant (ResNet18 encoder), not in the paper; for CPU demos.",
            **_FAMILY,
        )
    ],
    arg_bounds=ARG_BOUNDS,
)
def dirl_resnet18(**kwargs) -> DIRL:
    """DIRL with a ResNet18 encoder: ~40 % fewer parameters, for CPU experiments."""
    return DIRL(**{"backbone": "resnet18", "decoder_channels": 32, **kwargs})


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "dirl_tiny",
            license="apache-2.0",
            notes="DIRL at a quarter of the width (encoder 16-32-64-128, decoder 16), not in the paper; "
            "for CPU demos: a training step costs ~14x fewer FLOPs than dirl_resnet18's.",
            **_FAMILY,
        )
    ],
    arg_bounds=ARG_BOUNDS,
)
def dirl_tiny(**kwargs) -> DIRL:
    """DIRL's architecture at a quarter of the width, for CPU demos and tests (no ImageNet weights).

    A ResNet18 encoder with channels 16, 32, 64, 128 (timm's ``channels``) and a 16-channel decoder:
    2.9 M parameters against dirl_resnet18's 43 M. Every block of the paper is there (BFI, MDA with its
    attention maps, GGD); only the widths differ.

    Example:
        >>> model = dirl_tiny().eval()
        >>> model(torch.randn(1, 3, 32, 32))["mask"].shape
        torch.Size([1, 1, 32, 32])
    """
    return DIRL(**{"backbone": "resnet18", "decoder_channels": 16, "encoder_widths": (16, 32, 64, 128), **kwargs})
