"""An independent, functional re-statement of the authors' DIRL forward pass (eval mode).

It reads a state dict in the *official* key layout (``inconv.*``, ``encoder1..5.*``, ``trans.im*``,
``attention_layers.mda_*``, ``decoder_layers.deconv.decoder.d*``) and computes the network with
``torch.nn.functional`` only, so it shares no module code with ``inharmony.models.dirl``. The
tests compare the two: if the converter or the modules drift from the official computation,
the outputs differ.

Returns ``(mask, attention_maps)`` with the maps in the official order (coarsest level first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

State = dict[str, torch.Tensor]


def _conv(x: torch.Tensor, sd: State, prefix: str, stride: int = 1) -> torch.Tensor:
    weight = sd[prefix + "weight"]
    return F.conv2d(x, weight, sd.get(prefix + "bias"), stride=stride, padding=weight.shape[-1] // 2)


def _bn(x: torch.Tensor, sd: State, prefix: str) -> torch.Tensor:
    return F.batch_norm(
        x,
        sd[prefix + "running_mean"],
        sd[prefix + "running_var"],
        sd[prefix + "weight"],
        sd[prefix + "bias"],
        training=False,
        eps=1e-5,
    )


def _residual_stage(x: torch.Tensor, sd: State, prefix: str) -> torch.Tensor:
    index = 0
    while f"{prefix}{index}.conv1.weight" in sd:
        block = f"{prefix}{index}."
        has_projection = block + "downsample.0.weight" in sd
        stride = 2 if has_projection else 1  # ResNet34: only projecting blocks downsample
        out = F.relu(_bn(_conv(x, sd, block + "conv1.", stride), sd, block + "bn1."))
        out = _bn(_conv(out, sd, block + "conv2."), sd, block + "bn2.")
        if has_projection:
            shortcut = _bn(_conv(x, sd, block + "downsample.0.", stride), sd, block + "downsample.1.")
        else:
            shortcut = x
        x = F.relu(out + shortcut)
        index += 1
    return x


def _act_conv_norm(x: torch.Tensor, sd: State, prefix: str, stride: int = 1) -> torch.Tensor:
    return _bn(_conv(F.relu(x), sd, prefix + "conv.", stride), sd, prefix + "norm.")


def _nearest2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def _bilinear2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


def _fuse_pair(sd: State, p: str, low: torch.Tensor, high: torch.Tensor, keep_low: bool) -> torch.Tensor:
    td_low = low + _act_conv_norm(_nearest2(high), sd, p + "top_down.")
    bu_high = high + _act_conv_norm(low, sd, p + "bottom_up.", stride=2)
    cat_low = torch.cat([td_low, low], 1)
    cat_high = torch.cat([high, bu_high], 1)
    if keep_low:
        return _act_conv_norm(cat_low, sd, p + "l_concat.") + _act_conv_norm(
            _nearest2(cat_high), sd, p + "h_concat."
        )
    return _act_conv_norm(cat_low, sd, p + "l_concat.", stride=2) + _act_conv_norm(cat_high, sd, p + "h_concat.")


def _fuse_triple(sd: State, p: str, low: torch.Tensor, mid: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    h2m = _act_conv_norm(_nearest2(high), sd, p + "top_down_h2m.") + mid
    m2l = _act_conv_norm(_nearest2(h2m), sd, p + "top_down_m2l.") + low
    l2m = _act_conv_norm(low, sd, p + "bottom_up_l2m.", stride=2) + mid
    m2h = _act_conv_norm(l2m, sd, p + "bottom_up_m2h.", stride=2) + high
    return (
        _act_conv_norm(torch.cat([m2l, low], 1), sd, p + "l_concat.", stride=2)
        + _act_conv_norm(torch.cat([h2m, l2m], 1), sd, p + "m_concat.")
        + _act_conv_norm(_nearest2(torch.cat([high, m2h], 1)), sd, p + "h_concat.")
    )


def _mda(sd: State, p: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pooled = x.mean(dim=(2, 3))[:, None, :]
    channel_weight = torch.sigmoid(F.conv1d(pooled, sd[p + "ChannelGate.conv.weight"], padding=1))
    x_ca = x * channel_weight[:, 0, :, None, None]
    g = F.relu(_bn(_conv(x_ca, sd, p + "SpatialGate.spatial.0.conv."), sd, p + "SpatialGate.spatial.0.bn."))
    g = _bn(_conv(g, sd, p + "SpatialGate.spatial.1.conv."), sd, p + "SpatialGate.spatial.1.bn.")
    attention = torch.sigmoid(g)
    return x_ca * attention + x_ca, attention


def _conv_norm(x: torch.Tensor, sd: State, prefix: str) -> torch.Tensor:
    return _bn(_conv(x, sd, prefix + "conv."), sd, prefix + "norm.")


@torch.no_grad()
def official_dirl_forward(sd: State, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Eval-mode DIRL on ``x`` from an official-layout state dict ``sd``."""
    h = F.relu(_bn(_conv(x, sd, "inconv."), sd, "inbn."))
    h1 = _residual_stage(h, sd, "encoder1.")
    h2 = _residual_stage(h1, sd, "encoder2.")
    h3 = _residual_stage(h2, sd, "encoder3.")
    h4 = _residual_stage(h3, sd, "encoder4.")
    h5 = _residual_stage(F.max_pool2d(h4, 3, 2, 1), sd, "encoder5.")

    fused = [
        _fuse_pair(sd, "trans.im0.", h1, h2, keep_low=True),
        _fuse_triple(sd, "trans.im1.", h1, h2, h3),
        _fuse_triple(sd, "trans.im2.", h2, h3, h4),
        _fuse_triple(sd, "trans.im3.", h3, h4, h5),
        _fuse_pair(sd, "trans.im4.", h4, h5, keep_low=False),
    ]
    maps = []
    for level in range(4, -1, -1):
        fused[level], attention = _mda(sd, f"attention_layers.mda_{level}.", fused[level])
        maps.append(F.interpolate(attention, size=x.shape[-2:], mode="bilinear"))

    up = bottom = fused[4]
    for level, block in ((3, "d2."), (2, "d1."), (1, "d0.")):
        p = "decoder_layers.deconv.decoder." + block
        gated = _conv_norm(_bilinear2(up), sd, p + "conv_inup.") * fused[level]
        bottom = _conv_norm(_bilinear2(bottom), sd, p + "conv_inbottom.")
        up = _conv_norm(torch.cat([gated, bottom], 1), sd, p + "conv_cat.")
    head = "decoder_layers.deconv.decoder.d0.conv5."
    logits = F.conv2d(_bilinear2(up), sd[head + "weight"], sd[head + "bias"])
    return torch.sigmoid(logits), maps
