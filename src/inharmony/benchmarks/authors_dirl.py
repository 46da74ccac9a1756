"""The DIRL authors' training step, restated as a baseline for ``inharmony bench train`` (not a way to train).

Per batch, ``dirl_train.py`` of ``bcmi/DIRL-Inharmonious-Region-Localization`` does the following; this
module does the same on inharmony's DIRL network, whose computation equals theirs (``tests/test_dirl*.py``
compare it with a restatement of their forward):

* float32, contiguous (NCHW) tensors, no autocast;
* for the mask and for each attention map: ``nn.BCELoss`` + ``1 − SSIM`` (their ``pytorch_ssim``: an 11×11
  Gaussian window, σ = 1.5, kept between calls, and five grouped convolutions) + the IoU loss of their
  ``pytorch_iou`` (a Python loop over the images of the batch); the mask's and the maps' sums weighted 1
  and 1 (``lambda_detection``, ``lambda_attention``);
* backward, then ``torch.optim.Adam`` (their PyTorch had neither the ``foreach`` nor the ``fused``
  implementation: the per-parameter loop, ``foreach=False``), one optimizer for the encoder and one for the
  decoder (the same arithmetic as one over all parameters);
* the F1 of the batch's masks at 0.5 (their ``FScore``) and three ``.item()`` calls for the progress line.

Example:
    >>> import torch
    >>> from inharmony.models import create_model
    >>> model = create_model("dirl_resnet18").train()
    >>> step = authors_training_step(model, torch.randn(2, 3, 32, 32), torch.ones(2, 1, 32, 32).tril())
    >>> step() > 0
    True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses.terms import SSIM_C1, SSIM_C2, gaussian_window

__all__ = ["authors_training_step"]


def _ssim_five_convolutions(pred: Tensor, target: Tensor, window: Tensor) -> Tensor:
    pad = window.shape[-1] // 2
    channels = pred.shape[1]

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, window, padding=pad, groups=channels)

    mu_p, mu_t = blur(pred), blur(target)
    mu_pp, mu_tt, mu_pt = mu_p.pow(2), mu_t.pow(2), mu_p * mu_t
    var_p = blur(pred * pred) - mu_pp
    var_t = blur(target * target) - mu_tt
    cov = blur(pred * target) - mu_pt
    ssim_map = ((2 * mu_pt + SSIM_C1) * (2 * cov + SSIM_C2)) / ((mu_pp + mu_tt + SSIM_C1) * (var_p + var_t + SSIM_C2))
    return ssim_map.mean()


def _iou_loss_per_image_loop(pred: Tensor, target: Tensor) -> Tensor:
    total = pred.new_zeros(())
    for i in range(pred.shape[0]):
        inter = (target[i] * pred[i]).sum()
        union = target[i].sum() + pred[i].sum() - inter
        total = total + (1 - inter / union)
    return total / pred.shape[0]


def _batch_f1(pred: Tensor, target: Tensor, threshold: float = 0.5, eps: float = 1e-6) -> Tensor:
    ones, zeros = torch.ones_like(pred), torch.zeros_like(pred)
    binary = torch.where(pred > threshold, ones, zeros)
    truth = torch.where(target > threshold, ones, zeros)
    tp = (binary * truth).sum(dim=(1, 2, 3))
    precision = tp / (binary.sum(dim=(1, 2, 3)) + eps)
    recall = tp / (truth.sum(dim=(1, 2, 3)) + eps)
    return (2 * precision * recall / (precision + recall + eps)).mean()


def authors_training_step(
    model: nn.Module, image: Tensor, target: Tensor, lr: float = 1e-4
) -> Callable[[], float]:
    """A zero-argument training step of a DIRL ``model`` as the authors' script runs it; returns the loss.

    Args:
        model: A DIRL network (``outputs["mask"]`` and ``outputs["attention"]``), in train mode.
        image: The normalised ``(B, 3, H, W)`` batch.
        target: The ``(B, 1, H, W)`` ground-truth masks in {0, 1}.
        lr: Adam's learning rate (theirs: 1e-4).
    """
    parameters = list(model.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr, betas=(0.9, 0.999), foreach=False)
    window = gaussian_window(11, 1.5).to(image.device).expand(1, 1, 11, 11).contiguous()
    image = image.contiguous()
    meters = [0.0, 0.0, 0.0]  # their AverageMeters: detection loss, attention loss, F1

    def per_map(pred: Tensor) -> Tensor:
        bce = F.binary_cross_entropy(pred, target)
        return bce + (1 - _ssim_five_convolutions(pred, target, window)) + _iou_loss_per_image_loop(pred, target)

    def step() -> float:
        outputs = model(image)
        optimizer.zero_grad()
        detection = per_map(outputs["mask"])
        attention = sum((per_map(a) for a in outputs["attention"]), torch.zeros_like(detection))
        total = detection + attention
        total.backward()
        optimizer.step()
        # Their progress line's numbers, read every step: the two losses and the batch's F1.
        progress = (detection.item(), attention.item(), float(_batch_f1(outputs["mask"].detach(), target)))
        for i, value in enumerate(progress):
            meters[i] += value
        return total.item()

    return step
