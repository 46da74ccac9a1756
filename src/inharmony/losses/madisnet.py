"""MadisNet's training losses, as the authors' ``train.py`` computes them.

* :class:`LocalizationLoss`: ``BCE + λ_ssim·(1 − SSIM) + λ_iou·IoU`` on the mask and, with weight
  ``λ_attention``, on every attention map the model returns; the authors' script uses λ_ssim = 0,
  λ_iou = 1, λ_attention = 1 (``scripts/train.sh``).
* :class:`DomainEncoder`: ``E_dom``, the frozen first seven convolutions of ImageNet VGG16 (through
  timm, ``vgg16.tv_in1k``) as *partial* convolutions that see only one region (foreground or
  background), and three trainable 1×1 adaptors whose globally pooled outputs are mixed by learnt
  softmax-like weights into a 16-d domain code. It exists only in the loss.
* :class:`MadisNetLoss`: the localization loss plus the domain-discrepancy-magnification triplet
  loss: with codes ``z_f, z_b`` of the composite's foreground and background and ``z_mf, z_mb`` of
  iHDRNet's retouched image, ``λ_tri·relu(‖z_f − z_b‖² − ‖z_mf − z_mb‖² + m) + λ_reg·(1 − cos(z_f − z_b,
  z_mf − z_mb))`` averaged over the batch, λ_tri = λ_reg = 1e-3, m = 1e-3.

Restated from the authors' code where it matters for their weights: the composite enters E_dom
ImageNet-normalised and the retouched image in 0–1 (as their ``forward`` passes them), the partial
convolutions re-scale by the window's share of valid pixels, and the adaptor outputs are averaged
over *all* pixels (the zeros outside the region included).

Example:
    >>> loss = MadisNetLoss(vgg_weights=False)  # random VGG: for tests only
    >>> sorted(LocalizationLoss()({"mask": torch.full((1, 1, 16, 16), 0.5)}, torch.zeros(1, 1, 16, 16)))
    ['loss', 'loss_attention', 'loss_mask']
"""

from __future__ import annotations

import os

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import ensure_hub_file_available
from ._registry import register_loss
from .terms import bce_loss, iou_loss, ssim_loss

__all__ = ["DomainEncoder", "LocalizationLoss", "MadisNetLoss", "partial_conv2d", "triplet_losses"]

VGG_TAG = "vgg16.tv_in1k"
#: The VGG16 ``features`` indices of E_dom's seven convolutions, in three stages.
VGG_STAGES = ((0, 2), (5, 7), (10, 12, 14))


@register_loss("unet")  # the MadisNet/DIRL tables' UNet baseline: MadisNet's recipe without the triplet terms
class LocalizationLoss(nn.Module):
    """``mask_weight·ℓ(mask) + attention_weight·Σ ℓ(attention_i)`` with ``ℓ = BCE + ssim·(1−SSIM) + iou·IoU``.

    Args:
        mask_weight: λ_detection (authors: 1).
        attention_weight: λ_attention (authors: 1); maps are read from ``outputs["attention"]`` if present.
        ssim_weight: λ_ssim (authors' script: 0, so SSIM is not computed).
        iou_weight: λ_iou (authors: 1).
    """

    def __init__(
        self, mask_weight: float = 1.0, attention_weight: float = 1.0, ssim_weight: float = 0.0, iou_weight: float = 1.0
    ) -> None:
        super().__init__()
        self.mask_weight = float(mask_weight)
        self.attention_weight = float(attention_weight)
        self.ssim_weight = float(ssim_weight)
        self.iou_weight = float(iou_weight)

    def term(self, pred: Tensor, target: Tensor) -> Tensor:
        """``ℓ(pred, target)`` for one map."""
        loss = bce_loss(pred, target) + self.iou_weight * iou_loss(pred, target)
        if self.ssim_weight:
            loss = loss + self.ssim_weight * ssim_loss(pred, target)
        return loss

    def forward(self, outputs: dict, target: Tensor) -> dict[str, Tensor]:
        if "mask" not in outputs:
            raise KeyError(f"{type(self).__name__} needs outputs['mask']; the model returned {sorted(outputs)}")
        loss_mask = self.term(outputs["mask"], target)
        attention = outputs.get("attention") or []
        loss_attention = sum((self.term(a, target) for a in attention), torch.zeros_like(loss_mask))
        total = self.mask_weight * loss_mask + self.attention_weight * loss_attention
        return {"loss": total, "loss_mask": loss_mask.detach(), "loss_attention": loss_attention.detach()}


def partial_conv2d(
    x: Tensor, mask: Tensor, weight: Tensor, bias: Tensor | None, padding: int
) -> tuple[Tensor, Tensor]:
    """Partial convolution of ``x`` seen through a one-channel ``mask``: ``(output, updated mask)``.

    ``conv(x·mask)`` re-scaled by ``k² / (valid pixels in the window)``, zero where the window holds
    none (the bias re-added only there is some); the updated mask marks windows with a valid pixel.
    """
    k = weight.shape[-1]
    with torch.no_grad():
        valid = F.conv2d(mask, mask.new_ones(1, 1, k, k), padding=padding)
        ratio = (k * k) / (valid + 1e-8)
        updated = valid.clamp(0, 1)
        ratio = ratio * updated
    raw = F.conv2d(x * mask, weight, bias, padding=padding)
    if bias is None:
        return raw * ratio, updated
    b = bias.view(1, -1, 1, 1)
    return ((raw - b) * ratio + b) * updated, updated


class DomainEncoder(nn.Module):
    """E_dom: a region's domain code ``(B, style_dim, 1, 1)`` from frozen VGG16 features.

    Args:
        style_dim: Width of the code (authors: 16).
        vgg_weights: ``True``: ImageNet VGG16 through timm (``vgg16.tv_in1k``, downloaded once into the
            Hugging Face cache, failing within seconds offline); a path to a local copy of those
            weights; ``False``: random (tests only). The VGG weights are loaded at the first call and
            kept out of ``parameters()`` and ``state_dict()``: they are fixed.
    """

    def __init__(self, style_dim: int = 16, vgg_weights: bool | str = True) -> None:
        super().__init__()
        self.vgg_weights = vgg_weights
        widths = (64, 128, 256)
        self.adaptors = nn.ModuleList(nn.Conv2d(c, style_dim, 1, bias=False) for c in widths)
        self.weight = nn.Parameter(torch.ones(3))
        self._vgg: list[tuple[Tensor, Tensor]] | None = None

    def _frozen_convs(self, like: Tensor) -> list[tuple[Tensor, Tensor]]:
        if self._vgg is None:
            features = _vgg16(self.vgg_weights).features
            self._vgg = [(features[i].weight.detach(), features[i].bias.detach()) for s in VGG_STAGES for i in s]
        if self._vgg[0][0].device != like.device or self._vgg[0][0].dtype != like.dtype:
            self._vgg = [(w.to(like), b.to(like)) for w, b in self._vgg]
        return self._vgg

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        convs = iter(self._frozen_convs(image))
        x, m = image, mask
        pooled = []
        for stage in VGG_STAGES:
            for _ in stage:
                weight, bias = next(convs)
                x, m = partial_conv2d(x, m, weight, bias, padding=1)
                x = F.relu(x)
            x, m = F.max_pool2d(x, 2), F.max_pool2d(m, 2)
            pooled.append((x, m))
        w = torch.sigmoid(self.weight)
        w = w / (w.sum() + 1e-8)
        code = 0
        for i, ((feat, region), adaptor) in enumerate(zip(pooled, self.adaptors, strict=True)):
            adapted, _ = partial_conv2d(feat, region, adaptor.weight, None, padding=0)
            code = code + w[i] * adapted.mean(dim=(2, 3), keepdim=True)
        return code


def _vgg16(weights: bool | str) -> nn.Module:
    if weights is False or weights is None:
        return timm.create_model("vgg16", pretrained=False)
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"VGG16 weights file not found: {path}")
        return timm.create_model(VGG_TAG, pretrained=True, pretrained_cfg_overlay={"file": path})
    ensure_hub_file_available(
        f"timm/{VGG_TAG}",
        ("model.safetensors", "pytorch_model.bin"),
        offline_hint=(
            f"MadisNet's training loss needs ImageNet VGG16 ({VGG_TAG}) for its domain encoder; pass "
            "MadisNetLoss(vgg_weights='path/to/vgg16.safetensors') (a local copy of timm's weights)"
        ),
    )
    return timm.create_model(VGG_TAG, pretrained=True)


def triplet_losses(z_f: Tensor, z_b: Tensor, z_mf: Tensor, z_mb: Tensor, margin: float = 1e-3) -> dict[str, Tensor]:
    """The domain-discrepancy magnification (``ddm``) and direction (``reg``) terms of the authors' loss.

    Example:
        >>> z = torch.zeros(2, 16, 1, 1)
        >>> round(float(triplet_losses(z, z, z + 1, z)["ddm"]), 6)  # magnified: only the hinge's floor is left
        0.0
    """
    fb, mfmb = z_f - z_b, z_mf - z_mb
    input_distance = (fb**2).sum(dim=1, keepdim=True)
    magnified_distance = (mfmb**2).sum(dim=1, keepdim=True)
    cos = (fb * mfmb).sum(dim=1, keepdim=True) / (fb.norm(dim=1, keepdim=True) * mfmb.norm(dim=1, keepdim=True) + 1e-6)
    return {
        "ddm": F.relu(input_distance - magnified_distance + margin).mean(),
        "reg": (1 - cos).mean(),
    }


@register_loss("madisnet", "madisnet_unet")
class MadisNetLoss(LocalizationLoss):
    """MadisNet's loss: :class:`LocalizationLoss` + ``λ_tri·ddm + λ_reg·reg`` (see the module docstring).

    In training mode it reads ``outputs["composite"]`` (the network's input, which :class:`MadisNet`
    returns while training) and ``outputs["retouched"]``; in eval mode (validation) it computes the
    localization terms only: the triplet terms regularise training and score nothing.

    Args:
        triplet_weight: λ_tri (authors: 1e-3).
        direction_weight: λ_reg (authors: 1e-3).
        margin: m of the hinge (authors: 1e-3).
        style_dim: Width of the domain codes (authors: 16).
        vgg_weights: VGG16 weights of the domain encoder; see :class:`DomainEncoder`.
        **localization: Weights of :class:`LocalizationLoss`.
    """

    def __init__(
        self,
        triplet_weight: float = 1e-3,
        direction_weight: float = 1e-3,
        margin: float = 1e-3,
        style_dim: int = 16,
        vgg_weights: bool | str = True,
        **localization: float,
    ) -> None:
        super().__init__(**localization)
        self.triplet_weight = float(triplet_weight)
        self.direction_weight = float(direction_weight)
        self.margin = float(margin)
        self.domain_encoder = DomainEncoder(style_dim, vgg_weights)

    def forward(self, outputs: dict, target: Tensor) -> dict[str, Tensor]:
        losses = super().forward(outputs, target)
        if not self.training:
            return losses
        missing = [k for k in ("composite", "retouched") if k not in outputs]
        if missing:
            raise KeyError(
                f"MadisNetLoss needs outputs {missing} in training mode (MadisNet returns them while training); "
                f"the model returned {sorted(outputs)}"
            )
        mask = target.float()
        image, retouched = outputs["composite"], outputs["retouched"]
        with torch.autocast(device_type=image.device.type, enabled=False):
            codes = [self.domain_encoder(img.float(), m) for img in (image, retouched) for m in (mask, 1 - mask)]
        terms = triplet_losses(*codes, margin=self.margin)
        triplet = self.triplet_weight * terms["ddm"] + self.direction_weight * terms["reg"]
        losses["loss"] = losses["loss"] + triplet
        losses.update(loss_triplet=triplet.detach(), loss_ddm=terms["ddm"].detach(), loss_reg=terms["reg"].detach())
        return losses
