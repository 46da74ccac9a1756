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

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._hub import HubMixin
from ._input import check_input
from ._registry import Bound, PretrainedCfg, register_model
from ._rsr import (
    CELLS,
    HIDDEN_INITS,
    RESIDUALS,
    UPSAMPLERS,
    RecurrentSelfReasoning,
    SimilarityReasoning,
    _check_choice,
)
from .encoders import BACKBONE_WEIGHTS, ResNetEncoder, checkpointed

__all__ = ["TABLE2_ROWS", "TABLE2_ROW_NAMES", "RSRNet", "rsrnet", "rsrnet_resnet18", "table2_options"]

RSRNET_PAPER = (
    "Penghao Wu, Li Niu, Jing Liang, Liqing Zhang. Inharmonious Region Localization via Recurrent "
    "Self-Reasoning. BMVC 2022."
)
RSRNET_PAPER_URL = "https://arxiv.org/abs/2210.02036"
SIZE_MULTIPLE = 16
RSR_STRIDE = 8
RSR_MODES = ("full", "similarity_only", "none")
CONTEXTS = ("conventional", "style")
COMBINATIONS = ("learned", "average", "decoder")
GUIDANCES = ("all", "first")


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
        self.grad_checkpointing = False

    def forward(
        self, feats: list[torch.Tensor], guide: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(features at stride 1, mask logits)``."""
        x = feats[4]
        last = len(self.stages) - 1
        for i, (stage, skip) in enumerate(zip(self.stages, feats[3::-1], strict=True)):
            if i == last and self.grad_checkpointing:  # the stride-1 stage
                x = checkpointed(stage, x, skip, guide, modules=[stage])
            else:
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


def _frozen(options: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(options)


#: Constructor options of each row of the paper's Table 2 (row 9 is the full model: the defaults).
#: ``RSRNet(**TABLE2_ROWS[6])`` or ``create_model("rsrnet", **TABLE2_ROWS[6])`` builds a row;
#: :meth:`RSRNet.from_table2_row` does the same and refuses contradicting options.
TABLE2_ROWS: Mapping[int, Mapping[str, Any]] = MappingProxyType(
    {
        1: _frozen({"rsr": "none", "combination": "decoder"}),
        2: _frozen({"combination": "decoder"}),
        3: _frozen({"rsr": "similarity_only", "combination": "decoder"}),
        4: _frozen({"combination": "average"}),
        5: _frozen({"recurrent_unit": "conv"}),
        6: _frozen({"use_similarity": False}),
        7: _frozen({"context": "style"}),
        8: _frozen({"upsample": "bilinear"}),
        9: _frozen({}),
    }
)

#: Each row's name, from the columns of Table 2 (UNet | RSR | Mask Combination).
TABLE2_ROW_NAMES: Mapping[int, str] = MappingProxyType(
    {
        1: "UNet",
        2: "UNet + RSR",
        3: "UNet + only similarity map",
        4: "UNet + RSR + simple average",
        5: "UNet + RSR (w/o GRU) + combination",
        6: "UNet + RSR (w/o MSM) + combination",
        7: "UNet + RSR (w/o F_c) + combination",
        8: "UNet + RSR (w/o weighted upsample) + combination",
        9: "UNet + RSR + combination (full model)",
    }
)


def table2_options(row: int) -> dict[str, Any]:
    """The constructor options of row ``row`` (1–9) of RSRNet's Table 2, as a new dict.

    Example:
        >>> table2_options(3)
        {'rsr': 'similarity_only', 'combination': 'decoder'}
    """
    if row not in TABLE2_ROWS:
        raise ValueError(f"RSRNet's Table 2 has rows 1-9 (9 is the full model), got row={row!r}")
    return dict(TABLE2_ROWS[row])


class RSRNet(HubMixin, nn.Module):
    """RSRNet: ResNet encoder → feature heads → RSR module → guided UNet decoder → combination.

    Defaults are the full model of the paper (Table 2, row 9). Each other row of Table 2 is one
    option set, :data:`TABLE2_ROWS` (build one with :meth:`from_table2_row`):

    ===  ==============================================  ==============================================
    row  Table 2 row: what it switches                   options
    ===  ==============================================  ==============================================
    1    UNet: no RSR, no feature heads, unguided        ``rsr="none", combination="decoder"``
         decoder; M_fnl = M_dec
    2    UNet + RSR: no G, M_fnl = M_dec (RSR still      ``combination="decoder"``
         guides the decoder and is supervised, eq. 3)
    3    UNet + only similarity map: RSR → l = 0         ``rsr="similarity_only", combination="decoder"``
         similarity iterations (no GRU, F_c, learnt
         upsampling); no G, M_fnl = M_dec
    4    UNet + RSR + simple average:                    ``combination="average"``
         M_fnl = (M_dec + M̄_rsr) / 2
    5    RSR (w/o GRU): two 3×3 convolutions, no memory  ``recurrent_unit="conv"``
    6    RSR (w/o MSM): no MSM in X^k, no style head     ``use_similarity=False``
    7    RSR (w/o F_c): F_s is the context, no F_c head  ``context="style"``
    8    RSR (w/o weighted upsample): bilinear ×8        ``upsample="bilinear"``
    9    full model                                      (defaults)
    ===  ==============================================  ==============================================

    Every configuration builds only modules its forward pass uses, so every parameter gets a
    gradient from the loss (DDP needs no ``find_unused_parameters``, parameter counts are honest).

    Where §4.4 is ambiguous, and what is chosen:

    * Rows 2 and 3 keep the K RSR losses of eq. (3) (the text says only that ``M_dec`` is
      evaluated); :class:`~inharmony.losses.RSRNetLoss` supervises ``"rsr_masks"`` in every row,
      and row 3's text ("imposing supervision on it") says its masks are supervised.
    * Row 3 "directly use[s] a single similarity matrix with scale l = 0 as the updated
      inharmonious mask": a cosine similarity is high on the *background*, so the mask is
      ``(1 − S^{k−1,0}) / 2`` (in [0, 1], ε = 0.5 at zero similarity), upsampled bilinearly (no
      hidden state to predict convex weights from); the decoder is still guided by it.
    * Row 5 "only use[s] two convolution layers to output the mask": the two 3×3 convolutions
      replace the GRU cell only; ``ΔM`` head, residual and convex upsampling are kept.
    * Row 6 "only feed[s] F_c and M^{k−1} into the GRU cell": only the MSM branch is removed; the
      3×3 embedding of ``M^{k−1}`` stays (it is part of how ``M^{k−1}`` enters ``X^k``).
    * Row 7 "replace[s] F_c with F_s": one head, whose output is both the style map and the context.
    * Row 8: only the RSR masks' upsampling changes; the guidance into the decoder was already
      resized bilinearly.

    Choices where the paper is silent (each is an argument):

    * ``hidden_dim=128``, ``hidden_init="zeros"``: the paper cites RAFT for its GRU; 128 is RAFT's
      hidden width. It does not mention an initial state, and F_c already enters every iteration
      through ``X^k``, so ``H^0 = 0``; ``"context"`` gives RAFT's ``tanh(conv1×1(F_c))``.
    * ``embed_dim=64``: width of the 3×3 convolutions applied to ``M^{k-1}`` and to the MSM (each
      followed by ReLU, as in RAFT's motion encoder).
    * ``residual="logits"``: ``M^k = M^{k-1} + ΔM^k`` is applied to logits (``M^k = σ(Z^k)``,
      ``Z^k = Z^{k-1} + ΔM^k``), because the masks are supervised with BCE and thresholded at 0.5
      and must stay in [0, 1]; adding in probability space needs a clamp that stops gradients.
      ``"probabilities"`` is the literal reading, clamped.
    * ``initial_mask=None``: ``M^0`` and the residual base are the same thing, ``M^0 = σ(Z^0)``.
      The paper sets ``M^0 = 0`` so that every pixel is background and ``f_bg^0`` is the global
      mean of ``F_s`` (§3.2.1). ``0`` has no finite logit, so the logit residual starts from
      ``M^0 = 0.01`` (``Z^0 = logit(0.01) ≈ −4.6``): background under ε = 0.5 with a wide margin,
      nearly the paper's input to the convolutions, and BCE's gradient with respect to the logit
      (``p − y``) does not vanish there. (``Z^0 = 0`` would mean ``M^0 = 0.5``, which eq. (1)
      counts as all *foreground*.) With ``residual="probabilities"`` the default is the paper's 0.
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
            (from ``recurrent_unit`` to ``initial_mask``, and ``hidden_dim``/``embed_dim``/``scales``)
            only apply to ``"full"``.
        recurrent_unit: ``"gru"`` or ``"conv"`` (row 5).
        use_similarity: Feed the MSM to the recurrent unit (``False``: row 6).
        context: ``"conventional"`` (``F_c``) or ``"style"`` (``F_s`` in its place, row 7).
        upsample: ``"convex"`` or ``"bilinear"`` (row 8).
        combination: ``"learned"`` (G), ``"average"`` (row 4) or ``"decoder"`` (``M_fnl = M_dec``, rows 1–3).
        guidance: Decoder stages that receive ``M_rsr``: ``"all"`` or ``"first"``.
        residual: ``"logits"`` or ``"probabilities"``.
        hidden_init: ``"zeros"`` or ``"context"`` (GRU only).
        detach_mask: Stop gradients through ``M^{k-1}`` between iterations.
        initial_mask: Value of ``M^0`` (and, through its logit, of the residual base); ``None``: 0.01
            for ``residual="logits"``, 0 for ``"probabilities"``.

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
        >>> row6 = RSRNet.from_table2_row(6, backbone="resnet18", iterations=3)
        >>> row6.style_head is None, row6.rsr.use_similarity
        (True, False)
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
        initial_mask: float | None = None,
    ) -> None:
        super().__init__()
        _check_choice("rsr", rsr, RSR_MODES)
        _check_choice("context", context, CONTEXTS)
        _check_choice("combination", combination, COMBINATIONS)
        _check_choice("guidance", guidance, GUIDANCES)
        if rsr == "none" and combination != "decoder":
            raise ValueError(
                f"rsr='none' (plain UNet) has no RSR mask to combine; use combination='decoder', "
                f"got {combination!r}"
            )
        self.rsr_mode = rsr
        self.combination = combination
        self.encoder = ResNetEncoder(backbone, pretrained_backbone=pretrained_backbone)
        bottleneck = self.encoder.channels[3]  # stride 8, the fourth res-block

        # Build a head only where the forward pass reads it: F_s feeds the similarity (and is the
        # context in row 7); F_c is the context of the full module.
        full = rsr == "full"
        needs_style = rsr == "similarity_only" or (full and (use_similarity or context == "style"))
        self.style_head = FeatureHead(bottleneck, feature_dim) if needs_style else None
        use_conventional = full and context == "conventional"
        self.conventional_head = FeatureHead(bottleneck, feature_dim) if use_conventional else None
        if full:
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
                initial_mask=initial_mask,
            )
        elif rsr == "similarity_only":
            self.rsr = SimilarityReasoning(iterations, threshold, RSR_STRIDE)
        else:
            self.rsr = None
        self.decoder = GuidedUNetDecoder(
            self.encoder.channels, decoder_channels, guidance="none" if rsr == "none" else guidance
        )
        self.gate = CombinationGate(self.decoder.out_channels) if combination == "learned" else None
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the full-resolution stage in backward instead of storing its activations.

        Covers the encoder's stem and ``layer1``, the decoder's stride-1 stage, the combination gate
        and the RSR module's ×8 convex upsampling of every iteration's mask: the activations that
        dominate a training step's memory. Outputs, gradients and BatchNorm statistics are unchanged.

        Example:
            >>> model = RSRNet(backbone="resnet18", iterations=2)
            >>> model.set_grad_checkpointing()
            >>> model(torch.randn(2, 3, 32, 32))["mask"].shape
            torch.Size([2, 1, 32, 32])
        """
        self.grad_checkpointing = bool(enable)
        self.encoder.set_grad_checkpointing(enable)
        self.decoder.grad_checkpointing = bool(enable)
        if isinstance(self.rsr, RecurrentSelfReasoning):
            self.rsr.grad_checkpointing = bool(enable)

    @classmethod
    def from_table2_row(cls, row: int, **kwargs: Any) -> RSRNet:
        """Build row ``row`` (1–9) of the paper's Table 2; ``kwargs`` set everything else.

        Args:
            row: Row of Table 2 (:data:`TABLE2_ROWS`; 9 is the full model).
            **kwargs: Other constructor arguments (``backbone``, ``iterations``, …). An argument
                the row sets must not be given a different value.

        Example:
            >>> model = RSRNet.from_table2_row(4, backbone="resnet18", iterations=2)
            >>> model.combination
            'average'
        """
        options = table2_options(row)
        clashes = {k: v for k, v in kwargs.items() if k in options and v != options[k]}
        if clashes:
            raise ValueError(
                f"Table 2 row {row} ({TABLE2_ROW_NAMES[row]}) sets {options}; drop the contradicting "
                f"options {clashes} or build RSRNet(...) directly"
            )
        return cls(**{**kwargs, **options})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        check_input(x, SIZE_MULTIPLE)
        feats = self.encoder(x)
        mask_low, rsr_masks = None, []
        if self.rsr is not None:
            style = self.style_head(feats[3]) if self.style_head is not None else None
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
            if self.grad_checkpointing:
                gate = checkpointed(self.gate, dec_feature, mask_dec, mask_rsr, modules=[])
            else:
                gate = self.gate(dec_feature, mask_dec, mask_rsr)
            # In float32 and clamped: under bf16 autocast ``1 - gate`` rounds (1 − 0.0017 → 1.0), so the mix left
            # [0, 1] (1.0001 in a bf16 training run, which BCE refuses); in float32 it can still pass 1 by an ulp.
            gate = gate.float()
            mask = (gate * mask_dec.float() + (1 - gate) * mask_rsr.float()).clamp(0.0, 1.0)
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
    download_args=("pretrained_backbone",),
)
# Sane values of RSRNet's constructor arguments: a saved config.json or a command line outside them is refused.
ARG_BOUNDS = {
    "backbone": Bound(choices=tuple(BACKBONE_WEIGHTS)),
    "iterations": Bound(1, 100),
    "feature_dim": Bound(1, 2048),
    "hidden_dim": Bound(1, 2048),
    "embed_dim": Bound(1, 2048),
    "scales": Bound(0, 16, length=(1, 8)),
    "threshold": Bound(0.0, 1.0),
    "decoder_channels": Bound(1, 2048, length=(4, 4)),
    "rsr": Bound(choices=RSR_MODES),
    "recurrent_unit": Bound(choices=CELLS),
    "context": Bound(choices=CONTEXTS),
    "upsample": Bound(choices=UPSAMPLERS),
    "combination": Bound(choices=COMBINATIONS),
    "guidance": Bound(choices=GUIDANCES),
    "residual": Bound(choices=RESIDUALS),
    "hidden_init": Bound(choices=HIDDEN_INITS),
    "initial_mask": Bound(0.0, 1.0),
}


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
    ],
    arg_bounds=ARG_BOUNDS,
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
    ],
    arg_bounds=ARG_BOUNDS,
)
def rsrnet_resnet18(**kwargs) -> RSRNet:
    """RSRNet with a ResNet18 encoder, for CPU experiments."""
    return RSRNet(**{"backbone": "resnet18", **kwargs})
