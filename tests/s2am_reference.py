"""A functional restatement of the S2AM authors' forward pass, over their state dict, in their key names.

Written from reading ``vinthony/s2am`` (``scripts/models/unet.py``: ``UnetGenerator``,
``UnetSkipConnectionBlock``, ``MinimalUnetV2``, ``MaskedMinimalUnetV2``; ``rasc.py``: ``RASC``;
``urasc.py``: ``MaskedURASC``; ``blocks.py``: ``GlobalAttentionModule``, ``SpatialAttentionModule``,
``BasicLearningBlock``, ``GaussianSmoothing``, ``ChannelPool``; ``backbone_unet.py``: ``rascv2``,
``maskedurasc``), independently of :mod:`inharmony.models.s2am`: plain functions that walk their
nested ``model.model.sub.model....`` keys recursively, as their modules nest. No code is copied.

* :func:`official_forward` runs ``rascv2`` (4-channel input: image + mask) or ``maskedurasc`` (3 channels)
  and returns what their network returns: the image, plus for ``maskedurasc`` the finest spatial
  attention upsampled ×2; it also returns every S2AM's mask so the other two levels can be compared.
* :func:`official_state_dict` builds a random state dict with exactly their keys and shapes
  (``gaussianMask.weight`` buffers and ``num_batches_tracked`` included), as
  ``torch.save({"state_dict": ...})`` in their ``save_checkpoint`` holds it.
* :func:`official_parameter_count`: the number of parameters of their network, from the same
  architecture description (buffers excluded).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

NGF = 64
REDUCTION = 16
ROOT = "model.model."
SUB = "sub.model."


# ------------------------------------------------------------------ the architecture, as their code builds it


def _levels(num_downs: int, ngf: int = NGF) -> list[dict]:
    """Their ``UnetGenerator(input_nc, 3, num_downs, ngf)``, one entry per nested block, outermost first.

    Each entry: ``outer`` / ``inner`` channels of ``UnetSkipConnectionBlock`` and its kind.
    """
    blocks = [dict(outer=3, inner=ngf, kind="outermost")]
    blocks.append(dict(outer=ngf, inner=2 * ngf, kind="attention"))
    blocks.append(dict(outer=2 * ngf, inner=4 * ngf, kind="attention"))
    blocks.append(dict(outer=4 * ngf, inner=8 * ngf, kind="attention"))
    blocks += [dict(outer=8 * ngf, inner=8 * ngf, kind="middle") for _ in range(num_downs - 5)]
    blocks.append(dict(outer=8 * ngf, inner=8 * ngf, kind="innermost"))
    return blocks


def official_shapes(variant: str, num_downs: int = 8, ngf: int = NGF) -> dict[str, tuple[int, ...]]:
    """Every key of their state dict (``rascv2`` or ``maskedurasc``) with its shape."""
    input_nc = 4 if variant == "rascv2" else 3
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[prefix + name] = (c,)
        shapes[prefix + "num_batches_tracked"] = ()

    def gate(prefix: str, c: int) -> None:
        shapes[prefix + "fc.0.weight"] = (c // REDUCTION, 2 * c)
        shapes[prefix + "fc.0.bias"] = (c // REDUCTION,)
        shapes[prefix + "fc.2.weight"] = (c, c // REDUCTION)
        shapes[prefix + "fc.2.bias"] = (c,)

    for depth, block in enumerate(_levels(num_downs, ngf)):
        p = ROOT + SUB * depth
        outer, inner = block["outer"], block["inner"]
        if block["kind"] == "outermost":
            shapes[p + "down.0.weight"] = (inner, input_nc, 4, 4)
            shapes[p + "up.1.weight"] = (2 * inner, outer, 4, 4)
            shapes[p + "up.1.bias"] = (outer,)
            continue
        shapes[p + "down.1.weight"] = (inner, outer, 4, 4)
        if block["kind"] != "innermost":
            bn(p + "down.2.", inner)
        up_in = inner if block["kind"] == "innermost" else 2 * inner
        shapes[p + "up.1.weight"] = (up_in, outer, 4, 4)
        bn(p + "up.2.", outer)
        if block["kind"] == "attention":
            c = 2 * outer  # MinimalUnetV2: the attention sees the concatenation (input_nc * 2)
            a = p + "attention."
            shapes[a + "connection.rconv1.weight"] = (2 * c, c, 3, 3)
            bn(a + "connection.rbn1.", 2 * c)
            shapes[a + "connection.rconv2.weight"] = (c, 2 * c, 3, 3)
            bn(a + "connection.rbn2.", c)
            for g in ("background_attention.", "mixed_attention.", "spliced_attention."):
                gate(a + g, c)
            if variant == "rascv2":
                shapes[a + "gaussianMask.weight"] = (1, 1, 5, 5)
            else:
                shapes[a + "mask_attention.fc.0.weight"] = (REDUCTION, 2, 7, 7)
                shapes[a + "mask_attention.fc.0.bias"] = (REDUCTION,)
                shapes[a + "mask_attention.fc.2.weight"] = (1, REDUCTION, 7, 7)
                shapes[a + "mask_attention.fc.2.bias"] = (1,)
    return shapes


def gaussian_kernel() -> torch.Tensor:
    """Their ``GaussianSmoothing(1, 5, 1)`` buffer: ``exp(-((x - mean) / (2·std))²) / (std·√(2π))`` per axis."""
    coords = torch.arange(5, dtype=torch.float32)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    kernel = torch.ones(5, 5)
    for grid in (ys, xs):
        kernel = kernel * (1 / (1 * math.sqrt(2 * math.pi)) * torch.exp(-(((grid - 2.0) / (2 * 1)) ** 2)))
    return (kernel / kernel.sum()).view(1, 1, 5, 5)


def official_state_dict(
    variant: str = "rascv2", num_downs: int = 8, seed: int = 0, ngf: int = NGF
) -> dict[str, torch.Tensor]:
    """A random state dict with exactly the keys and shapes of the authors' ``rascv2`` / ``maskedurasc``.

    Weights are scaled so activations stay O(1) through the UNet; BN running statistics are random
    (positive variances) so eval-mode BN is not the identity.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in official_shapes(variant, num_downs, ngf).items():
        if key.endswith("gaussianMask.weight"):
            out[key] = gaussian_kernel()
        elif key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith("running_mean"):
            out[key] = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:  # BN affine and conv / linear biases
            base = 1.0 if key.endswith("weight") else 0.0
            out[key] = base + 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = shape[0] * math.prod(shape[2:]) if ".up.1." in key else math.prod(shape[1:])
            out[key] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in)
    return out


def official_parameter_count(variant: str = "rascv2", num_downs: int = 8) -> int:
    """Parameters of the authors' network (buffers: BN statistics and the Gaussian kernel excluded)."""
    return sum(
        math.prod(shape)
        for key, shape in official_shapes(variant, num_downs).items()
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked", "gaussianMask.weight"))
    )


# ------------------------------------------------------------------ their forward, as functions


def _bn(sd: dict, p: str, x: torch.Tensor, training: bool) -> torch.Tensor:
    return F.batch_norm(
        x,
        sd[p + "running_mean"].clone(),
        sd[p + "running_var"].clone(),
        sd[p + "weight"],
        sd[p + "bias"],
        training=training,
        momentum=0.1,
        eps=1e-5,
    )


def _global_attention(sd: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    """``GlobalAttentionModule``: AdaptiveAvgPool2d(1) and AdaptiveMaxPool2d(1), concatenated, fc, sigmoid."""
    b, c = x.shape[:2]
    y1 = F.adaptive_avg_pool2d(x, 1).view(b, c)
    y2 = F.adaptive_max_pool2d(x, 1).view(b, c)
    y = F.linear(torch.cat([y1, y2], 1), sd[p + "fc.0.weight"], sd[p + "fc.0.bias"])
    y = torch.sigmoid(F.linear(F.relu(y), sd[p + "fc.2.weight"], sd[p + "fc.2.bias"]))
    return x * y.view(b, c, 1, 1)


def _learning_block(sd: dict, p: str, x: torch.Tensor, training: bool) -> torch.Tensor:
    """``BasicLearningBlock``: elu(bn2(rconv2(elu(bn1(rconv1(x))))))."""
    h = F.elu(_bn(sd, p + "rbn1.", F.conv2d(x, sd[p + "rconv1.weight"], padding=1), training))
    return F.elu(_bn(sd, p + "rbn2.", F.conv2d(h, sd[p + "rconv2.weight"], padding=1), training))


def _channel_pool(x: torch.Tensor, kind: str) -> torch.Tensor:
    """``ChannelPool``: (n, c, w, h) → view (n, c, w·h) → permute → 1-D pool over c → (n, 1, w, h)."""
    n, c, w, h = x.shape
    seq = x.reshape(n, c, w * h).permute(0, 2, 1)
    pooled = F.adaptive_avg_pool1d(seq, 1) if kind == "avg" else F.adaptive_max_pool1d(seq, 1)
    return pooled.reshape(n, 1, w, h)


def _spatial_attention(sd: dict, p: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``SpatialAttentionModule``: returns ``(y, 1 - y)``."""
    y = torch.cat([_channel_pool(x, "avg"), _channel_pool(x, "max")], 1)
    y = F.relu(F.conv2d(y, sd[p + "fc.0.weight"], sd[p + "fc.0.bias"], padding=3))
    y = torch.sigmoid(F.conv2d(y, sd[p + "fc.2.weight"], sd[p + "fc.2.bias"], padding=3))
    return y, 1 - y


def _rasc(sd: dict, p: str, feature: torch.Tensor, mask: torch.Tensor, training: bool):
    """``RASC.forward``: returns the feature and (for comparison only) the smoothed mask it used."""
    w, mw = feature.shape[2], mask.shape[2]
    if w != mw:
        mask = torch.round(F.avg_pool2d(mask, 2, stride=mw // w))
    reverse_mask = -1 * (mask - 1)
    kernel = sd[p + "gaussianMask.weight"]
    mask = F.conv2d(F.pad(mask, (2, 2, 2, 2), mode="reflect"), kernel, groups=1)
    reverse_mask = F.conv2d(F.pad(reverse_mask, (2, 2, 2, 2), mode="reflect"), kernel, groups=1)
    background = _global_attention(sd, p + "background_attention.", feature) * reverse_mask
    selected = _global_attention(sd, p + "mixed_attention.", feature)
    spliced_feature = _global_attention(sd, p + "spliced_attention.", feature)
    spliced = (_learning_block(sd, p + "connection.", spliced_feature, training) + selected) * mask
    return background + spliced, mask


def _masked_urasc(sd: dict, p: str, feature: torch.Tensor, training: bool):
    """``MaskedURASC.forward``: the feature and the spatial attention standing in for the mask."""
    mask, reverse_mask = _spatial_attention(sd, p + "mask_attention.", feature)
    background = _global_attention(sd, p + "background_attention.", feature) * reverse_mask
    selected = _global_attention(sd, p + "mixed_attention.", feature)
    spliced_feature = _global_attention(sd, p + "spliced_attention.", feature)
    spliced = (_learning_block(sd, p + "connection.", spliced_feature, training) + selected) * mask
    return background + spliced, mask


def _block(sd, blocks, depth, x, mask, variant, training, masks):
    """One ``UnetSkipConnectionBlock`` (``MinimalUnetV2`` / ``MaskedMinimalUnetV2``), recursing into ``sub``."""
    p = ROOT + SUB * depth
    kind = blocks[depth]["kind"]
    if kind == "outermost":
        down = F.conv2d(x, sd[p + "down.0.weight"], stride=2, padding=1)
        x_up = _block(sd, blocks, depth + 1, down, mask, variant, training, masks)
        return F.conv_transpose2d(F.relu(x_up), sd[p + "up.1.weight"], sd[p + "up.1.bias"], stride=2, padding=1)
    # down = [LeakyReLU(0.2, inplace=True), conv, (BN)]: the in-place activation rewrites x itself, so the
    # concatenation below reads the activated tensor.
    x = F.leaky_relu(x, 0.2)
    down = F.conv2d(x, sd[p + "down.1.weight"], stride=2, padding=1)
    if kind == "innermost":
        x_up = down
    else:
        x_up = _block(sd, blocks, depth + 1, _bn(sd, p + "down.2.", down, training), mask, variant, training, masks)
    up = _bn(sd, p + "up.2.", F.conv_transpose2d(F.relu(x_up), sd[p + "up.1.weight"], stride=2, padding=1), training)
    joined = torch.cat([x, up], 1)
    if kind != "attention":
        return joined
    if variant == "rascv2":
        out, level_mask = _rasc(sd, p + "attention.", joined, mask, training)
    else:
        out, level_mask = _masked_urasc(sd, p + "attention.", joined, training)
    masks.append(level_mask)
    return out


def official_forward(
    sd: dict[str, torch.Tensor], inputs: torch.Tensor, training: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
    """Their network's forward on ``inputs`` (``(B, 4, H, W)`` image + mask in [0, 1], or ``(B, 3, H, W)``).

    Returns:
        ``(image, mask, level_masks)``: the output image; for ``maskedurasc`` the finest attention
        upsampled ×2 (bilinear, ``align_corners=True``; what their network returns), else ``None``;
        the mask of every S2AM, finest first (for ``rascv2`` the smoothed given mask). ``training``
        uses batch statistics in every BN (running statistics are not updated).
    """
    variant = "rascv2" if any(k.endswith("gaussianMask.weight") for k in sd) else "maskedurasc"
    num_downs = max(k.count(SUB) for k in sd) + 1
    blocks = _levels(num_downs, sd[ROOT + "down.0.weight"].shape[0])
    # UnetGenerator.forward: with input_nc != output_nc the whole 4-channel input enters; else its first 3.
    x = inputs if variant == "rascv2" else inputs[:, 0:3]
    masks: list[torch.Tensor] = []
    image = _block(sd, blocks, 0, x, inputs[:, 3:4], variant, training, masks)
    masks.reverse()  # the recursion appends on the way back up: coarsest first
    if variant == "rascv2":
        return image, None, masks
    mask = F.interpolate(masks[0], scale_factor=2, mode="bilinear", align_corners=True)
    return image, mask, masks
