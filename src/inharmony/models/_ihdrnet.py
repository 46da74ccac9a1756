"""iHDRNet, MadisNet's colour mapper: a bilateral grid of per-pixel affine colour transforms.

A restatement of the computation in the authors' ``networks/iHDRNet.py`` and ``networks/blocks.py``
(``bcmi/MadisNet-Inharmonious-Region-Localization``, identical in libcom), as their released
weights need it, including where it differs from what the names suggest:

* the *splat* convolutions are central-difference convolutions (``theta = 0.7``): the output of a
  3×3 convolution (no bias) minus ``theta`` times a 1×1 convolution with the kernel's spatial sum,
  then BatchNorm (always, whatever ``--batch_norm`` says) and ReLU; each is followed by a 2×2
  max-pool, four times, so the grid has a cell per 16×16 pixels at any input size;
* the three "residual" blocks add the block's output to *itself* (the shortcut is read after the
  input variable was overwritten), so each computes ``relu(2·bn2(conv2(relu(bn1(conv1(x))))))``
  and never adds its input back;
* the grid is sliced with ``grid_sample`` whose x coordinate (the grid's width axis) is given the
  pixel's *row* and whose y coordinate the *column*, as the authors' code orders them;
* the affine transforms apply to the de-normalised input (0–1 RGB) and the result passes a
  sigmoid, so the retouched image is in (0, 1) and is *not* ImageNet-normalised; the authors'
  final per-channel clamp to the normalised range is a no-op on a sigmoid and is left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["IHDRNet"]

#: Affine colour transform per grid cell: 3 output channels × (3 inputs + 1 offset).
N_COEFFS = 12


class CentralDifferenceConv(nn.Module):
    """3×3 central-difference convolution (no bias) → BatchNorm → ReLU: ``conv(x) − θ·conv1×1(x, Σ kernel)``.

    The two terms could be folded into one kernel (the 1×1 term reads the centre tap's pixel), but
    summing them as the authors do keeps the outputs within float rounding of theirs.
    """

    def __init__(self, in_channels: int, out_channels: int, theta: float = 0.7) -> None:
        super().__init__()
        self.theta = theta
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.theta != 0.0:
            # Rows then columns, the authors' summation order: float sums in another order differ by an ulp.
            kernel = self.conv.weight.sum(dim=2).sum(dim=2)[:, :, None, None]
            out = out - self.theta * F.conv2d(x, kernel)
        return F.relu(self.bn(out))


class DoubledBlock(nn.Module):
    """The authors' ``ResNetBlock``: conv3×3 (1.5× wider) → BN → ReLU → conv3×3 → BN, doubled, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = int(channels * 1.5)
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + y)  # the authors' shortcut reads the block's own output (see the module docstring)


class GridSelfAttention(nn.Module):
    """SAGAN self-attention over the grid cells: ``γ · softmax(QKᵀ/√d) V + x`` (queries/keys C/8 wide)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape

        def tokens(t: torch.Tensor) -> torch.Tensor:  # (B, C', H, W) → (B, 1, H·W, C')
            return t.flatten(2).transpose(1, 2).unsqueeze(1)

        # Fused attention never holds the (H·W)² matrix: the grid of a 12-MP image has ~47k cells.
        out = F.scaled_dot_product_attention(tokens(self.query(x)), tokens(self.key(x)), tokens(self.value(x)))
        return self.gamma * out.squeeze(1).transpose(1, 2).reshape(b, c, h, w) + x


class BilateralCoefficients(nn.Module):
    """The low-resolution path: an affine-coefficient grid ``(B, 12, luma_bins, H/16, W/16)``."""

    def __init__(self, luma_bins: int = 16, channel_multiplier: int = 1, levels: int = 4, theta: float = 0.7) -> None:
        super().__init__()
        self.luma_bins = luma_bins
        widths = [channel_multiplier * luma_bins * 2**i for i in range(levels)]
        self.splat = nn.ModuleList(
            CentralDifferenceConv(c_in, c_out, theta) for c_in, c_out in zip([3, *widths[:-1]], widths, strict=True)
        )
        self.blocks = nn.Sequential(*(DoubledBlock(widths[-1]) for _ in range(3)))
        self.attention = GridSelfAttention(widths[-1])
        self.head = nn.Conv2d(widths[-1], luma_bins * N_COEFFS, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.splat:
            x = F.max_pool2d(conv(x), 2)
        x = self.head(self.attention(self.blocks(x)))
        b, _, h, w = x.shape
        # Channel ``bin·12 + k`` is coefficient k of luma bin ``bin``.
        return x.view(b, self.luma_bins, N_COEFFS, h, w).transpose(1, 2)


class GuideMap(nn.Module):
    """Per-pixel guide in (−1, 1): conv1×1 → BN → ReLU → conv1×1 → tanh; picks the grid's luma bin."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, hidden, 1)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv2(F.relu(self.bn1(self.conv1(x)))))


def slice_grid(grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Trilinear look-up of ``grid`` (B, 12, D, h, w) at every pixel: (B, 12, H, W).

    The pixel's row goes to ``grid_sample``'s x coordinate (the grid's width axis) and its column
    to y, as in the authors' code: their weights were trained with this order.
    """
    b, _, h, w = guide.shape
    rows = torch.arange(h, device=guide.device, dtype=guide.dtype) / (h - 1) * 2 - 1
    cols = torch.arange(w, device=guide.device, dtype=guide.dtype) / (w - 1) * 2 - 1
    coords = torch.stack(
        [rows.view(1, h, 1).expand(b, h, w), cols.view(1, 1, w).expand(b, h, w), guide[:, 0]], dim=-1
    )
    return F.grid_sample(grid, coords.unsqueeze(1), mode="bilinear", align_corners=True).squeeze(2)


def apply_affine(coeffs: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """``out_c = Σ_j a_cj · rgb_j + b_c`` per pixel, with ``coeffs`` (B, 12, H, W) as ``[a_c0..a_c2, b_c]``."""
    channels = [
        (rgb * coeffs[:, 4 * c : 4 * c + 3]).sum(dim=1, keepdim=True) + coeffs[:, 4 * c + 3 : 4 * c + 4]
        for c in range(3)
    ]
    return torch.cat(channels, dim=1)


class IHDRNet(nn.Module):
    """Improved HDRNet: maps an ImageNet-normalised image to a retouched 0–1 RGB image.

    Args:
        luma_bins: Depth of the bilateral grid (authors: 16).
        channel_multiplier: Width multiplier of the low-resolution path (authors: 1).
        levels: Conv + 2×2 max-pool stages; the grid has a cell per ``2**levels`` pixels (authors: 4,
            from ``net_input_size / spatial_bin = 256 / 16``).
        theta: Central-difference weight of the splat convolutions (authors: 0.7).

    Example:
        >>> retouched, guide = IHDRNet()(torch.randn(1, 3, 64, 64))
        >>> retouched.shape, guide.shape
        (torch.Size([1, 3, 64, 64]), torch.Size([1, 1, 64, 64]))
    """

    def __init__(self, luma_bins: int = 16, channel_multiplier: int = 1, levels: int = 4, theta: float = 0.7) -> None:
        super().__init__()
        self.coeffs = BilateralCoefficients(luma_bins, channel_multiplier, levels, theta)
        self.guide = GuideMap()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(retouched (B,3,H,W) in (0, 1), guide (B,1,H,W) in (−1, 1))``."""
        guide = self.guide(x)
        coeffs = slice_grid(self.coeffs(x), guide)
        # Constants, not buffers: a model built on the meta device and loaded with assign=True needs no fix-up.
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return torch.sigmoid(apply_affine(coeffs, x * std + mean)), guide
