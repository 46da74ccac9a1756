"""Building blocks of RSRNet's Recurrent Self-Reasoning (RSR) module.

Functions follow the equations of Wu et al. (BMVC 2022, §3.2) so that tests can check each one
against a naive implementation: :func:`background_feature` is eq. (1), :func:`multiscale_similarity`
eq. (2) for every scale, :class:`ConvGRUCell` the GRU update of §3.2.2 and :func:`convex_upsample`
the learnt ×8 upsampling the paper borrows from RAFT (Teed & Deng, ECCV 2020).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import checkpointed

__all__ = [
    "LOGIT_INITIAL_MASK",
    "ConvGRUCell",
    "RecurrentSelfReasoning",
    "SimilarityReasoning",
    "TwoConvCell",
    "background_feature",
    "convex_upsample",
    "multiscale_similarity",
    "neighbourhood_directions",
]

#: ``M^0`` of the logit residual (``Z^0 = logit(0.01) ≈ −4.6``). The paper's ``M^0 = 0`` has no finite
#: logit; 1 % is background by eq. (1) with a wide margin while the sigmoid's slope there (≈ 0.0099)
#: still lets ``ΔM`` move the mask, and BCE's gradient with respect to the logit (``p − y``) does not
#: vanish at all. The loss weights ``0.8^{K−k}`` of eq. (3) expect early masks to be coarse anyway.
LOGIT_INITIAL_MASK = 0.01


def background_feature(style: torch.Tensor, mask: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Mean style feature over the pixels the mask calls background (eq. 1).

    A pixel is background when ``mask < threshold``. An image with no background pixel at all
    (every pixel at or above the threshold) falls back to the mean over all its pixels, which is
    also what the all-zero initial mask gives, so the first and the degenerate case agree.

    Args:
        style: Style feature map ``F_s``, ``(B, C, h, w)``.
        mask: Inharmonious mask ``M`` in [0, 1], ``(B, 1, h, w)``.
        threshold: ε of the paper.

    Returns:
        ``f_bg``, ``(B, C)``, in the dtype of ``style``. The threshold passes no gradient to ``mask``.

    Example:
        >>> style = torch.arange(4.0).view(1, 1, 2, 2)
        >>> background_feature(style, torch.tensor([[[[0.0, 0.9], [0.1, 0.7]]]]))
        tensor([[1.]])
    """
    # float32 even under autocast: a half-precision sum over a large map overflows
    features = style.float()
    background = (mask < threshold).float()
    count = background.sum(dim=(2, 3))  # (B, 1)
    total = (features * background).sum(dim=(2, 3))  # (B, C)
    mean = torch.where(count > 0, total / count.clamp_min(1.0), features.mean(dim=(2, 3)))
    return mean.to(style.dtype)


def neighbourhood_directions(
    style: torch.Tensor, scales: Sequence[int] = (0, 1, 2, 3), eps: float = 1e-8
) -> torch.Tensor:
    """Unit vectors of the local feature sums ``Σ_{j∈N^l(i)} F_s(j)`` for every scale ``l``.

    ``N^l(i)`` is the ``(2l+1)²`` square centred on pixel ``i``, clipped to the image. Average
    pooling with zero padding gives that sum times a positive constant, which the normalisation
    removes. ``F_s`` does not change across RSR iterations, so this runs once per forward pass.

    Returns:
        ``(B, L, C, h, w)`` with ``L = len(scales)``.
    """
    sums = [
        style if s == 0 else F.avg_pool2d(style, 2 * s + 1, stride=1, padding=s, count_include_pad=True)
        for s in scales
    ]
    stacked = torch.stack(sums, dim=1)
    return stacked / stacked.norm(dim=2, keepdim=True).clamp_min(eps)


def multiscale_similarity(
    directions: torch.Tensor, background: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Multi-scale Similarity Map: cosine similarity of ``f_bg`` with each local sum (eq. 2).

    Args:
        directions: Output of :func:`neighbourhood_directions`, ``(B, L, C, h, w)``.
        background: ``f_bg`` from :func:`background_feature`, ``(B, C)``.
        eps: Lower bound on the norm of ``f_bg``.

    Returns:
        ``S``, ``(B, L, h, w)`` in [-1, 1], one channel per scale.

    Example:
        >>> style = torch.randn(2, 8, 5, 5)
        >>> f_bg = background_feature(style, torch.zeros(2, 1, 5, 5))
        >>> multiscale_similarity(neighbourhood_directions(style), f_bg).shape
        torch.Size([2, 4, 5, 5])
    """
    unit = background / background.norm(dim=1, keepdim=True).clamp_min(eps)
    return torch.einsum("blchw,bc->blhw", directions, unit)


def convex_upsample(x: torch.Tensor, weights: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Upsample ``x`` by ``factor``: each output pixel is a convex combination of a 3×3 neighbourhood.

    Every low-resolution pixel owns a ``factor × factor`` block of output pixels; each of those is
    a softmax-weighted average of the 3×3 neighbourhood of its low-resolution pixel (RAFT's
    learnt upsampling). Borders are replicate-padded, so the weights always combine real values:
    a constant map stays constant and values stay within the range of ``x`` (RAFT pads with zeros,
    which pulls border pixels towards 0).

    Args:
        x: ``(B, C, h, w)``.
        weights: Unnormalised weights ``(B, 9·factor², h, w)``, laid out as ``(9, factor, factor)``
            per pixel: neighbour first, then the sub-pixel row and column.
        factor: Upsampling factor.

    Returns:
        ``(B, C, factor·h, factor·w)``.

    Example:
        >>> x = torch.rand(1, 1, 4, 4)
        >>> convex_upsample(x, torch.randn(1, 9 * 64, 4, 4)).shape
        torch.Size([1, 1, 32, 32])
    """
    b, c, h, w = x.shape
    if weights.shape != (b, 9 * factor * factor, h, w):
        raise ValueError(
            f"convex upsampling of a {tuple(x.shape)} map by {factor} needs weights of shape "
            f"{(b, 9 * factor * factor, h, w)}, got {tuple(weights.shape)}"
        )
    weights = weights.view(b, 1, 9, factor, factor, h, w).softmax(dim=2)
    neighbours = F.unfold(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel_size=3)
    neighbours = neighbours.view(b, c, 9, 1, 1, h, w)
    out = (weights * neighbours).sum(dim=2)  # (B, C, factor, factor, h, w)
    return out.permute(0, 1, 4, 2, 5, 3).reshape(b, c, h * factor, w * factor)


class ConvGRUCell(nn.Module):
    """Convolutional GRU of §3.2.2 (3×3 convolutions over ``[H, X]``).

    The update gate ``Z`` and reset gate ``R`` share one convolution with ``2·hidden`` outputs,
    which is the same function as two separate convolutions ``W_z`` and ``W_r``.

    Example:
        >>> cell = ConvGRUCell(input_dim=5, hidden_dim=8)
        >>> cell(torch.zeros(1, 8, 4, 4), torch.randn(1, 5, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.hidden_dim = hidden_dim
        self.gates = nn.Conv2d(hidden_dim + input_dim, 2 * hidden_dim, kernel_size, padding=pad)
        self.candidate = nn.Conv2d(hidden_dim + input_dim, hidden_dim, kernel_size, padding=pad)

    def forward(self, hidden: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        update, reset = torch.sigmoid(self.gates(torch.cat([hidden, x], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([reset * hidden, x], dim=1)))
        return (1 - update) * hidden + update * candidate


class TwoConvCell(nn.Module):
    """Ablation "w/o GRU" (Table 2, row 5): two 3×3 convolutions map ``X`` to ``H``, no memory.

    The previous hidden state is ignored; ``tanh`` keeps ``H`` in the GRU's range so the heads
    that read it are unchanged.
    """

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.hidden_dim = hidden_dim
        self.body = nn.Sequential(
            nn.Conv2d(input_dim, hidden_dim, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, hidden_dim, kernel_size, padding=pad),
            nn.Tanh(),
        )

    def forward(self, hidden: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        del hidden  # no recurrence in this ablation
        return self.body(x)


class RecurrentSelfReasoning(nn.Module):
    """The RSR module: K iterations of background estimate → similarity → recurrent mask update.

    Each iteration ``k`` computes ``f_bg`` from ``M^{k-1}`` (eq. 1), the Multi-scale Similarity Map
    (eq. 2), embeds ``M^{k-1}`` and the MSM with a 3×3 convolution each (+ ReLU), concatenates them
    with the context map (``F_c``) and ``M^{k-1}`` into ``X^k``, updates the hidden state, predicts
    ``ΔM^k`` with conv3×3 → ReLU → conv1×1, and upsamples ``M^k`` to full resolution.

    ``M^0`` and the residual base are one thing (:meth:`initial_state`): with ``residual="logits"``
    the base is ``Z^0 = logit(m_0)`` and ``M^0 = σ(Z^0) = m_0`` (default ``m_0 = 0.01``, see
    :data:`LOGIT_INITIAL_MASK`); with ``residual="probabilities"`` the base is ``M^0 = m_0``
    (default 0, the paper's all-zero mask). Either default is below ε, so every pixel starts as
    background and ``f_bg^0`` is the global mean of ``F_s``, as §3.2.1 says.

    Args:
        context_dim: Channels of the context map fed to every iteration (``F_c``, or ``F_s`` in the
            "w/o F_c" ablation).
        iterations: K (paper: 12).
        hidden_dim: Channels of the hidden state ``H`` (RAFT's GRU width, 128).
        embed_dim: Output channels of the 3×3 convolutions on ``M`` and on the MSM.
        scales: Neighbourhood half-sizes ``l`` of the MSM (paper: 0, 1, 2, 3).
        threshold: ε of eq. (1).
        upsample_factor: Stride of the maps (8).
        cell: ``"gru"`` (paper) or ``"conv"`` (Table 2 row 5, :class:`TwoConvCell`).
        use_similarity: ``False`` drops the MSM from ``X`` (Table 2 row 6); ``F_s`` is then not
            needed and :meth:`forward` takes ``style=None``.
        upsample: ``"convex"`` (paper) or ``"bilinear"`` (Table 2 row 8).
        residual: ``"logits"``: ``M^k = σ(Z^k)``, ``Z^k = Z^{k-1} + ΔM^k``, so masks are always in
            (0, 1) and gradients never vanish at a clamp. ``"probabilities"``: the literal
            ``M^k = clamp(M^{k-1} + ΔM^k, 0, 1)``.
        hidden_init: ``"zeros"`` or ``"context"`` (``H^0 = tanh(conv1×1(context))``, as RAFT does);
            ``"context"`` needs ``cell="gru"`` (the two-convolution cell reads no hidden state).
        detach_mask: Cut the gradient through ``M^{k-1}`` into iteration ``k`` (RAFT detaches its
            flow between iterations); each iteration is then trained only by its own loss term.
        initial_mask: ``m_0``, the value of ``M^0`` everywhere; ``None`` for the default of the
            residual space (``"logits"``: 0.01, in (0, 1); ``"probabilities"``: 0, in [0, 1]).

    Example:
        >>> rsr = RecurrentSelfReasoning(context_dim=8, iterations=2, hidden_dim=8, embed_dim=4)
        >>> low, masks = rsr(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4))
        >>> low.shape, len(masks), masks[-1].shape
        (torch.Size([1, 1, 4, 4]), 2, torch.Size([1, 1, 32, 32]))
    """

    def __init__(
        self,
        context_dim: int = 256,
        iterations: int = 12,
        hidden_dim: int = 128,
        embed_dim: int = 64,
        scales: Sequence[int] = (0, 1, 2, 3),
        threshold: float = 0.5,
        upsample_factor: int = 8,
        cell: str = "gru",
        use_similarity: bool = True,
        upsample: str = "convex",
        residual: str = "logits",
        hidden_init: str = "zeros",
        detach_mask: bool = False,
        initial_mask: float | None = None,
    ) -> None:
        super().__init__()
        _check_choice("cell", cell, CELLS)
        _check_choice("upsample", upsample, UPSAMPLERS)
        _check_choice("residual", residual, RESIDUALS)
        _check_choice("hidden_init", hidden_init, HIDDEN_INITS)
        if iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations}")
        if use_similarity and (not scales or min(scales) < 0):
            raise ValueError(f"scales must be non-negative neighbourhood half-sizes, got {tuple(scales)}")
        if hidden_init == "context" and cell != "gru":
            raise ValueError(
                f"hidden_init='context' needs recurrent_unit='gru': the {cell!r} cell reads no hidden state, "
                "so H^0 would be computed and never used; use hidden_init='zeros'"
            )
        self.iterations = iterations
        self.scales = tuple(int(s) for s in scales)
        self.threshold = threshold
        self.factor = upsample_factor
        self.use_similarity = use_similarity
        self.upsample = upsample
        self.residual = residual
        self.detach_mask = detach_mask
        self.initial_mask = _initial_mask(residual, initial_mask)

        self.mask_embed = nn.Sequential(nn.Conv2d(1, embed_dim, 3, padding=1), nn.ReLU(inplace=True))
        input_dim = embed_dim + context_dim + 1
        if use_similarity:
            self.similarity_embed = nn.Sequential(
                nn.Conv2d(len(self.scales), embed_dim, 3, padding=1), nn.ReLU(inplace=True)
            )
            input_dim += embed_dim
        self.hidden_init = None
        if hidden_init == "context":
            self.hidden_init = nn.Sequential(nn.Conv2d(context_dim, hidden_dim, 1), nn.Tanh())
        self.hidden_dim = hidden_dim
        self.cell = (ConvGRUCell if cell == "gru" else TwoConvCell)(input_dim, hidden_dim)
        self.delta_head = nn.Sequential(
            nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, 1, 1),
        )
        self.upsample_head = (
            nn.Sequential(
                nn.Conv2d(hidden_dim, 256, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(256, 9 * upsample_factor**2, 1),
            )
            if upsample == "convex"
            else None
        )
        self.grad_checkpointing = False

    def initial_state(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M^0, base)`` for maps shaped like ``like`` ``(B, C, h, w)``: ``M^0`` is derived from the base.

        The base is what the first ``ΔM^1`` is added to: the logit ``Z^0`` (``M^0 = σ(Z^0)``) or,
        with ``residual="probabilities"``, ``M^0`` itself.

        Example:
            >>> rsr = RecurrentSelfReasoning(context_dim=8, iterations=1, hidden_dim=8, embed_dim=4)
            >>> mask, base = rsr.initial_state(torch.zeros(1, 8, 2, 2))
            >>> torch.equal(mask, torch.sigmoid(base)), round(float(mask.max()), 4)
            (True, 0.01)
        """
        b, _, h, w = like.shape
        if self.residual == "logits":
            base = like.new_full((b, 1, h, w), math.log(self.initial_mask / (1.0 - self.initial_mask)))
            return torch.sigmoid(base), base
        mask = like.new_full((b, 1, h, w), self.initial_mask)
        return mask, mask

    def forward(
        self, style: torch.Tensor | None, context: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run K iterations.

        Args:
            style: ``F_s``, ``(B, C_s, h, w)``; ``None`` when ``use_similarity=False`` (it is not read).
            context: ``F_c`` (or ``F_s``), ``(B, C_c, h, w)``.

        Returns:
            ``(M^K, [M̄^1, …, M̄^K])``: the last mask at stride ``upsample_factor`` and every
            iteration's mask upsampled to full resolution, all in [0, 1].
        """
        if self.use_similarity and style is None:
            raise ValueError("RecurrentSelfReasoning with use_similarity=True needs the style map F_s, got None")
        b, _, h, w = context.shape
        mask, base = self.initial_state(context)
        if self.hidden_init is not None:
            hidden = self.hidden_init(context)
        else:
            hidden = context.new_zeros(b, self.hidden_dim, h, w)
        directions = neighbourhood_directions(style, self.scales) if self.use_similarity else None
        upsampled = []
        for _ in range(self.iterations):
            if self.detach_mask:
                mask, base = mask.detach(), base.detach()
            parts = [self.mask_embed(mask)]
            if directions is not None:
                f_bg = background_feature(style, mask, self.threshold)
                parts.append(self.similarity_embed(multiscale_similarity(directions, f_bg)))
            hidden = self.cell(hidden, torch.cat([*parts, context, mask], dim=1))
            delta = self.delta_head(hidden)
            if self.residual == "logits":
                base = base + delta
                mask = torch.sigmoid(base)
            else:
                mask = base = (mask + delta).clamp(0.0, 1.0)
            if self.grad_checkpointing and self.upsample_head is not None:
                # The convex weights are 9·factor² channels at 1/factor² of the pixels: 9 full-resolution maps.
                upsampled.append(checkpointed(self._upsample, mask, hidden, modules=[]))
            else:
                upsampled.append(self._upsample(mask, hidden))
        return mask, upsampled

    def _upsample(self, mask: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        if self.upsample_head is not None:
            # A convex combination of values in [0, 1] is in [0, 1], but float rounding of the
            # weighted sum can overshoot by an ulp, which binary cross-entropy refuses.
            return convex_upsample(mask, self.upsample_head(hidden), self.factor).clamp(0.0, 1.0)
        return F.interpolate(mask, scale_factor=self.factor, mode="bilinear", align_corners=False)


class SimilarityReasoning(nn.Module):
    """Ablation "only similarity map" (Table 2, row 3): K-means-like iterations without learning.

    Each iteration sets ``M^k = (1 − S^{k-1,0}) / 2`` from the single-scale (``l = 0``) cosine
    similarity to the current background feature: dissimilar pixels become inharmonious, and the
    affine map puts the mask in [0, 1] with the ε = 0.5 threshold at zero similarity. There is no
    hidden state to predict upsampling weights from, so masks are upsampled bilinearly. There is
    no residual either, so ``M^0`` is exactly the paper's all-zero mask. It has no parameters: its
    masks reach ``F_s`` (and train the style head) through ``f_bg`` and the similarity.
    """

    def __init__(self, iterations: int = 12, threshold: float = 0.5, upsample_factor: int = 8) -> None:
        super().__init__()
        if iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations}")
        self.iterations = iterations
        self.threshold = threshold
        self.factor = upsample_factor

    def forward(
        self, style: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Same contract as :meth:`RecurrentSelfReasoning.forward`; ``context`` is unused."""
        b, _, h, w = style.shape
        mask = style.new_zeros(b, 1, h, w)
        directions = neighbourhood_directions(style, (0,))
        upsampled = []
        for _ in range(self.iterations):
            similarity = multiscale_similarity(directions, background_feature(style, mask, self.threshold))
            mask = ((1.0 - similarity) / 2.0).clamp(0.0, 1.0)  # clamp only guards rounding
            upsampled.append(
                F.interpolate(mask, scale_factor=self.factor, mode="bilinear", align_corners=False)
            )
        return mask, upsampled


CELLS = ("gru", "conv")
"""The recurrent units of :class:`RecurrentSelfReasoning` (RSRNet's ``recurrent_unit``)."""
UPSAMPLERS = ("convex", "bilinear")
"""How the RSR masks are upsampled (RSRNet's ``upsample``)."""
RESIDUALS = ("logits", "probabilities")
"""Where the mask update is added (RSRNet's ``residual``)."""
HIDDEN_INITS = ("zeros", "context")
"""The GRU's initial hidden state (RSRNet's ``hidden_init``)."""


def _initial_mask(residual: str, value: float | None) -> float:
    if value is None:
        return LOGIT_INITIAL_MASK if residual == "logits" else 0.0
    value = float(value)
    if residual == "logits" and not 0.0 < value < 1.0:
        raise ValueError(
            f"initial_mask must be in (0, 1) with residual='logits' (its logit is the residual base), got {value}"
        )
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"initial_mask must be in [0, 1], got {value}")
    return value


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
