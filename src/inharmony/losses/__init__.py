"""Training losses: the shared BCE/SSIM/IoU terms, one module per paper family, and which loss trains which model.

- :mod:`.terms`: ℓ = BCE + SSIM + IoU (:func:`structure_loss`) and its parts, :class:`MaskLoss`.
- :mod:`.dirl`: :class:`DIRLLoss` (``dirl*``).
- :mod:`.rsrnet`: :class:`RSRNetLoss` (``rsrnet*``).
- :mod:`.madisnet`: :class:`MadisNetLoss` (``madisnet*``), :class:`LocalizationLoss` (``unet``).
- :mod:`.s2am`: :class:`S2AMLoss` (``s2am``), :class:`S2AMMaskFreeLoss` (``s2am_maskfree``).

Each family registers the architectures it trains with :func:`register_loss`; :func:`loss_for_model`
builds a model's loss from that table (the models themselves never name a loss).

Example:
    >>> import torch
    >>> from inharmony.losses import loss_for_model
    >>> loss = loss_for_model("dirl_tiny")
    >>> target = torch.zeros(1, 1, 16, 16)
    >>> sorted(loss({"mask": target, "attention": [target]}, target))
    ['loss', 'loss_attention', 'loss_mask']
"""

from ._registry import get_loss_class, loss_for_model, register_loss
from .dirl import DIRLLoss
from .madisnet import LocalizationLoss, MadisNetLoss
from .rsrnet import RSRNetLoss, rsr_iteration_weights
from .s2am import S2AMLoss, S2AMMaskFreeLoss
from .terms import MaskLoss, bce_loss, gaussian_window, iou_loss, ssim, ssim_loss, structure_loss

__all__ = [
    "DIRLLoss",
    "LocalizationLoss",
    "MadisNetLoss",
    "MaskLoss",
    "RSRNetLoss",
    "S2AMLoss",
    "S2AMMaskFreeLoss",
    "bce_loss",
    "gaussian_window",
    "get_loss_class",
    "iou_loss",
    "loss_for_model",
    "register_loss",
    "rsr_iteration_weights",
    "ssim",
    "ssim_loss",
    "structure_loss",
]
