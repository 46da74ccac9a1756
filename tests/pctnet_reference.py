"""An independent re-statement of libcom's PCTNet forward pass (eval mode), in libcom's module layout.

libcom (``bcmi/libcom``: ``libcom/image_harmonization/source/pct_net.py`` and ``functions.py``) builds
``PCTNet(backbone_type="ViT", transform_type="linear", affine=True, clamp=True)`` with the identity input
normalisation. This file rebuilds the same module tree (so its state dict has libcom's keys:
``encoder.patch_to_embedding.1.*``, ``encoder.transformer_enc.layers.N.*``, ``encoder.dec.0.*``,
``get_params.*``), written plainly and sharing no code with ``inharmony.models``:

* ``ViT_Harmonizer``: ``Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)')`` (a reshape here; einops is
  not a dependency), ``Linear``, torch's own ``nn.TransformerEncoder`` of post-norm GELU layers on
  sequence-first tokens, ``ConvTranspose2d`` + ``Tanh``;
* ``get_params``: a 1×1 convolution;
* the forward takes ONE image, unbatched, in libcom's argument order ``(image, image_fullres, mask,
  mask_fullres)``, resizes the whole parameter map to full resolution at once (bicubic,
  ``align_corners=True``), applies ``Linear_PCT`` as libcom does (a per-pixel ``(3, 3) @ (3, 1)`` matmul
  plus the bias), clamps to [0, 1] and blends with the mask, and returns ``(3, H, W)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

IDENTITY_TRANSFORM = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


class Patches(nn.Module):
    """``Rearrange('b c (h p1) (w p2) -> b (h w) (p1 p2 c)')``."""

    def __init__(self, ksize: int) -> None:
        super().__init__()
        self.ksize = ksize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        p = self.ksize
        x = x.reshape(b, c, hh // p, p, ww // p, p)  # b c h p1 w p2
        return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (hh // p) * (ww // p), p * p * c)


class ViTHarmonizer(nn.Module):
    """libcom's ``ViT_Harmonizer(output_nc=12)``: ksize 4, 2 heads, 9 layers, dim 256, feed-forward 2×."""

    def __init__(self, output_nc: int = 12, ksize: int = 4, heads: int = 2, layers: int = 9, dim: int = 256) -> None:
        super().__init__()
        self.patch_to_embedding = nn.Sequential(Patches(ksize), nn.Linear(ksize * ksize * 4, dim))
        layer = nn.TransformerEncoderLayer(dim, nhead=heads, dim_feedforward=dim * 2, activation="gelu")
        self.transformer_enc = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.dec = nn.Sequential(nn.ConvTranspose2d(dim, output_nc, kernel_size=ksize, stride=ksize), nn.Tanh())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        patch_embedding = self.patch_to_embedding(inputs)
        content = self.transformer_enc(patch_embedding.permute(1, 0, 2))  # (L, B, C): sequence first
        bs, n, c = patch_embedding.size()
        side = int(math.sqrt(n))
        return self.dec(content.permute(1, 2, 0).reshape(bs, c, side, side))


def linear_pct(image: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """libcom's ``Linear_PCT(3, affine=True, 'linear')`` then clamp: ``(1, 3, H, W)``, ``(1, 12, H, W)``."""
    _, c, hh, ww = image.shape
    x = image[0].movedim(0, -1).reshape(-1, c).unsqueeze(2)  # (HW, 3, 1)
    m = param[0, 0:9].movedim(0, -1).reshape(-1, 3, 3)  # (HW, 3, 3)
    b = param[0, 9:12].movedim(0, -1).reshape(-1, 3).unsqueeze(2)
    y = torch.matmul(m, x) + b
    return torch.clamp(y.reshape(hh, ww, c).movedim(-1, 0).unsqueeze(0), 0, 1)


class LibcomPCTNet(nn.Module):
    """libcom's ``PCTNet()`` (ViT backbone, linear affine transform, clamp, RGB, identity normalisation)."""

    def __init__(self, layers: int = 9, dim: int = 256) -> None:
        super().__init__()
        self.encoder = ViTHarmonizer(output_nc=12, layers=layers, dim=dim)
        self.get_params = nn.Conv2d(12, 12, kernel_size=1)

    def params(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The low-resolution parameter map ``(1, 12, h, w)`` of ``(3, h, w)`` / ``(1, h, w)`` inputs."""
        return self.get_params(self.encoder(torch.cat((image.unsqueeze(0), mask.unsqueeze(0)), dim=1)))

    def forward(
        self, image: torch.Tensor, image_fullres: torch.Tensor, mask: torch.Tensor, mask_fullres: torch.Tensor
    ) -> torch.Tensor:
        params = self.params(image, mask)
        return full_resolution(image_fullres, mask_fullres, params)

    def forward_lowres(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """libcom's ``output_lowres`` (computed, not returned, by its forward)."""
        params = self.params(image, mask)
        img, m = image.unsqueeze(0), mask.unsqueeze(0)
        return (linear_pct(img, params) * m + img * (1 - m)).squeeze(0)


def full_resolution(image_fullres: torch.Tensor, mask_fullres: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """libcom's full-resolution branch, in one shot: ``(3, H, W)``, ``(1, H, W)``, ``(1, 12, h, w)`` → ``(3, H, W)``."""
    fr_img, fr_mask = image_fullres.unsqueeze(0), mask_fullres.unsqueeze(0)
    params_fullres = F.interpolate(params, size=fr_img.shape[-2:], mode="bicubic", align_corners=True)
    output = linear_pct(fr_img, params_fullres)
    return (output * fr_mask + fr_img * (1 - fr_mask)).squeeze()


def libcom_pctnet(seed: int = 0, layers: int = 9, dim: int = 256) -> LibcomPCTNet:
    """A :class:`LibcomPCTNet` in eval mode with seeded random weights that give a non-trivial transform.

    ``nn.TransformerEncoder`` deep-copies one layer, so every parameter is perturbed separately (the layers
    differ); ``get_params``' bias is the identity transform plus noise, so outputs stay in (0, 1) mostly.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = LibcomPCTNet(layers=layers, dim=dim)
    with torch.no_grad():
        for p in net.parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.ndim == 1:
                p.add_(0.1 * noise)
            else:
                p.mul_(1 + 0.5 * noise)
        net.get_params.weight.mul_(3.0)
        net.get_params.bias.copy_(torch.tensor(IDENTITY_TRANSFORM) + 0.1 * torch.randn(12, generator=gen))
    return net.eval()
