"""S2AM: Improving the Harmony of the Composite Image by Spatial-Separated Attention Module (Cun & Pun, TIP 2020).

Output contract (what the loss, the harmonization task and the app read):

* ``create_model("s2am")``: ``forward(image, mask) -> {"image": (B, 3, H, W)}``.
  ``image`` is RGB in [0, 1] (``cfg.mean = (0, 0, 0)``, ``cfg.std = (1, 1, 1)``: the authors feed
  ``ToTensor()`` pixels, not normalised); ``mask`` is ``(B, 1, H, W)`` in [0, 1], 1 on the region to
  harmonize. The output ``"image"`` is the network's RGB in [0, 1] scale, **not clamped** (as the
  authors' network: they clamp only when writing pixels) and not blended with the input: the
  authors paste it into the composite with the mask afterwards (``out * mask + image * (1 - mask)``).
* ``create_model("s2am_maskfree")``: ``forward(image) -> {"image", "mask", "attention"}``.
  ``"image"`` as above (raw network output, not clamped; with ``blend=True`` the paper's Eq. 2,
  ``raw * mask + image * (1 - mask)``); ``"mask"`` ``(B, 1, H, W)`` in [0, 1]: the finest spatial
  attention (stride 2) upsampled ×2 (bilinear, ``align_corners=True``), as the authors' network
  returns it; ``"attention"``: always present (training and eval), a list of the three spatial
  attention maps the paper's attention loss supervises, **finest first**:
  ``[(B,1,H/2,W/2), (B,1,H/4,W/4), (B,1,H/8,W/8)]`` (the authors' ``mask2s, mask4s, mask8s``), each a
  sigmoid in [0, 1]; the loss compares each with the ground-truth mask resized to its size.

Both take ``H`` and ``W`` multiples of ``2 ** num_downs`` (256 for the authors' ``num_downs=8``).

The network restates the authors' code (``vinthony/s2am``, ``scripts/models/unet.py``, ``rasc.py``,
``urasc.py``, ``blocks.py``, ``backbone_unet.py``) layer for layer, so their checkpoints load
(:mod:`inharmony.models.converters.s2am`):

* a pix2pix UNet (``UnetGenerator(num_downs=8, ngf=64)``, BatchNorm): down = LeakyReLU(0.2) → conv4×4
  stride 2 → BN (the outermost: the conv alone; the innermost: no BN), up = ReLU → transposed conv4×4
  stride 2 → BN (the outermost: with bias, no BN, no Tanh). The authors' LeakyReLU is in place, so
  the skip connection carries the *activated* encoder feature; this is kept;
* ``s2am`` is their ``rascv2`` (S2AD): the image and the mask enter as four channels, and in the three
  coarser levels (strides 2, 4, 8) the concatenation of skip and decoded feature passes an S2AM
  (``RASC``): ``y = M·[L(G_fg(x)) + G_mix(x)] + (1 − M)·G_bg(x)``, where each channel gate ``G``
  weights the channels by ``sigmoid(fc2(relu(fc1([avgpool(x), maxpool(x)]))))`` (reduction 16), ``L``
  is conv3×3 (×2 channels) → BN → ELU → conv3×3 → BN → ELU, and ``M`` is the mask brought to the
  level by ``round(avg_pool2d(mask, 2, stride=H_mask // H_level))`` then smoothed, with ``1 − M``,
  by the authors' 5×5 Gaussian (their formula ``exp(-((x − 2) / 2)²)``, normalised; reflect padding).
  The paper says a 7×7 kernel; the code, which produced the weights, uses this one;
* ``s2am_maskfree`` is their ``maskedurasc`` (``urasc`` has the same weights): three input channels,
  and each S2AM's mask is a spatial attention ``sigmoid(conv7×7(relu(conv7×7([mean_c(x), max_c(x)]))))``
  (16 channels in between) computed from the feature itself. Their released ``maskedurasc`` returns
  only the finest map (upsampled); their training machine (``MMaskedRASCGAN``) reads all three from a
  network (``naivemultimaskedurasc``) that is not in the repository: ``"attention"`` holds the three
  maps the released network computes, at its three S2AMs.

Options beyond the authors' defaults: ``num_downs`` and ``base_channels`` (their ``ngf``) make small
networks for tests; ``global_skip`` adds the input to the output (their later iHarmony4 models);
``blend`` (mask-free only) applies the paper's Eq. 2 inside the network.

Parameter counts (``num_downs=8``): ``s2am`` 67,003,051 and ``s2am_maskfree`` 67,009,134, the same
as the authors' ``rascv2`` and ``maskedurasc``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._hub import HubMixin
from ._input import check_input
from ._registry import Bound, PretrainedCfg, register_model

__all__ = [
    "S2AM",
    "S2AMMaskFree",
    "S2AMModule",
    "S2AMUNet",
    "s2am",
    "s2am_maskfree",
]

S2AM_PAPER = (
    "Xiaodong Cun, Chi-Man Pun. Improving the Harmony of the Composite Image by Spatial-Separated Attention "
    "Module. IEEE Transactions on Image Processing, vol. 29, pp. 4759-4771, 2020."
)
S2AM_PAPER_URL = "https://arxiv.org/abs/1907.06406"
NUM_DOWNS = 8
#: How many of the coarser UNet levels (strides 2, 4, 8) hold an S2AM, as in the authors' network.
ATTENTION_LEVELS = 3
_NGF = 64
_REDUCTION = 16


def smoothing_kernel(size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """The authors' ``GaussianSmoothing(1, 5, 1)`` kernel ``(1, 1, size, size)``, summing to 1.

    Their formula divides by ``2σ`` inside the square (not ``2σ²`` outside it); kept as it is.

    Example:
        >>> round(float(smoothing_kernel().sum()), 6)
        1.0
    """
    grid = torch.arange(size, dtype=torch.float64)
    mean = (size - 1) / 2
    profile = torch.exp(-(((grid - mean) / (2 * sigma)) ** 2)) / (sigma * math.sqrt(2 * math.pi))
    kernel = profile[:, None] * profile[None, :]
    return (kernel / kernel.sum()).float().view(1, 1, size, size)


class ChannelGate(nn.Module):
    """``x · sigmoid(fc2(relu(fc1([avgpool(x), maxpool(x)]))))``: one of G_bg, G_mix, G_fg."""

    def __init__(self, channels: int, reduction: int = _REDUCTION) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2 * channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        weights = torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))
        return x * weights[:, :, None, None]


class LearnableBlock(nn.Module):
    """L: conv3×3 (2× channels) → BN → ELU → conv3×3 → BN → ELU, without bias, at full resolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(2 * channels)
        self.conv2 = nn.Conv2d(2 * channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(self.bn2(self.conv2(F.elu(self.bn1(self.conv1(x))))))


class SpatialAttention(nn.Module):
    """The mask-free variant's mask: ``sigmoid(conv7×7(relu(conv7×7([mean_c(x), max_c(x)]))))``."""

    def __init__(self, hidden: int = _REDUCTION) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, hidden, 7, padding=3)
        self.conv2 = nn.Conv2d(hidden, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv2(F.relu(self.conv1(pooled))))


class S2AMModule(nn.Module):
    """Spatial-Separated Attention Module: ``y = M·[L(G_fg(x)) + G_mix(x)] + (1 − M)·G_bg(x)``.

    Args:
        channels: Width of the feature (the concatenated skip and decoded features).
        mask_free: Learn ``M`` with a :class:`SpatialAttention` instead of taking the given mask.

    ``forward(x, mask)`` returns ``(y, M)``: the attended feature and the soft mask used at this
    level (``(B, 1, h, w)``; with a given mask, the smoothed foreground mask).

    Example:
        >>> module = S2AMModule(32).eval()
        >>> y, m = module(torch.randn(1, 32, 8, 8), torch.ones(1, 1, 16, 16))
        >>> y.shape, m.shape
        (torch.Size([1, 32, 8, 8]), torch.Size([1, 1, 8, 8]))
    """

    def __init__(self, channels: int, mask_free: bool = False) -> None:
        super().__init__()
        self.mask_free = mask_free
        self.learnable = LearnableBlock(channels)
        self.background_gate = ChannelGate(channels)
        self.mixed_gate = ChannelGate(channels)
        self.foreground_gate = ChannelGate(channels)
        if mask_free:
            self.spatial = SpatialAttention()
        else:
            self.register_buffer("smoothing", smoothing_kernel(), persistent=False)

    def level_masks(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M, 1 − M)`` at the resolution of ``x``."""
        if self.mask_free:
            m = self.spatial(x)
            return m, 1 - m
        if mask is None:
            raise ValueError("this S2AM module needs the mask of the region to harmonize")
        if mask.shape[-2] != x.shape[-2]:
            # The authors' rule: a 2×2 average every (mask height / feature height) pixels, rounded.
            mask = torch.round(F.avg_pool2d(mask, 2, stride=mask.shape[-2] // x.shape[-2]))
        kernel = self.smoothing.to(mask.dtype)
        fg = F.conv2d(F.pad(mask, (2, 2, 2, 2), mode="reflect"), kernel)
        bg = F.conv2d(F.pad(1 - mask, (2, 2, 2, 2), mode="reflect"), kernel)
        return fg, bg

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        fg, bg = self.level_masks(x, mask)
        background = self.background_gate(x) * bg
        spliced = (self.learnable(self.foreground_gate(x)) + self.mixed_gate(x)) * fg
        return background + spliced, fg


class _Down(nn.Module):
    """conv4×4 stride 2 (no bias) → BN (absent at the innermost level)."""

    def __init__(self, in_channels: int, out_channels: int, norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class _Up(nn.Module):
    """transposed conv4×4 stride 2 (no bias) → BN."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class _Level(nn.Module):
    """One inner UNet level: its down and up convolutions and, in the coarser levels, an S2AM."""

    def __init__(self, in_channels: int, inner: int, attention: S2AMModule | None, innermost: bool) -> None:
        super().__init__()
        self.down = _Down(in_channels, inner, norm=not innermost)
        self.up = _Up(inner if innermost else 2 * inner, in_channels)
        self.attention = attention


class S2AMUNet(nn.Module):
    """The authors' UNet with S2AMs in its three coarser levels, as a plain module.

    Args:
        in_channels: 4 (image + mask: ``s2am``) or 3 (``s2am_maskfree``).
        mask_free: Spatial attention instead of the given mask in every S2AM.
        num_downs: Down-sampling steps (8 in the authors' code; at least 5). Inputs must be multiples
            of ``2 ** num_downs``.
        base_channels: Width of the first level (the authors' ``ngf``, 64); the levels double it up to 8×.

    ``forward(x, mask=None)`` returns ``(image, masks)``: the RGB output and each S2AM's mask,
    finest (stride 2) first.
    """

    def __init__(
        self, in_channels: int = 4, mask_free: bool = False, num_downs: int = NUM_DOWNS, base_channels: int = _NGF
    ) -> None:
        super().__init__()
        if num_downs < ATTENTION_LEVELS + 2:
            raise ValueError(f"num_downs must be at least {ATTENTION_LEVELS + 2}, got {num_downs}")
        self.num_downs = num_downs
        self.size_multiple = 2**num_downs
        self.stem = nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1, bias=False)
        self.head = nn.ConvTranspose2d(2 * base_channels, 3, 4, stride=2, padding=1)
        widths = [base_channels * min(2**i, 8) for i in range(num_downs)]  # 64, 128, 256, 512, 512, ...
        levels = []
        for i in range(1, num_downs):
            outer, inner = widths[i - 1], widths[i]
            attention = S2AMModule(2 * outer, mask_free) if i <= ATTENTION_LEVELS else None
            levels.append(_Level(outer, inner, attention, innermost=i == num_downs - 1))
        self.levels = nn.ModuleList(levels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' ``weights_init_kaiming``: He-normal (fan-in) weights, BN weights N(1, 0.02)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.stem(x)
        skips = []
        for level in self.levels:
            h = F.leaky_relu(h, 0.2)
            skips.append(h)  # the authors' in-place LeakyReLU makes the skip the activated feature
            h = level.down(h)
        masks = []
        for level, skip in zip(reversed(self.levels), reversed(skips), strict=True):
            h = torch.cat([skip, level.up(F.relu(h))], dim=1)
            if level.attention is not None:
                h, m = level.attention(h, mask)
                masks.append(m)
        return self.head(F.relu(h)), masks[::-1]


class S2AM(HubMixin, nn.Module):
    """S2AM harmonizer with the mask (the paper's S2AD; the authors' ``rascv2``).

    Args:
        num_downs: Down-sampling steps of the UNet (8, as the authors: inputs multiples of 256).
        base_channels: Width of the UNet's first level (64, as the authors).
        global_skip: Add the input image to the output (the authors' later iHarmony4 models "with global
            skip-connection"; their S2AD release has none).

    Inputs: ``image`` RGB ``(B, 3, H, W)`` in [0, 1] and ``mask`` ``(B, 1, H, W)`` in [0, 1]; H and W
    multiples of ``2 ** num_downs``.

    Returns:
        ``{"image": (B, 3, H, W)}``: RGB in [0, 1] scale, not clamped and not pasted into the composite.

    Example:
        >>> model = S2AM(num_downs=6).eval()
        >>> model(torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64))["image"].shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self, num_downs: int = NUM_DOWNS, base_channels: int = _NGF, global_skip: bool = False) -> None:
        super().__init__()
        self.global_skip = global_skip
        self.net = S2AMUNet(in_channels=4, mask_free=False, num_downs=num_downs, base_channels=base_channels)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this."""
        return self.net.size_multiple

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        _check_image(image, self.net.num_downs)
        _check_mask(mask, image)
        out, _ = self.net(torch.cat([image, mask.to(image.dtype)], dim=1), mask.to(image.dtype))
        return {"image": out + image if self.global_skip else out}


class S2AMMaskFree(HubMixin, nn.Module):
    """S2AM without the mask (the authors' ``maskedurasc``): harmonizes and predicts the region.

    Args:
        num_downs: Down-sampling steps of the UNet (8, as the authors: inputs multiples of 256).
        base_channels: Width of the UNet's first level (64, as the authors).
        blend: Return ``raw · mask + image · (1 − mask)`` (the paper's Eq. 2, trained end to end)
            instead of the raw network output (the authors' released forward).
        global_skip: Add the input image to the raw output (see :class:`S2AM`).

    Input: ``image`` RGB ``(B, 3, H, W)`` in [0, 1]; H and W multiples of ``2 ** num_downs``.

    Returns:
        ``{"image": (B,3,H,W), "mask": (B,1,H,W), "attention": [(B,1,H/2,W/2), (B,1,H/4,W/4), (B,1,H/8,W/8)]}``;
        see the module docstring.

    Example:
        >>> model = S2AMMaskFree(num_downs=6).eval()
        >>> out = model(torch.rand(1, 3, 64, 64))
        >>> out["mask"].shape, [a.shape[-1] for a in out["attention"]]
        (torch.Size([1, 1, 64, 64]), [32, 16, 8])
    """

    def __init__(
        self, num_downs: int = NUM_DOWNS, base_channels: int = _NGF, blend: bool = False, global_skip: bool = False
    ) -> None:
        super().__init__()
        self.blend = blend
        self.global_skip = global_skip
        self.net = S2AMUNet(in_channels=3, mask_free=True, num_downs=num_downs, base_channels=base_channels)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this."""
        return self.net.size_multiple

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:  # type: ignore[override]
        _check_image(image, self.net.num_downs)
        out, attention = self.net(image)
        if self.global_skip:
            out = out + image
        mask = F.interpolate(attention[0], scale_factor=2.0, mode="bilinear", align_corners=True)
        if self.blend:
            out = out * mask + image * (1 - mask)
        return {"image": out, "mask": mask, "attention": attention}


def _check_image(image: torch.Tensor, num_downs: int) -> None:
    check_input(image, 1)  # type, layout and dtype; the size rule is S2AM's own
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    multiple = 2**num_downs
    h, w = image.shape[-2:]
    if h % multiple or w % multiple:
        up = lambda v: -(-v // multiple) * multiple  # noqa: E731
        raise ValueError(
            f"input size {h}×{w} is not supported: height and width must be multiples of {multiple} (S2AM's UNet "
            f"halves the size {num_downs} times). Resize or pad the image, e.g. to {up(h)}×{up(w)}; "
            f"inharmony.inference.Predictor does this for you."
        )


def _check_mask(mask: object, image: torch.Tensor) -> None:
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"the mask must be a float tensor of shape (B, 1, H, W), got {type(mask).__name__}")
    expected = (image.shape[0], 1, *image.shape[-2:])
    if tuple(mask.shape) != expected:
        raise ValueError(
            f"the mask must have shape {expected} (one channel, the image's batch and size), got {tuple(mask.shape)}"
        )


_FAMILY = dict(
    input_size=(3, 256, 256),
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    paper=S2AM_PAPER,
    paper_url=S2AM_PAPER_URL,
    license="unknown",
    size_multiple=2**NUM_DOWNS,
)
# Sane values of the constructor arguments: 10 steps make inputs multiples of 1024; the channel gates need
# 2 × base_channels ≥ their reduction (16).
ARG_BOUNDS = {"num_downs": Bound(ATTENTION_LEVELS + 2, 10), "base_channels": Bound(_REDUCTION // 2, 512)}


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "s2am",
            notes=(
                "The paper's S2AD (the authors' rascv2): composite + mask -> harmonized image, RGB in [0, 1] "
                "(inputs not normalised), output not clamped; paste it into the composite with the mask. No "
                "published weights in inharmony; the authors' rascv2.pth.tar loads with "
                "inharmony.load('s2am', weights='rascv2.pth.tar')."
            ),
            task="harmonization",
            **_FAMILY,
        )
    ],
    arg_bounds=ARG_BOUNDS,
)
def s2am(**kwargs) -> S2AM:
    """S2AM harmonizer (S2AD): composite + mask → harmonized image, as the authors' ``rascv2``."""
    return S2AM(**kwargs)


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "s2am_maskfree",
            metrics={"ap": 43.77, "f1": 0.3029, "iou": 22.36},
            notes=(
                "S2AM without the mask (the authors' maskedurasc): composite -> harmonized image + predicted "
                "mask (the spatial attention), RGB in [0, 1] (inputs not normalised). Reference scores: the "
                "mask as a by-product, iHarmony4 le50 test split, as reported by DIRL. No published weights."
            ),
            task="harmonization",
            **_FAMILY,
        )
    ],
    arg_bounds=ARG_BOUNDS,
)
def s2am_maskfree(**kwargs) -> S2AMMaskFree:
    """S2AM without the mask: composite → harmonized image + predicted region mask (``maskedurasc``)."""
    return S2AMMaskFree(**kwargs)
