"""Losses of DIRL and RSRNet: BCE + SSIM + IoU (the ℓ of both papers) and each model's recipe.

Every loss takes probabilities ``pred`` (B, 1, H, W) in [0, 1] and a mask ``target`` of the same
shape, and is computed in float32 with autocast disabled (BCE is unsafe under autocast and the
SSIM variances cancel catastrophically in half precision).

* :func:`bce_loss`: mean binary cross-entropy (``nn.BCELoss``).
* :func:`ssim_loss`: ``1 − SSIM`` with an 11×11 Gaussian window (σ = 1.5), C1 = 0.01², C2 = 0.03²,
  zero padding of half the window, per channel, averaged over the whole map (as pytorch_ssim,
  which the authors use).
* :func:`iou_loss`: per image ``1 − Σpt / (Σp + Σt − Σpt)``, averaged over the batch.
* :func:`structure_loss`: their sum.

Example:
    >>> import torch
    >>> from inharmony.losses import structure_loss
    >>> target = torch.zeros(2, 1, 32, 32)
    >>> target[:, :, 8:24, 8:24] = 1
    >>> round(float(structure_loss(target, target)), 6)  # a perfect mask
    0.0
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DIRLLoss",
    "MaskLoss",
    "RSRNetLoss",
    "bce_loss",
    "gaussian_window",
    "iou_loss",
    "loss_for_model",
    "rsr_iteration_weights",
    "ssim",
    "ssim_loss",
    "structure_loss",
]

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


@contextlib.contextmanager
def _float32(pred: Tensor) -> Iterator[None]:
    with torch.autocast(device_type=pred.device.type, enabled=False):
        yield


def _check_pair(pred: Tensor, target: Tensor, name: str) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: pred and target must have the same shape, got pred {tuple(pred.shape)} and target "
            f"{tuple(target.shape)}"
        )
    if pred.ndim != 4:
        raise ValueError(f"{name}: expected (B, C, H, W) tensors, got shape {tuple(pred.shape)}")
    return pred.float(), target.float()


def bce_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean binary cross-entropy of probabilities (``nn.BCELoss()``), in float32.

    Example:
        >>> round(float(bce_loss(torch.full((1, 1, 2, 2), 0.5), torch.ones(1, 1, 2, 2))), 4)
        0.6931
    """
    with _float32(pred):
        pred, target = _check_pair(pred, target, "bce_loss")
        return F.binary_cross_entropy(pred, target)


@functools.lru_cache(maxsize=16)
def _window_cpu(window_size: int, sigma: float) -> Tensor:
    x = torch.arange(window_size, dtype=torch.float64) - window_size // 2
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).float()


def gaussian_window(window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Normalised 2-D Gaussian window ``(window_size, window_size)`` (float32, sums to 1).

    Example:
        >>> w = gaussian_window()
        >>> w.shape, round(float(w.sum()), 6)
        (torch.Size([11, 11]), 1.0)
    """
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd number, got {window_size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    return _window_cpu(int(window_size), float(sigma)).clone()


def ssim(pred: Tensor, target: Tensor, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean structural similarity of two ``(B, C, H, W)`` batches (zero-padded Gaussian window).

    Example:
        >>> x = torch.rand(1, 1, 16, 16)
        >>> round(float(ssim(x, x)), 6)
        1.0
    """
    with _float32(pred):
        pred, target = _check_pair(pred, target, "ssim")
        channels = pred.shape[1]
        # The five blurred maps come from one depthwise convolution over their stack: the same
        # per-channel arithmetic as five calls, but a single-channel 11×11 convolution falls on a slow
        # oneDNN path (its backward especially): fwd+bwd at (8, 1, 32, 32) 8.4 → 1.2 ms, at
        # (8, 1, 224, 224) 425 → 64 ms on the 2-core CPU.
        stack = torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1)
        window = gaussian_window(window_size, sigma).to(pred.device)
        window = window.expand(stack.shape[1], 1, window_size, window_size).contiguous()
        blurred = F.conv2d(stack, window, padding=window_size // 2, groups=stack.shape[1])
        mu_p, mu_t, blur_pp, blur_tt, blur_pt = blurred.split(channels, dim=1)
        mu_pp, mu_tt, mu_pt = mu_p * mu_p, mu_t * mu_t, mu_p * mu_t
        var_p = blur_pp - mu_pp
        var_t = blur_tt - mu_tt
        cov = blur_pt - mu_pt
        ssim_map = ((2 * mu_pt + SSIM_C1) * (2 * cov + SSIM_C2)) / (
            (mu_pp + mu_tt + SSIM_C1) * (var_p + var_t + SSIM_C2)
        )
        return ssim_map.mean()


def ssim_loss(pred: Tensor, target: Tensor, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """``1 − SSIM(pred, target)``; 0 for identical inputs.

    Example:
        >>> x = torch.rand(2, 1, 16, 16)
        >>> abs(float(ssim_loss(x, x))) < 1e-6
        True
    """
    return 1.0 - ssim(pred, target, window_size, sigma)


def iou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Soft IoU loss: mean over images of ``1 − Σpt / (Σp + Σt − Σpt)``.

    An image where prediction and target are both all zero has a perfect (0) loss instead of the
    0/0 of the plain formula.

    Example:
        >>> pred = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]]])
        >>> target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
        >>> round(float(iou_loss(pred, target)), 4)  # 1 - 1.5 / (1.5 + 2 - 1.5)
        0.25
    """
    with _float32(pred):
        pred, target = _check_pair(pred, target, "iou_loss")
        inter = (pred * target).flatten(1).sum(dim=1)
        union = pred.flatten(1).sum(dim=1) + target.flatten(1).sum(dim=1) - inter
        per_image = torch.where(union > 0, 1.0 - inter / union.clamp_min(1e-12), torch.zeros_like(union))
        return per_image.mean()


def structure_loss(pred: Tensor, target: Tensor) -> Tensor:
    """ℓ = BCE + SSIM loss + IoU loss, the per-mask loss of both papers.

    Example:
        >>> x = torch.rand(1, 1, 16, 16)
        >>> bool(structure_loss(x, x) > 0)  # BCE of a soft target is its entropy
        True
    """
    return bce_loss(pred, target) + ssim_loss(pred, target) + iou_loss(pred, target)


def _maps(outputs: dict, key: str, owner: str) -> list[Tensor]:
    if key not in outputs:
        raise KeyError(f"{owner} needs outputs[{key!r}]; the model returned keys {sorted(outputs)}")
    maps = outputs[key]
    return [maps] if isinstance(maps, Tensor) else list(maps)


class MaskLoss(nn.Module):
    """ℓ = BCE + SSIM + IoU (:func:`structure_loss`) on ``outputs["mask"]`` alone: the loss of a plain localizer.

    Example:
        >>> target = torch.zeros(1, 1, 16, 16)
        >>> sorted(MaskLoss()({"mask": torch.full_like(target, 0.5)}, target))
        ['loss']
    """

    def forward(self, outputs: dict, target: Tensor) -> dict[str, Tensor]:
        return {"loss": structure_loss(_maps(outputs, "mask", "MaskLoss")[0], target)}


class DIRLLoss(nn.Module):
    """DIRL's training loss (official code): ℓ(mask) and ℓ of every MDA attention map.

    ``loss = mask_weight · ℓ(mask) + attention_weight · Σ_i ℓ(attention_i)``, with ℓ =
    :func:`structure_loss`; the official recipe uses weights 1 and 1.

    Args:
        mask_weight: weight of the final mask's loss (``lambda_detection``).
        attention_weight: weight of the summed attention-map losses (``lambda_attention``).

    Example:
        >>> target = torch.zeros(1, 1, 16, 16)
        >>> outputs = {"mask": torch.full_like(target, 0.5), "attention": [torch.full_like(target, 0.5)] * 5}
        >>> sorted(DIRLLoss()(outputs, target))
        ['loss', 'loss_attention', 'loss_mask']
    """

    def __init__(self, mask_weight: float = 1.0, attention_weight: float = 1.0) -> None:
        super().__init__()
        self.mask_weight = float(mask_weight)
        self.attention_weight = float(attention_weight)

    def forward(self, outputs: dict, target: Tensor) -> dict[str, Tensor]:
        loss_mask = structure_loss(_maps(outputs, "mask", "DIRLLoss")[0], target)
        attention = _maps(outputs, "attention", "DIRLLoss")
        loss_attention = sum((structure_loss(a, target) for a in attention), torch.zeros_like(loss_mask))
        total = self.mask_weight * loss_mask + self.attention_weight * loss_attention
        return {"loss": total, "loss_mask": loss_mask.detach(), "loss_attention": loss_attention.detach()}


def rsr_iteration_weights(num_iterations: int, decay: float = 0.8) -> list[float]:
    """Weights ``decay^(K−k)`` of the RSR masks k = 1..K (RSRNet eq. 3): the last mask weighs 1.

    Example:
        >>> [round(w, 2) for w in rsr_iteration_weights(3, 0.8)]
        [0.64, 0.8, 1.0]
    """
    if num_iterations < 0:
        raise ValueError(f"num_iterations must be >= 0, got {num_iterations}")
    return [float(decay) ** (num_iterations - k) for k in range(1, num_iterations + 1)]


class RSRNetLoss(nn.Module):
    """RSRNet's loss (§3.4, eq. 3): ``final_weight · ℓ(M_fnl) + Σ_k decay^(K−k) ℓ(M̄^k)``.

    Uses ``outputs["mask"]`` (M_fnl) and ``outputs["rsr_masks"]`` (the K upsampled RSR masks, in
    iteration order); ℓ = :func:`structure_loss`.

    Args:
        decay: λ of eq. 3 (0.8 in the paper).
        final_weight: weight of the final mask's loss (1 in the paper).

    Example:
        >>> target = torch.zeros(1, 1, 16, 16)
        >>> outputs = {"mask": torch.full_like(target, 0.5), "rsr_masks": [torch.full_like(target, 0.5)] * 3}
        >>> sorted(RSRNetLoss()(outputs, target))
        ['loss', 'loss_final', 'loss_rsr']
    """

    def __init__(self, decay: float = 0.8, final_weight: float = 1.0) -> None:
        super().__init__()
        self.decay = float(decay)
        self.final_weight = float(final_weight)

    def forward(self, outputs: dict, target: Tensor) -> dict[str, Tensor]:
        loss_final = structure_loss(_maps(outputs, "mask", "RSRNetLoss")[0], target)
        masks: Sequence[Tensor] = _maps(outputs, "rsr_masks", "RSRNetLoss")
        weights = rsr_iteration_weights(len(masks), self.decay)
        loss_rsr = sum(
            (w * structure_loss(m, target) for w, m in zip(weights, masks, strict=True)),
            torch.zeros_like(loss_final),
        )
        total = self.final_weight * loss_final + loss_rsr
        return {"loss": total, "loss_final": loss_final.detach(), "loss_rsr": loss_rsr.detach()}


def loss_for_model(name: str, **kwargs: Any) -> nn.Module:
    """The default loss recipe of a registered model, as its registry entry names it (``default_loss``).

    Args:
        name: Registered model name (``"dirl"``, ``"rsrnet.ihd_le50"``, ...).
        **kwargs: Constructor arguments of that loss class, e.g. ``decay=0.9`` for
            :class:`RSRNetLoss` or ``vgg_weights=False`` to build MadisNet's loss offline.

    Example:
        >>> type(loss_for_model("dirl_resnet18")).__name__
        'DIRLLoss'
        >>> loss_for_model("rsrnet", decay=0.5).decay
        0.5
    """
    from ..errors import UnknownModelError
    from ..models import get_pretrained_cfg  # the registry: the one place that says which loss a model trains with

    try:
        cfg = get_pretrained_cfg(name)
    except UnknownModelError as err:
        raise UnknownModelError(f"no default loss for {name!r}: {err}. Pass a loss module explicitly.") from err
    if not cfg.default_loss:
        raise ValueError(f"model {name!r} registers no default loss (PretrainedCfg.default_loss); pass a loss module")
    module_name, _, class_name = cfg.default_loss.rpartition(".")
    loss_class = getattr(importlib.import_module(module_name), class_name, None)
    if loss_class is None:
        raise ValueError(f"the default loss of {name!r}, {cfg.default_loss!r}, does not exist")
    return loss_class(**kwargs)
