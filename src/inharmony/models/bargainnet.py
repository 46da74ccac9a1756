"""BargainNet's domain code extractor as a harmony score (Cong et al., ICME 2021; libcom's ``HarmonyScoreModel``).

BargainNet's domain code extractor is a partial-convolution encoder: run on the composite with the
background as its mask and again with the foreground as its mask, it gives two 16-dimensional codes of the
two regions' illumination. libcom turns their distance into a harmony score in (0, 1], larger for a more
harmonious composite: ``exp(−0.04212 · ‖s_bg − s_fg‖₂)``.

This module computes what libcom's ``StyleEncoder(style_dim=16)``
(``libcom/harmony_score/source/bargainnet.py``) and ``HarmonyScoreModel`` compute, so their released
``BargainNet.pth``, converted by :func:`checkpoint_filter_fn`, gives the same scores. Differences, none of
which changes a number beyond float rounding: batches of any size (both regions of every image in one
pass; libcom scores one image, one region at a time), and the score is computed in torch rather than numpy.

The input is the composite normalised as libcom normalises it (``(x − 0.5) / 0.5``: RGB in [−1, 1]), 256×256
for the published weights (libcom resizes the photo and the masks with PIL's bilinear ``Resize``), and the
foreground mask in [0, 1]; the background mask is ``1 − mask``.

Parameters: 3,919,376 (the same as libcom's).

The published weights are libcom's copy on the Hugging Face Hub (``BCMIZB/Libcom_pretrained_models``,
``BargainNet.pth``, Apache-2.0).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ._hub import HubMixin
from ._registry import Bound, PretrainedCfg, register_model
from .madisnet import LIBCOM_REPO

__all__ = ["DISTANCE_SCALE", "LIBCOM_FILE", "BargainNet", "PartialConv2d", "bargainnet", "checkpoint_filter_fn"]

BARGAINNET_PAPER = (
    "Wenyan Cong, Li Niu, Jianfu Zhang, Jing Liang, Liqing Zhang. BargainNet: Background-Guided Domain "
    "Translation for Image Harmonization. ICME 2021."
)
BARGAINNET_PAPER_URL = "https://ieeexplore.ieee.org/document/9428394"
#: libcom's file in :data:`~inharmony.models.madisnet.LIBCOM_REPO`.
LIBCOM_FILE = "BargainNet.pth"
#: libcom's score: ``exp(-DISTANCE_SCALE * distance)``.
DISTANCE_SCALE = 0.04212
MIN_SIZE = 63  # five 3×3 stride-2 convolutions without padding leave 1×1


class PartialConv2d(nn.Conv2d):
    """Partial convolution with one mask channel (Liu et al., 2018), as libcom's ``PartialConv2d``.

    ``forward(x, mask) -> (y, new_mask)``: the convolution of ``x · mask`` rescaled by
    ``k² / (Σ_window mask + 1e-8)``, zero where the window holds no mask; with a bias, the bias is kept out
    of the rescaling. ``new_mask`` is the window sum of the mask clamped to [0, 1] (soft masks stay soft).
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        with torch.no_grad():
            ones = torch.ones(1, 1, *self.kernel_size, dtype=mask.dtype, device=mask.device)
            coverage = F.conv2d(mask, ones, stride=self.stride, padding=self.padding, dilation=self.dilation)
            new_mask = coverage.clamp(0, 1)
            ratio = (ones.numel() / (coverage + 1e-8)) * new_mask
        raw = super().forward(x * mask)
        if self.bias is None:
            return raw * ratio, new_mask
        bias = self.bias.view(1, -1, 1, 1)
        return ((raw - bias) * ratio + bias) * new_mask, new_mask


class BargainNet(HubMixin, nn.Module):
    """BargainNet's domain code extractor scoring how well a foreground matches its background.

    Args:
        style_dim: Length of the domain code.
        width: Channels of the first convolution (doubled at each stride, at most 8×).

    ``forward(image, mask)``: ``image`` ``(B, 3, H, W)`` normalised RGB (``(x − 0.5) / 0.5``), ``mask``
    ``(B, 1, H, W)`` in [0, 1], 1 on the foreground; ``H``, ``W`` ≥ 63 (256 for the published weights).

    Returns:
        ``{"score": (B,), "distance": (B,), "style_fg": (B, D), "style_bg": (B, D)}``: the harmony score
        ``exp(−0.04212 · distance)`` in (0, 1], the Euclidean distance between the two regions' domain codes,
        and the codes.

    Example:
        >>> model = BargainNet().eval()
        >>> image, mask = torch.rand(2, 3, 64, 64) * 2 - 1, torch.zeros(2, 1, 64, 64)
        >>> mask[:, :, 16:48, 16:48] = 1
        >>> out = model(image, mask)
        >>> out["score"].shape, bool(((out["score"] > 0) & (out["score"] <= 1)).all())
        (torch.Size([2]), True)
    """

    def __init__(self, style_dim: int = 16, width: int = 64) -> None:
        super().__init__()
        channels = [3] + [width * min(2**n, 8) for n in range(5)]  # 3, 64, 128, 256, 512, 512
        self.convs = nn.ModuleList(
            PartialConv2d(cin, cout, kernel_size=3, stride=2, padding=0, bias=i == 0)
            for i, (cin, cout) in enumerate(itertools.pairwise(channels))
        )
        # After the 2nd, 3rd and 4th convolutions (the 1st and 5th have none).
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in channels[2:5])
        self.head = nn.Conv2d(channels[-1], style_dim, kernel_size=1)

    def style(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The domain code ``(B, style_dim)`` of the region ``mask`` selects (libcom's ``StyleEncoder``)."""
        x = image
        for i, conv in enumerate(self.convs):
            x, mask = conv(x, mask)
            if 1 <= i <= 3:
                x = self.norms[i - 1](x)
            if i < 4:
                x = F.relu(x)
        return self.head(F.adaptive_avg_pool2d(x, 1)).flatten(1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        _check(image, mask)
        mask = mask.to(image.dtype)
        b = image.shape[0]
        codes = self.style(torch.cat([image, image]), torch.cat([1 - mask, mask]))
        style_bg, style_fg = codes[:b], codes[b:]
        distance = (style_bg.float() - style_fg.float()).pow(2).sum(dim=1).sqrt()
        return {
            "score": torch.exp(-DISTANCE_SCALE * distance),
            "distance": distance,
            "style_fg": style_fg,
            "style_bg": style_bg,
        }


def _check(image: object, mask: object) -> None:
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    for name, value, channels in (("image", image, 3), ("mask", mask, 1)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a float tensor of shape (B, {channels}, H, W), got {type(value).__name__}")
        if value.ndim != 4 or value.shape[1] != channels:
            raise ValueError(f"{name} must have shape (B, {channels}, H, W), got {tuple(value.shape)}")
        if not value.is_floating_point():
            raise ValueError(f"{name} must be a float tensor, got dtype {value.dtype}")
    expected = (image.shape[0], 1, *image.shape[-2:])  # type: ignore[union-attr]
    if tuple(mask.shape) != expected:  # type: ignore[union-attr]
        raise ValueError(f"mask must have shape {expected} (the image's batch and size), got {tuple(mask.shape)}")  # type: ignore[union-attr]
    h, w = image.shape[-2:]  # type: ignore[union-attr]
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"the image is {h}×{w}; BargainNet needs at least {MIN_SIZE}×{MIN_SIZE} (256×256 is its size)")


# ---------------------------------------------------------------------- libcom's key layout

_RULES: list[tuple[re.Pattern[str], object]] = [
    (re.compile(r"^conv([1-5])f\.(.+)$"), lambda m: f"convs.{int(m[1]) - 1}.{m[2]}"),
    (re.compile(r"^norm([2-4])f\.(.+)$"), lambda m: f"norms.{int(m[1]) - 2}.{m[2]}"),
    (re.compile(r"^convs\.(weight|bias)$"), lambda m: f"head.{m[1]}"),
]


def checkpoint_filter_fn(
    state_dict: Mapping[str, torch.Tensor], model: BargainNet | None = None
) -> dict[str, torch.Tensor]:
    """libcom's ``BargainNet.pth`` state dict (``StyleEncoder``) → :class:`BargainNet`'s.

    A ``{"state_dict": ...}`` wrapper and ``module.``/``model.`` prefixes are removed; ``conv{1-5}f`` →
    ``convs.{0-4}``, ``norm{2-4}f`` → ``norms.{0-2}``, ``convs`` → ``head``. Keys no rule knows are passed
    through unchanged, so that :func:`~inharmony.models.load_state_dict_strict` names them.

    Args:
        state_dict: libcom's state dict, as ``read_state_dict`` returns it.
        model: Unused (the rules need no shapes); taken for the common signature.

    Example:
        >>> theirs = {"module.conv1f.bias": torch.zeros(64), "convs.weight": torch.zeros(16, 512, 1, 1)}
        >>> sorted(checkpoint_filter_fn(theirs))
        ['convs.0.bias', 'head.weight']
    """
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.").removeprefix("model.")
        for pattern, rename in _RULES:
            match = pattern.match(key)
            if match:
                key = rename(match)  # type: ignore[operator]
                break
        out[key] = value
    return out


# ---------------------------------------------------------------------- registration

ARG_BOUNDS = {"style_dim": Bound(1, 1024), "width": Bound(1, 1024)}  # a config.json outside them is refused


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "bargainnet",
            tag="libcom",
            hf_hub_id=LIBCOM_REPO,
            weights_format="harmony-libcom",  # libcom's BargainNet.pth, converted when loaded
            revision=None,
            input_size=(3, 256, 256),
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            paper=BARGAINNET_PAPER,
            paper_url=BARGAINNET_PAPER_URL,
            license="apache-2.0",
            size_multiple=1,
            task="harmony_score",
            notes=(
                "Weights: BargainNet's domain code extractor as the libcom toolbox publishes it (BargainNet.pth; "
                "repository tagged Apache-2.0), trained on iHarmony4. Composite resized to 256x256 and normalised "
                "with mean = std = 0.5, foreground mask in [0, 1] -> harmony score exp(-0.04212 * distance)."
            ),
        )
    ],
    arg_bounds=ARG_BOUNDS,
)
def bargainnet(**kwargs) -> BargainNet:
    """BargainNet's domain code extractor (libcom's ``StyleEncoder(style_dim=16)``) as a harmony scorer."""
    return BargainNet(**kwargs)
