"""The per-mask terms both papers' losses are built from: BCE + SSIM + IoU (their ℓ), and the plain mask loss.

Every term takes probabilities ``pred`` (B, 1, H, W) in [0, 1] and a mask ``target`` of the same
shape, and is computed in float32 with autocast disabled (BCE is unsafe under autocast and the
SSIM variances cancel catastrophically in half precision).

* :func:`bce_loss`: mean binary cross-entropy (``nn.BCELoss``).
* :func:`ssim_loss`: ``1 − SSIM`` with an 11×11 Gaussian window (σ = 1.5), C1 = 0.01², C2 = 0.03²,
  zero padding of half the window, per channel, averaged over the whole map (as pytorch_ssim,
  which the authors use).
* :func:`iou_loss`: per image ``1 − Σpt / (Σp + Σt − Σpt)``, averaged over the batch.
* :func:`structure_loss`: their sum.
* :class:`MaskLoss`: :func:`structure_loss` on a model's ``"mask"`` output, the loss of a plain localizer.

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
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MaskLoss",
    "bce_loss",
    "gaussian_window",
    "iou_loss",
    "output_maps",
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


def output_maps(outputs: dict, key: str, owner: str) -> list[Tensor]:
    """``outputs[key]`` as a list of maps (a single tensor becomes a list of one), or a ``KeyError`` naming ``owner``.

    Example:
        >>> len(output_maps({"attention": [torch.zeros(1, 1, 2, 2)] * 3}, "attention", "MyLoss"))
        3
    """
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
        return {"loss": structure_loss(output_maps(outputs, "mask", "MaskLoss")[0], target)}
