"""RSRNet: inharmonious region localization via Recurrent Self-Reasoning (Wu, Niu, Liang, Zhang; BMVC 2022).

The authors released no code, so this module follows the paper (§3) and documents every choice
the paper leaves open in :class:`RSRNet`'s docstring; each one is a constructor argument.

Pipeline: the shared :class:`~inharmony.models.encoders.ResNetEncoder` gives features at strides
1, 2, 4, 8, 16. Two heads (conv3×3 → ReLU → conv1×1) turn the stride-8 feature (512 channels)
into a style map ``F_s`` and a conventional map ``F_c`` (256 channels each). The RSR module
(:mod:`inharmony.models._rsr`) refines a mask for K = 12 iterations and upsamples every
iteration's mask ×8. A UNet decoder, guided by the last RSR mask through concatenation, gives
``M_dec``; a learnt map ``G`` combines the two: ``M_fnl = G·M_dec + (1 − G)·M̄_rsr``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._hub import HubMixin
from ._input import check_input
from ._registry import PretrainedCfg, register_model
from ._rsr import RecurrentSelfReasoning, SimilarityReasoning, _check_choice
from .encoders import ResNetEncoder

__all__ = ["RSRNet", "rsrnet", "rsrnet_resnet18"]

RSRNET_PAPER = (
    "Penghao Wu, Li Niu, Jing Liang, Liqing Zhang. Inharmonious Region Localization via Recurrent "
    "Self-Reasoning. BMVC 2022."
)
RSRNET_PAPER_URL = "https://arxiv.org/abs/2210.02036"
SIZE_MULTIPLE = 16
RSR_STRIDE = 8


class FeatureHead(nn.Sequential):
    """conv3×3 → ReLU → conv1×1: the style and conventional feature heads of §3.1."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1),
        )


class ConvBNReLU(nn.Sequential):
    """conv3×3 (no bias) → BatchNorm → ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DecoderStage(nn.Module):
    """UNet step: bilinear ×2 of the coarser map, concatenate skip (and guide), two conv-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, guide_channels: int, out_channels: int) -> None:
        super().__init__()
        self.guide_channels = guide_channels
        self.convs = nn.Sequential(
            ConvBNReLU(in_channels + skip_channels + guide_channels, out_channels),
            ConvBNReLU(out_channels, out_channels),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor, guide: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        parts = [x, skip]
        if self.guide_channels:
            parts.append(F.interpolate(guide, size=skip.shape[-2:], mode="bilinear", align_corners=False))
        return self.convs(torch.cat(parts, dim=1))


class GuidedUNetDecoder(nn.Module):
    """Decodes from stride 16 through strides 8, 4, 2, 1; the RSR mask is concatenated as guidance.

    Args:
        encoder_channels: Channels of the encoder features at strides 1, 2, 4, 8, 16.
        channels: Output widths of the stages at strides 8, 4, 2, 1.
        guidance: ``"all"`` (every stage), ``"first"`` (stride-8 stage only) or ``"none"``.
    """

    def __init__(
        self, encoder_channels: Sequence[int], channels: Sequence[int], guidance: str = "all"
    ) -> None:
        super().__init__()
        _check_choice("guidance", guidance, ("all", "first", "none"))
        if len(channels) != 4:
            raise ValueError(f"decoder_channels needs 4 widths (strides 8, 4, 2, 1), got {tuple(channels)}")
        skips = list(encoder_channels[:4])[::-1]  # strides 8, 4, 2, 1
        ins = [encoder_channels[4], *channels[:3]]
        guides = [int(guidance != "none")] + [int(guidance == "all")] * 3
        self.stages = nn.ModuleList(
            DecoderStage(i, s, g, o) for i, s, g, o in zip(ins, skips, guides, channels, strict=True)
        )
        self.head = nn.Conv2d(channels[-1], 1, 1)
        self.out_channels = channels[-1]

    def forward(
        self, feats: list[torch.Tensor], guide: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(features at stride 1, mask logits)``."""
        x = feats[4]
        for stage, skip in zip(self.stages, feats[3::-1], strict=True):
            x = stage(x, skip, guide)
        return x, self.head(x)


class CombinationGate(nn.Module):
    """Predicts ``G`` in (0, 1) from the last decoder feature and both masks: conv3×3 → ReLU → conv1×1 → σ."""

    def __init__(self, feature_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(feature_channels + 2, feature_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(feature_channels, 1, 1),
        )

    def forward(self, feature: torch.Tensor, mask_dec: torch.Tensor, mask_rsr: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(torch.cat([feature, mask_dec, mask_rsr], dim=1)))


class RSRNet(HubMixin, nn.Module):
    """RSRNet: ResNet encoder → feature heads → RSR module → guided UNet decoder → combination.

    Defaults are the full model of the paper. Options reproduce the ablations of Table 2:

    ======  ==========================================  ===========================
    row     ablation                                    argument
    ======  ==========================================  ===========================
    1       UNet only (no RSR)                          ``rsr="none"``
    2       RSR, output ``M_dec`` (no combination)      ``combination="decoder"``
    3       only similarity map                         ``rsr="similarity_only"``
    4       simple average of the two masks             ``combination="average"``
    5       w/o GRU (two convolutions)                  ``recurrent_unit="conv"``
    6       w/o MSM                                     ``use_similarity=False``
    7       w/o F_c (``F_s`` in its place)              ``context="style"``
    8       w/o weighted upsample (bilinear)            ``upsample="bilinear"``
    ======  ==========================================  ===========================

    Choices where the paper is silent (each is an argument):

    * ``hidden_dim=128``, ``hidden_init="zeros"``: the paper cites RAFT for its GRU; 128 is RAFT's
      hidden width. It does not mention an initial state, and F_c already enters every iteration
      through ``X^k``, so ``H^0 = 0``; ``"context"`` gives RAFT's ``tanh(conv1×1(F_c))``.
    * ``embed_dim=64``: width of the 3×3 convolutions applied to ``M^{k-1}`` and to the MSM (each
      followed by ReLU, as in RAFT's motion encoder).
    * ``residual="logits"``: ``M^k = M^{k-1} + ΔM^k`` is applied to logits (``Z^0 = 0``,
      ``M^k = σ(Z^k)``), because the masks are supervised with BCE and thresholded at 0.5 and must
      stay in [0, 1]; adding in probability space needs a clamp that stops gradients. ``M^0`` is
      the paper's all-zero mask in both cases. ``"probabilities"`` is the literal reading, clamped.
    * ``guidance="all"``: "M_rsr is fed into the decoder by concatenation" does not say where, so
      the low-resolution ``M_rsr`` (last iteration, stride 8) is concatenated to the input of every
      decoder stage, bilinearly resized to that stage, so that guidance reaches the
      full-resolution layers that draw the edges; ``"first"`` feeds only the stride-8 stage.
    * ``combination="learned"``: ``G = σ(conv1×1(ReLU(conv3×3([D, M_dec, M̄_rsr]))))`` where ``D``
      is the last (stride-1) decoder feature: ``G`` must know where each mask is reliable, which
      depends on both masks and on the image detail the decoder feature carries.
    * ``decoder_channels=(256, 128, 64, 32)``: stage widths at strides 8, 4, 2, 1, each stage
      two conv3×3-BN-ReLU after bilinear ×2 upsampling and concatenation of the skip (UNet); the
      narrow last stage keeps the full-resolution cost low.
    * Feature heads: the hidden width of conv3×3 → ReLU → conv1×1 equals the output (256).
    * Convex upsampling predicts its weights from ``H^k`` with conv3×3 (256) → ReLU → conv1×1
      (8·8·9), as RAFT does, and pads the border by replication so each output pixel is a true
      convex combination of mask values.
    * ``detach_mask=False``: gradients flow through the recurrence.

    Args:
        backbone: Encoder, ``"resnet34"`` (the paper) or ``"resnet18"``.
        pretrained_backbone: ImageNet initialisation of the encoder; see :class:`ResNetEncoder`.
        iterations: K, the number of RSR iterations (paper: 12).
        feature_dim: Channels of ``F_s`` and ``F_c`` (paper: 256).
        hidden_dim: Channels of the GRU hidden state.
        embed_dim: Channels of the embeddings of ``M`` and the MSM.
        scales: MSM neighbourhood half-sizes ``l`` (paper: 0, 1, 2, 3).
        threshold: ε of eq. (1) (paper: 0.5).
        decoder_channels: Widths of the decoder stages at strides 8, 4, 2, 1.
        rsr: ``"full"``, ``"similarity_only"`` (row 3) or ``"none"`` (row 1). The RSR options below
            (from ``recurrent_unit`` to ``detach_mask``, and ``hidden_dim``/``embed_dim``/``scales``)
            only apply to ``"full"``.
        recurrent_unit: ``"gru"`` or ``"conv"`` (row 5).
        use_similarity: Feed the MSM to the recurrent unit (``False``: row 6).
        context: ``"conventional"`` (``F_c``) or ``"style"`` (``F_s`` in its place, row 7).
        upsample: ``"convex"`` or ``"bilinear"`` (row 8).
        combination: ``"learned"`` (G), ``"average"`` (row 4) or ``"decoder"`` (``M_fnl = M_dec``, row 2).
        guidance: Decoder stages that receive ``M_rsr``: ``"all"`` or ``"first"``.
        residual: ``"logits"`` or ``"probabilities"``.
        hidden_init: ``"zeros"`` or ``"context"``.
        detach_mask: Stop gradients through ``M^{k-1}`` between iterations.

    Inputs are ImageNet-normalised RGB ``(B, 3, H, W)`` with ``H`` and ``W`` multiples of 16.

    Returns:
        A dict of ``(B, 1, H, W)`` maps in [0, 1]: ``"mask"`` (``M_fnl``), ``"mask_dec"``,
        ``"mask_rsr"`` (``M̄_rsr``, the last upsampled RSR mask) and ``"rsr_masks"`` (the list of
        the K upsampled masks ``M̄^1 … M̄^K``, in order). With ``rsr="none"`` there is no
        ``"mask_rsr"`` and ``"rsr_masks"`` is empty.

    Example:
        >>> model = RSRNet(iterations=3).eval()
        >>> out = model(torch.randn(1, 3, 64, 64))
        >>> out["mask"].shape, len(out["rsr_masks"])
        (torch.Size([1, 1, 64, 64]), 3)
    """

    def __init__(
        self,
        backbone: str = "resnet34",
        pretrained_backbone: bool | str = False,
        iterations: int = 12,
        feature_dim: int = 256,
        hidden_dim: int = 128,
        embed_dim: int = 64,
        scales: Sequence[int] = (0, 1, 2, 3),
        threshold: float = 0.5,
        decoder_channels: Sequence[int] = (256, 128, 64, 32),
        rsr: str = "full",
        recurrent_unit: str = "gru",
        use_similarity: bool = True,
        context: str = "conventional",
        upsample: str = "convex",
        combination: str = "learned",
        guidance: str = "all",
        residual: str = "logits",
        hidden_init: str = "zeros",
        detach_mask: bool = False,
    ) -> None:
        super().__init__()
        _check_choice("rsr", rsr, ("full", "similarity_only", "none"))
        _check_choice("context", context, ("conventional", "style"))
        _check_choice("combination", combination, ("learned", "average", "decoder"))
        _check_choice("guidance", guidance, ("all", "first"))
        if rsr == "none" and combination != "decoder":
            raise ValueError(
                f"rsr='none' (plain UNet) has no RSR mask to combine; use combination='decoder', "
                f"got {combination!r}"
            )
        self.rsr_mode = rsr
        self.combination = combination
        self.encoder = ResNetEncoder(backbone, pretrained_backbone=pretrained_backbone)
        bottleneck = self.encoder.channels[3]  # stride 8, the fourth res-block

        self.style_head = FeatureHead(bottleneck, feature_dim) if rsr != "none" else None
        use_conventional = rsr == "full" and context == "conventional"
        self.conventional_head = FeatureHead(bottleneck, feature_dim) if use_conventional else None
        if rsr == "full":
            self.rsr = RecurrentSelfReasoning(
                context_dim=feature_dim,
                iterations=iterations,
                hidden_dim=hidden_dim,
                embed_dim=embed_dim,
                scales=scales,
                threshold=threshold,
                upsample_factor=RSR_STRIDE,
                cell=recurrent_unit,
                use_similarity=use_similarity,
                upsample=upsample,
                residual=residual,
                hidden_init=hidden_init,
                detach_mask=detach_mask,
            )
        elif rsr == "similarity_only":
            self.rsr = SimilarityReasoning(iterations, threshold, RSR_STRIDE)
        else:
            self.rsr = None
        self.decoder = GuidedUNetDecoder(
            self.encoder.channels, decoder_channels, guidance="none" if rsr == "none" else guidance
        )
        self.gate = CombinationGate(self.decoder.out_channels) if combination == "learned" else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        check_input(x, SIZE_MULTIPLE)
        feats = self.encoder(x)
        mask_low, rsr_masks = None, []
        if self.rsr is not None:
            style = self.style_head(feats[3])
            context = self.conventional_head(feats[3]) if self.conventional_head is not None else style
            mask_low, rsr_masks = self.rsr(style, context)
        dec_feature, dec_logits = self.decoder(feats, mask_low)
        mask_dec = torch.sigmoid(dec_logits)
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {"mask_dec": mask_dec, "rsr_masks": rsr_masks}
        if not rsr_masks:
            out["mask"] = mask_dec
            return out
        mask_rsr = rsr_masks[-1]
        if self.gate is not None:
            gate = self.gate(dec_feature, mask_dec, mask_rsr)
            mask = gate * mask_dec + (1 - gate) * mask_rsr
        elif self.combination == "average":
            mask = 0.5 * (mask_dec + mask_rsr)
        else:
            mask = mask_dec
        out["mask"] = mask
        out["mask_rsr"] = mask_rsr
        return out


# Facts every tag of the family shares: the registry hands them to the hub, data, loss and export layers.
_FAMILY = dict(
    paper=RSRNET_PAPER,
    paper_url=RSRNET_PAPER_URL,
    size_multiple=SIZE_MULTIPLE,
    default_loss="inharmony.losses.RSRNetLoss",
    download_args=("pretrained_backbone",),
)


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "rsrnet",
            tag="ihd_le50",
            license="cc-by-nc-4.0",
            metrics={"ap": 82.57, "f1": 0.7607, "iou": 71.63},
            notes=(
                "Reference scores: iHarmony4 le50 test split, as reported in the paper (Table 1). The authors "
                "released no code or weights; weights of this implementation are not published yet."
            ),
            **_FAMILY,
        )
    ]
)
def rsrnet(**kwargs) -> RSRNet:
    """RSRNet with a ResNet34 encoder and K = 12 RSR iterations, as in the paper."""
    return RSRNet(**{"backbone": "resnet34", **kwargs})


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "rsrnet_resnet18",
            license="apache-2.0",
            notes="Lighter variant (ResNet18 encoder), not in the paper; for CPU experiments.",
            **_FAMILY,
        )
    ]
)
def rsrnet_resnet18(**kwargs) -> RSRNet:
    """RSRNet with a ResNet18 encoder, for CPU experiments."""
    return RSRNet(**{"backbone": "resnet18", **kwargs})
