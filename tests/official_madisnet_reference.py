"""An independent, functional re-statement of the authors' MadisNet forward pass (eval mode).

It reads state dicts in the *authors'* key layout (``networks/iHDRNet.py``: ``coeffs.splat_features.*``,
``coeffs.res_blks.*``, ``coeffs.sa.*``, ``guide.conv1.conv.*``; ``networks/DIRL.py``: ``encoder.inconv.*``,
``decoder.trans.im*``; ``networks/UNet.py``: ``in_conv.*``, ``downs.d*``, ``ups.u*``) and computes the
networks with ``torch.nn.functional`` only, sharing no module code with ``inharmony.models``. The
DIRL localizer reuses the functional DIRL blocks of ``official_dirl_reference`` (the same
computation in both releases); only the attention maps' resizing differs (``align_corners=True``).

The authors' quirks are restated as they are: the residual blocks of iHDRNet add their output to
itself, the bilateral grid is sliced with (row, column) as grid_sample's (x, y), the UNet resizes its
logits to ``x.shape[2:][::-1]``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from official_dirl_reference import _bilinear2, _bn, _conv, _conv_norm, _fuse_pair, _fuse_triple, _mda, _residual_stage

State = dict[str, torch.Tensor]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _channels(x: torch.Tensor, values: tuple[float, float, float]) -> torch.Tensor:
    out = torch.zeros_like(x)
    for i, v in enumerate(values):
        out[:, i] = v
    return out


# ---------------------------------------------------------------------- iHDRNet


def _cdc(x: torch.Tensor, sd: State, prefix: str, theta: float = 0.7) -> torch.Tensor:
    weight = sd[prefix + "conv.weight"]
    normal = F.conv2d(x, weight, padding=1)
    diff = F.conv2d(x, weight.sum(2).sum(2)[:, :, None, None])
    return F.relu(_bn(normal - theta * diff, sd, prefix + "bn."))


def _res_blk(x: torch.Tensor, sd: State, prefix: str) -> torch.Tensor:
    y = F.relu(_bn(F.conv2d(x, sd[prefix + "conv1.weight"], padding=1), sd, prefix + "bn1."))
    y = _bn(F.conv2d(y, sd[prefix + "conv2.weight"], padding=1), sd, prefix + "bn2.")
    res = y  # the authors' ``res = self.adapt(x)`` reads x after it was overwritten; adapt is the identity
    return F.relu(res + y)


def _self_attention(x: torch.Tensor, sd: State, prefix: str) -> torch.Tensor:
    b, c, hh, ww = x.shape
    q = F.conv2d(x, sd[prefix + "query_conv.weight"], sd[prefix + "query_conv.bias"]).view(b, -1, hh * ww)
    k = F.conv2d(x, sd[prefix + "key_conv.weight"], sd[prefix + "key_conv.bias"]).view(b, -1, hh * ww)
    v = F.conv2d(x, sd[prefix + "value_conv.weight"], sd[prefix + "value_conv.bias"]).view(b, -1, hh * ww)
    energy = torch.bmm(q.permute(0, 2, 1), k)
    attention = torch.softmax(energy / np.sqrt(q.shape[1]), dim=-1)
    out = torch.bmm(v, attention.permute(0, 2, 1)).view(b, c, hh, ww)
    return sd[prefix + "gamma"] * out + x


@torch.no_grad()
def official_ihdrnet_forward(sd: State, x: torch.Tensor, luma_bins: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``(retouched, guide)`` of the authors' ``HDRPointwiseNN(x, x)`` from an official-layout state dict."""
    h = x
    index = 0
    while f"coeffs.splat_features.{index}.conv.weight" in sd:
        h = F.max_pool2d(_cdc(h, sd, f"coeffs.splat_features.{index}."), 2, 2, 0)
        index += 2
    for i in range(3):
        h = _res_blk(h, sd, f"coeffs.res_blks.{i}.")
    h = _self_attention(h, sd, "coeffs.sa.")
    h = F.conv2d(h, sd["coeffs.conv_out.conv.weight"], sd["coeffs.conv_out.conv.bias"])
    grid = torch.stack(torch.split(h, 12, 1), 2)  # (B, 12, luma, gh, gw)
    assert grid.shape[2] == luma_bins

    guide = F.conv2d(x, sd["guide.conv1.conv.weight"], sd["guide.conv1.conv.bias"])
    guide = F.relu(_bn(guide, sd, "guide.conv1.norm."))
    guide = torch.tanh(F.conv2d(guide, sd["guide.conv2.conv.weight"], sd["guide.conv2.conv.bias"]))

    n, _, hh, ww = guide.shape
    hg, wg = torch.meshgrid(torch.arange(0, hh), torch.arange(0, ww), indexing="ij")
    hg = hg.float().repeat(n, 1, 1).unsqueeze(3) / (hh - 1) * 2 - 1
    wg = wg.float().repeat(n, 1, 1).unsqueeze(3) / (ww - 1) * 2 - 1
    coords = torch.cat([hg, wg, guide.permute(0, 2, 3, 1).contiguous()], dim=3).unsqueeze(1)
    coeff = F.grid_sample(grid, coords, "bilinear", align_corners=True).squeeze(2)

    rgb = x * _channels(x, STD) + _channels(x, MEAN)
    out = torch.cat(
        [
            torch.sum(rgb * coeff[:, 4 * c : 4 * c + 3], dim=1, keepdim=True) + coeff[:, 4 * c + 3 : 4 * c + 4]
            for c in range(3)
        ],
        dim=1,
    ).sigmoid()
    low = [(0 - m) / s for m, s in zip(MEAN, STD, strict=True)]
    high = [(1 - m) / s for m, s in zip(MEAN, STD, strict=True)]
    clipped = torch.stack([out[:, i].clamp(low[i], high[i]) for i in range(3)], dim=1)
    return clipped, guide


# ---------------------------------------------------------------------- localizers


@torch.no_grad()
def official_madis_dirl_forward(sd: State, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The authors' ``DIRLNet(x)["mask"]`` split as ``(mask, maps)``, maps coarsest first (their order)."""
    e = {k.removeprefix("encoder."): v for k, v in sd.items() if k.startswith("encoder.")}
    d = {k.removeprefix("decoder."): v for k, v in sd.items() if k.startswith("decoder.")}
    h = F.relu(_bn(_conv(x, e, "inconv."), e, "inbn."))
    h1 = _residual_stage(h, e, "encoder1.")
    h2 = _residual_stage(h1, e, "encoder2.")
    h3 = _residual_stage(h2, e, "encoder3.")
    h4 = _residual_stage(h3, e, "encoder4.")
    h5 = _residual_stage(F.max_pool2d(h4, 3, 2, 1), e, "encoder5.")
    fused = [
        _fuse_pair(d, "trans.im0.", h1, h2, keep_low=True),
        _fuse_triple(d, "trans.im1.", h1, h2, h3),
        _fuse_triple(d, "trans.im2.", h2, h3, h4),
        _fuse_triple(d, "trans.im3.", h3, h4, h5),
        _fuse_pair(d, "trans.im4.", h4, h5, keep_low=False),
    ]
    maps = []
    for level in range(4, -1, -1):
        fused[level], attention = _mda(d, f"attention_layers.mda_{level}.", fused[level])
        maps.append(F.interpolate(attention, size=tuple(fused[0].shape[2:]), mode="bilinear", align_corners=True))
    up = bottom = fused[4]
    for level, block in ((3, "d2."), (2, "d1."), (1, "d0.")):
        p = "decoder_layers.deconv.decoder." + block
        gated = _conv_norm(_bilinear2(up), d, p + "conv_inup.") * fused[level]
        bottom = _conv_norm(_bilinear2(bottom), d, p + "conv_inbottom.")
        up = _conv_norm(torch.cat([gated, bottom], 1), d, p + "conv_cat.")
    head = "decoder_layers.deconv.decoder.d0.conv5."
    return torch.sigmoid(F.conv2d(_bilinear2(up), d[head + "weight"], d[head + "bias"])), maps


def _double_conv(x: torch.Tensor, sd: State, prefix: str) -> torch.Tensor:
    x = F.relu(_bn(F.conv2d(x, sd[prefix + "0.weight"], sd[prefix + "0.bias"], padding=1), sd, prefix + "1."))
    return F.relu(_bn(F.conv2d(x, sd[prefix + "3.weight"], sd[prefix + "3.bias"], padding=1), sd, prefix + "4."))


@torch.no_grad()
def official_unet_forward(sd: State, x: torch.Tensor) -> torch.Tensor:
    """The authors' ``UNet(in_ch=3, n_downs=5)(x)["mask"][0]`` (resized to ``x.shape[2:][::-1]``, as they do)."""
    h = F.relu(_bn(F.conv2d(x, sd["in_conv.0.weight"], padding=1), sd, "in_conv.1."))
    skips = []
    for i in range(4):
        h = _residual_stage(h, sd, f"downs.d{i}.")
        skips.append(h)
    h = F.max_pool2d(h, 3, 2, 1)
    for j in (1, 2, 3):
        block = f"downs.d4.{j}."
        out = F.relu(_bn(F.conv2d(h, sd[block + "conv1.weight"], padding=1), sd, block + "bn1."))
        h = F.relu(_bn(F.conv2d(out, sd[block + "conv2.weight"], padding=1), sd, block + "bn2.") + h)
    skips.append(h)
    h = _double_conv(h, sd, "bottleneck.double_conv.")
    for i in range(4, -1, -1):
        p = f"ups.u{i}."
        if i == 4:
            h = F.conv2d(h, sd[p + "up.weight"], sd[p + "up.bias"], padding=1)
        else:
            h = F.conv2d(_bilinear2(h), sd[p + "up.1.weight"], sd[p + "up.1.bias"], padding=1)
        h = _double_conv(torch.cat([h, skips[i]], dim=1), sd, p + "conv.double_conv.")
    logits = F.conv2d(h, sd["out_conv.0.weight"], sd["out_conv.0.bias"])
    logits = F.interpolate(logits, x.shape[2:][::-1], mode="bilinear", align_corners=True)
    return logits.sigmoid()


@torch.no_grad()
def official_madisnet_forward(g: State, ihdrnet: State, x: torch.Tensor, localizer: str = "dirl") -> dict:
    """The authors' MadisNet test-time forward: ``g(ihdrnet(x, x)[0])`` from their two state dicts."""
    retouched, guide = official_ihdrnet_forward(ihdrnet, x)
    if localizer == "dirl":
        mask, maps = official_madis_dirl_forward(g, retouched)
        return {"mask": mask, "attention": maps, "retouched": retouched, "guide": guide}
    return {"mask": official_unet_forward(g, retouched), "retouched": retouched, "guide": guide}
