"""An independent, functional re-statement of libcom's harmony score (BargainNet's ``StyleEncoder``, eval mode).

libcom (``bcmi/libcom``: ``libcom/harmony_score/source/bargainnet.py``, ``harmony_score_prediction.py``)
builds ``StyleEncoder(style_dim=16)``: ``conv1f`` (PartialConv2d 3→64, bias) → ReLU → ``conv2f`` (64→128, no
bias) → ``norm2f`` (BatchNorm) → ReLU → ``conv3f``/``norm3f`` (256) → ReLU → ``conv4f``/``norm4f`` (512) →
ReLU → ``conv5f`` (512) → global average pool → ``convs`` (1×1, 512→16) → squeeze; every convolution 3×3,
stride 2, no padding. Its ``PartialConv2d`` (one mask channel) convolves ``x · mask``, rescales by
``9 / (window sum of mask + 1e-8)`` times the clamped window sum (and, with a bias, keeps the bias out of
the rescaling and multiplies by the clamped sum again), and passes the clamped window sum on as the next
mask. The score is ``exp(-0.04212 · ‖s_bg − s_fg‖₂)``, the distance in numpy float32.

This file computes that with ``torch.nn.functional`` on a state dict in libcom's key names, one image
(unbatched) and one region at a time, sharing no code with ``inharmony.models``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F

State = dict[str, torch.Tensor]
CHANNELS = [3, 64, 128, 256, 512, 512]


def libcom_state_dict(seed: int = 0, style_dim: int = 16) -> State:
    """A seeded random state dict with the keys and shapes of libcom's ``StyleEncoder(style_dim)``."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    sd: State = {}
    for i, (cin, cout) in enumerate(itertools.pairwise(CHANNELS), start=1):
        sd[f"conv{i}f.weight"] = randn(cout, cin, 3, 3) * math.sqrt(2.0 / (cin * 9))
        if i == 1:
            sd["conv1f.bias"] = 0.1 * randn(cout)
        if 2 <= i <= 4:
            sd[f"norm{i}f.weight"] = 1 + 0.2 * randn(cout)
            sd[f"norm{i}f.bias"] = 0.2 * randn(cout)
            sd[f"norm{i}f.running_mean"] = 0.3 * randn(cout)
            sd[f"norm{i}f.running_var"] = 0.5 + torch.rand(cout, generator=gen)
            sd[f"norm{i}f.num_batches_tracked"] = torch.tensor(1000)
    sd["convs.weight"] = randn(style_dim, CHANNELS[-1], 1, 1) * math.sqrt(1.0 / CHANNELS[-1])
    sd["convs.bias"] = 0.1 * randn(style_dim)
    return sd


def partial_conv(sd: State, name: str, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """libcom's ``PartialConv2d.forward(x, mask)`` (stride 2, no padding, one mask channel)."""
    weight_mask_updater = torch.ones(1, 1, 3, 3)
    slide_winsize = 1 * 3 * 3
    update_mask = F.conv2d(mask, weight_mask_updater, bias=None, stride=2, padding=0)
    mask_ratio = slide_winsize / (update_mask + 1e-8)
    update_mask = torch.clamp(update_mask, 0, 1)
    mask_ratio = torch.mul(mask_ratio, update_mask)
    raw_out = F.conv2d(torch.mul(x, mask), sd[f"{name}.weight"], None, stride=2, padding=0)
    bias = sd.get(f"{name}.bias")
    if bias is not None:
        raw_out = raw_out + bias.view(1, -1, 1, 1)  # nn.Conv2d adds it; libcom takes it out again
        bias_view = bias.view(1, -1, 1, 1)
        output = torch.mul(raw_out - bias_view, mask_ratio) + bias_view
        output = torch.mul(output, update_mask)
    else:
        output = torch.mul(raw_out, mask_ratio)
    return output, update_mask


def batch_norm(sd: State, name: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(
        x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"], sd[f"{name}.bias"],
        training=False, eps=1e-5,
    )  # fmt: skip


def style_encoder(sd: State, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """libcom's ``StyleEncoder.forward``: ``(3, H, W)`` normalised image, ``(1, H, W)`` mask → ``(style_dim,)``."""
    xb, mb = image.unsqueeze(0), mask.unsqueeze(0)
    xb, mb = partial_conv(sd, "conv1f", xb, mb)
    xb = F.relu(xb)
    for i in (2, 3, 4):
        xb, mb = partial_conv(sd, f"conv{i}f", xb, mb)
        xb = F.relu(batch_norm(sd, f"norm{i}f", xb))
    xb, mb = partial_conv(sd, "conv5f", xb, mb)
    xb = F.adaptive_avg_pool2d(xb, 1)
    s = F.conv2d(xb, sd["convs.weight"], sd["convs.bias"])
    return torch.squeeze(s)


def harmony_score(sd: State, image: torch.Tensor, fg_mask: torch.Tensor) -> tuple[float, float]:
    """libcom's ``HarmonyScoreModel`` after its preprocessing: ``(score, distance)`` of one composite."""
    bg_mask = 1 - fg_mask
    bg_style = style_encoder(sd, image, bg_mask)
    fg_style = style_encoder(sd, image, fg_mask)
    vec1, vec2 = bg_style.cpu().numpy(), fg_style.cpu().numpy()
    dist = float(np.sqrt(np.sum((vec1 - vec2) ** 2)))
    return math.exp(-0.04212 * dist), dist
