"""PCT-Net: full-resolution image harmonization with pixel-wise colour transforms (Guerreiro et al., CVPR 2023).

A small ViT sees a low-resolution copy (256×256 for the published weights) of the composite and of its
foreground mask and predicts, for every low-resolution pixel, the 12 parameters of an affine colour
transform (a 3×3 matrix ``M`` and a bias ``b``). The parameter map is upsampled (bicubic,
``align_corners=True``) to the photo's own size and applied there, so the output keeps every pixel of
the input: ``clamp(M x + b, 0, 1) · mask + x · (1 − mask)``.

This module computes what libcom's ``PCTNet`` (``libcom/image_harmonization/source/pct_net.py``, the
``ViT`` backbone and ``linear`` transform of ``rakutentech/PCT-Net-Image-Harmonization``) computes, so its
released ``PCTNet.pth``, converted by :func:`checkpoint_filter_fn`, gives the same outputs. Differences,
none of which changes a number beyond float rounding:

* the ViT's patch embedding (libcom: ``Rearrange`` into 64-vectors, then ``Linear``) is a 4×4, stride-4
  convolution, and its post-norm encoder layers are written out (libcom: ``nn.TransformerEncoder``);
* batches of any size (libcom: one image);
* the full-resolution transform runs in horizontal bands, in float32, so a 12-MP photo needs tens of MB
  beyond its input and output instead of libcom's several full-size float copies;
* the low-resolution inputs are made inside when not given, by bilinear resizing of the float image
  (libcom resizes the 8-bit photo with OpenCV's ``INTER_LINEAR``, the same filter, then rounds).

Parameters: 4,809,896 (the same as libcom's).

The published weights are libcom's copy on the Hugging Face Hub (``BCMIZB/Libcom_pretrained_models``,
``PCTNet.pth``, Apache-2.0).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ._hub import HubMixin
from ._registry import Bound, PretrainedCfg, register_model
from .madisnet import LIBCOM_REPO

__all__ = [
    "LIBCOM_FILE",
    "PCTNet",
    "apply_color_transform",
    "checkpoint_filter_fn",
    "pctnet",
]

PCTNET_PAPER = (
    "Julian Jorge Andrade Guerreiro, Mitsuru Nakazawa, Björn Stenger. PCT-Net: Full Resolution Image "
    "Harmonization Using Pixel-Wise Color Transformations. CVPR 2023."
)
PCTNET_PAPER_URL = (
    "https://openaccess.thecvf.com/content/CVPR2023/papers/Guerreiro_PCT-Net_Full_Resolution_Image_Harmonization_"
    "Using_Pixel-Wise_Color_Transformations_CVPR_2023_paper.pdf"
)
#: libcom's file in :data:`~inharmony.models.madisnet.LIBCOM_REPO`.
LIBCOM_FILE = "PCTNet.pth"
NUM_PARAMS = 12  # a 3×3 matrix, row-major, then a bias of 3
BAND_PIXELS = 1 << 20
"""Pixels (over the batch) of one band of the full-resolution transform: ~50 MB of float32 parameters."""


class PostNormBlock(nn.Module):
    """``nn.TransformerEncoderLayer`` (post-norm, GELU) with batch-first tokens, written out.

    ``x = norm1(x + attn(x))``, then ``x = norm2(x + fc2(gelu(fc1(x))))``; dropout in training mode
    where PyTorch's layer has it (attention weights, after the attention, inside and after the MLP).
    """

    def __init__(self, dim: int, num_heads: int, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        drop = self.dropout if self.training else 0.0
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        attended = self.proj(attended.transpose(1, 2).reshape(b, n, c))
        x = self.norm1(x + F.dropout(attended, drop, self.training))
        hidden = F.dropout(F.gelu(self.fc1(x)), drop, self.training)
        return self.norm2(x + F.dropout(self.fc2(hidden), drop, self.training))


class PCTNet(HubMixin, nn.Module):
    """PCT-Net (ViT backbone, affine transform): composite + mask → harmonized composite at full resolution.

    Args:
        embed_dim: Width of the ViT's tokens.
        depth: Number of encoder layers.
        num_heads: Attention heads.
        mlp_ratio: Hidden width of the MLP over ``embed_dim``.
        patch_size: Side of the ViT's patches (and of the transposed-convolution head's upsampling).
        lowres_size: Side of the square low-resolution copy made when ``image_lr`` is not given (256 for the
            published weights).
        dropout: Dropout of the encoder layers in training mode (PyTorch's default, as in libcom).
        band_pixels: Pixels (over the batch) of one band of the full-resolution transform; a memory bound
            that leaves the result unchanged.

    ``forward(image, mask, image_lr=None, mask_lr=None)``: ``image`` ``(B, 3, H, W)`` RGB in [0, 1] (not
    normalised) at any size (or uint8 in 0-255: the full-resolution output is then uint8, rounded, and no
    full-size float copy is made), ``mask`` ``(B, 1, H, W)`` in [0, 1], 1 on the foreground to harmonize;
    ``image_lr``/``mask_lr`` the low-resolution copies (``(B, 3, h, w)``/``(B, 1, h, w)``, ``h`` and ``w``
    multiples of ``patch_size``), made by bilinear resizing to ``lowres_size`` when not given.

    Returns:
        ``{"image": (B, 3, H, W), "image_lr": (B, 3, h, w)}``: the harmonized composite at full and at low
        resolution, in [0, 1] on the foreground, the input elsewhere (blended where the mask is soft).

    Example:
        >>> model = PCTNet(depth=1, lowres_size=32).eval()
        >>> image, mask = torch.rand(1, 3, 45, 70), torch.zeros(1, 1, 45, 70)
        >>> out = model(image, mask)
        >>> out["image"].shape, torch.equal(out["image"], image)  # an empty mask changes nothing
        (torch.Size([1, 3, 45, 70]), True)
    """

    def __init__(
        self,
        embed_dim: int = 256,
        depth: int = 9,
        num_heads: int = 2,
        mlp_ratio: int = 2,
        patch_size: int = 4,
        lowres_size: int = 256,
        dropout: float = 0.1,
        band_pixels: int = BAND_PIXELS,
    ) -> None:
        super().__init__()
        if lowres_size % patch_size:
            raise ValueError(f"lowres_size {lowres_size} is not a multiple of patch_size {patch_size}")
        if band_pixels < 1:
            raise ValueError(f"band_pixels must be positive, got {band_pixels}")
        self.patch_size = patch_size
        self.lowres_size = lowres_size
        self.band_pixels = band_pixels
        self.patch_embed = nn.Conv2d(4, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.blocks = nn.ModuleList(
            PostNormBlock(embed_dim, num_heads, embed_dim * mlp_ratio, dropout) for _ in range(depth)
        )
        self.head = nn.ConvTranspose2d(embed_dim, NUM_PARAMS, kernel_size=patch_size, stride=patch_size)
        self.to_params = nn.Conv2d(NUM_PARAMS, NUM_PARAMS, kernel_size=1)

    def predict_params(self, image_lr: torch.Tensor, mask_lr: torch.Tensor) -> torch.Tensor:
        """The colour-transform parameters ``(B, 12, h, w)`` of the low-resolution composite."""
        x = self.patch_embed(torch.cat([image_lr, mask_lr], dim=1))
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # row-major patches, as libcom's "(h w)"
        for block in self.blocks:
            tokens = block(tokens)
        x = tokens.transpose(1, 2).reshape(b, c, h, w)
        return self.to_params(torch.tanh(self.head(x)))

    def forward(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        image_lr: torch.Tensor | None = None,
        mask_lr: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        _check_pair(image, mask, "image", "mask", bytes_ok=True)
        size = (self.lowres_size, self.lowres_size)
        if image_lr is None:
            small = image.float() / 255.0 if image.dtype == torch.uint8 else image
            image_lr = F.interpolate(small, size=size, mode="bilinear", align_corners=False)
        if mask_lr is None:
            mask_lr = F.interpolate(mask.to(image_lr.dtype), size=image_lr.shape[-2:], mode="bilinear")
        _check_pair(image_lr, mask_lr, "image_lr", "mask_lr")
        _check_lowres(image_lr, image.shape[0], self.patch_size)
        params = self.predict_params(image_lr, mask_lr.to(image_lr.dtype))
        return {
            "image": apply_color_transform(image, mask, params, self.band_pixels),
            "image_lr": apply_color_transform(image_lr, mask_lr, params, self.band_pixels),
        }


def apply_color_transform(
    image: torch.Tensor, mask: torch.Tensor, params: torch.Tensor, band_pixels: int = BAND_PIXELS
) -> torch.Tensor:
    """``clamp(M x + b, 0, 1) · mask + x · (1 − mask)`` at ``image``'s size, band by band, in float32.

    The parameter map is resized to ``image``'s size as libcom resizes it (bicubic, ``align_corners=True``):
    along the height once for the whole image (12 × H × w values: small), then along the width one band of
    rows at a time, so no full-size copy of the 12 parameters (or of the image in float64) is ever made.
    Only the box around the region (``mask > 0``) is computed; elsewhere the output is the input.

    Args:
        image: ``(B, 3, H, W)`` RGB in [0, 1], or uint8 in 0-255 (read band by band; the output is then
            uint8 too, rounded: a 12-MP photo needs no full-size float copy at all).
        mask: ``(B, 1, H, W)`` in [0, 1].
        params: ``(B, 12, h, w)``: per pixel, ``M`` row-major (``M[i, j] = params[3 i + j]``), then ``b``.
        band_pixels: Pixels (over the batch) computed at once.

    Returns:
        ``(B, 3, H, W)`` in ``image``'s dtype.

    Example:
        >>> identity = torch.tensor([1.0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]).view(1, 12, 1, 1).expand(1, 12, 4, 4)
        >>> image = torch.rand(1, 3, 9, 7)
        >>> torch.allclose(apply_color_transform(image, torch.ones(1, 1, 9, 7), identity), image)
        True
    """
    b, _, h, w = image.shape
    as_bytes = image.dtype == torch.uint8
    # Only the box around the region is computed: outside it mask = 0 and the output is the input, exactly.
    out = image.clone()
    if image.device.type == "meta" or torch.compiler.is_compiling() or torch.jit.is_tracing():
        top0, bottom0, left, right = 0, h, 0, w  # no data to look at: the whole image (same result)
    else:
        inside = (mask[:, 0] > 0).any(dim=0)
        rows_in, cols_in = inside.any(dim=1).nonzero(), inside.any(dim=0).nonzero()
        if not len(rows_in):
            return out
        top0, bottom0 = int(rows_in[0]), int(rows_in[-1]) + 1
        left, right = int(cols_in[0]), int(cols_in[-1]) + 1
    # Resizing along one axis to its own size is an exact copy: this is the 2-D resize, split.
    columns = F.interpolate(params.float(), size=(h, params.shape[-1]), mode="bicubic", align_corners=True)
    # The width pass is linear: a matmul with the resize of the identity (each row: one input column's
    # weights at every output column). upsample_bicubic2d would compute 16 taps per value where 4 differ
    # from zero; the matmul is several times faster on a 12-MP photo and equal to float rounding.
    widen = _resize_matrix(params.shape[-1], w, columns.device)[:, left:right]
    by_row = columns.permute(2, 0, 1, 3).contiguous()  # (h, B, 12, w): a band is one (rows·B·12, w) matrix
    width = right - left
    rows = max(1, band_pixels // (b * width))
    for top in range(top0, bottom0, rows):
        bottom = min(bottom0, top + rows)
        p = torch.mm(by_row[top:bottom].flatten(0, 2), widen).view(bottom - top, b, NUM_PARAMS, width)
        x = image[:, :, top:bottom, left:right].permute(2, 0, 1, 3).float()  # (rows, B, 3, W), like p
        if as_bytes:
            x = x.div_(255.0)
        m = mask[:, :, top:bottom, left:right].permute(2, 0, 1, 3).float()
        y = p[:, :, 9:].clone()  # b, then += M[i, j] x_j: no (rows, B, 3, 3, W) temporary
        for j in range(3):
            y.addcmul_(p[:, :, j:9:3], x[:, :, j : j + 1])
        y = torch.lerp(x, y.clamp_(0, 1), m)
        if as_bytes:
            y = y.mul_(255.0).round_().clamp_(0.0, 255.0)
        out[:, :, top:bottom, left:right] = y.permute(1, 2, 0, 3).to(out.dtype)
    return out


def _resize_matrix(size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
    """``(size_in, size_out)``: row ``k`` is the bicubic (``align_corners=True``) resize of the ``k``-th unit vector."""
    identity = torch.eye(size_in, device=device).view(1, size_in, 1, size_in)
    return F.interpolate(identity, size=(1, size_out), mode="bicubic", align_corners=True).view(size_in, size_out)


def _check_pair(image: object, mask: object, image_name: str, mask_name: str, bytes_ok: bool = False) -> None:
    """Raise a clear error unless ``image`` is a float ``(B, 3, H, W)`` (or uint8 with ``bytes_ok``) and ``mask``
    a ``(B, 1, H, W)`` float tensor."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    for name, value, channels in ((image_name, image, 3), (mask_name, mask, 1)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"{name} must be a float tensor of shape (B, {channels}, H, W), got {type(value).__name__}; for "
                "photos (paths, PIL images, uint8 arrays) use the harmonization pipeline, which prepares them"
            )
        if value.ndim != 4 or value.shape[1] != channels:
            raise ValueError(f"{name} must have shape (B, {channels}, H, W), got {tuple(value.shape)}")
        if not value.is_floating_point() and not (bytes_ok and value is image and value.dtype == torch.uint8):
            wanted = "a float tensor in [0, 1]" + (" or a uint8 tensor" if bytes_ok and value is image else "")
            raise ValueError(f"{name} must be {wanted}, got dtype {value.dtype}")
    expected = (image.shape[0], 1, *image.shape[-2:])  # type: ignore[union-attr]
    if tuple(mask.shape) != expected:  # type: ignore[union-attr]
        raise ValueError(
            f"{mask_name} must have shape {expected} (one channel, the batch and size of {image_name}), "
            f"got {tuple(mask.shape)}"  # type: ignore[union-attr]
        )


def _check_lowres(image_lr: torch.Tensor, batch: int, patch_size: int) -> None:
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    h, w = image_lr.shape[-2:]
    if image_lr.shape[0] != batch:
        raise ValueError(f"image_lr holds {image_lr.shape[0]} images, image {batch}")
    if h % patch_size or w % patch_size:
        raise ValueError(f"the low-resolution input is {h}×{w}; its sides must be multiples of {patch_size}")


# ---------------------------------------------------------------------- libcom's key layout

_LIBCOM_PREFIXES = ("module.", "model.")
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        (r"^encoder\.patch_to_embedding\.1\.(weight|bias)$", r"patch_embed.\1"),
        (r"^encoder\.transformer_enc\.layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$", r"blocks.\1.qkv.\2"),
        (r"^encoder\.transformer_enc\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)$", r"blocks.\1.proj.\2"),
        (r"^encoder\.transformer_enc\.layers\.(\d+)\.linear([12])\.(weight|bias)$", r"blocks.\1.fc\2.\3"),
        (r"^encoder\.transformer_enc\.layers\.(\d+)\.(norm[12])\.(weight|bias)$", r"blocks.\1.\2.\3"),
        (r"^encoder\.dec\.0\.(weight|bias)$", r"head.\1"),
        (r"^get_params\.(weight|bias)$", r"to_params.\1"),
    ]
]


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: PCTNet) -> dict[str, torch.Tensor]:
    """libcom's ``PCTNet.pth`` state dict → :class:`PCTNet`'s (as timm's ``checkpoint_filter_fn``).

    A ``{"state_dict": ...}`` wrapper and ``module.``/``model.`` prefixes are removed; keys are renamed
    (``encoder.transformer_enc.layers.N.self_attn.in_proj_weight`` → ``blocks.N.qkv.weight``, ...) and the
    patch embedding's ``Linear`` weight over libcom's ``(p1 p2 c)`` vectors becomes a convolution kernel.
    Keys no rule knows, and tensors of shapes that cannot be reshaped, are passed through unchanged, so
    that :func:`~inharmony.models.load_state_dict_strict` names them (with the missing ones).

    Args:
        state_dict: libcom's state dict, as ``read_state_dict`` returns it.
        model: The model to fill (for the patch size and the shapes).

    Returns:
        The state dict to load into ``model``.

    Example:
        >>> model = PCTNet(depth=1)
        >>> theirs = {"encoder.patch_to_embedding.1.weight": torch.zeros(256, 64), "get_params.bias": torch.zeros(12)}
        >>> sorted(checkpoint_filter_fn(theirs, model))
        ['patch_embed.weight', 'to_params.bias']
    """
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for prefix in _LIBCOM_PREFIXES:
            key = key.removeprefix(prefix)
        for pattern, replacement in _RULES:
            if pattern.match(key):
                key = pattern.sub(replacement, key)
                break
        if key == "patch_embed.weight" and value.ndim == 2:
            out_ch, in_ch, ph, pw = model.patch_embed.weight.shape
            if value.shape == (out_ch, ph * pw * in_ch):  # (o, (p1 p2 c)) → (o, c, p1, p2)
                value = value.reshape(out_ch, ph, pw, in_ch).permute(0, 3, 1, 2).contiguous()
        out[key] = value
    return out


# ---------------------------------------------------------------------- registration

# Sane values of the constructor arguments: a saved config.json or a command line outside them is refused.
ARG_BOUNDS = {
    "embed_dim": Bound(1, 4096),
    "depth": Bound(1, 64),
    "num_heads": Bound(1, 64),
    "mlp_ratio": Bound(1, 16),
    "patch_size": Bound(1, 64),
    "lowres_size": Bound(1, 2048),
    "dropout": Bound(0.0, 1.0),
    "band_pixels": Bound(1, 1 << 26),
}


@register_model(
    pretrained_cfgs=[
        PretrainedCfg(
            "pctnet",
            tag="libcom",
            hf_hub_id=LIBCOM_REPO,
            weights_format="harmony-libcom",  # libcom's PCTNet.pth, converted when loaded
            revision=None,
            input_size=(3, 256, 256),
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            paper=PCTNET_PAPER,
            paper_url=PCTNET_PAPER_URL,
            license="apache-2.0",
            size_multiple=1,
            task="harmonization",
            # The authors' own evaluation of PCT-Net ViT (rakutentech/PCT-Net-Image-Harmonization,
            # evaluation/evaluation.ipynb): iHarmony4 test, all four subsets, full resolution (HAdobe5k
            # resized to at most 1024 px), 8-bit MSE and fMSE, PSNR in dB.
            metrics={"mse": 18.84, "psnr": 39.29, "fmse": 237.49},
            notes=(
                "Weights: PCT-Net (ViT, affine transform) as the libcom toolbox publishes them (PCTNet.pth; "
                "repository tagged Apache-2.0), trained on iHarmony4. Composite RGB in [0, 1] (not normalised) + "
                "foreground mask, at any size: the network sees a 256x256 copy, the colour transform is applied "
                "at full resolution. Reference scores: the authors' evaluation on the iHarmony4 test set at "
                "full resolution (HAdobe5k at most 1024 px)."
            ),
        )
    ],
    arg_bounds=ARG_BOUNDS,
)
def pctnet(**kwargs) -> PCTNet:
    """PCT-Net with the ViT backbone, as libcom builds it: composite + mask → harmonized image at any size."""
    return PCTNet(**kwargs)
