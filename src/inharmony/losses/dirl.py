"""DIRL's training loss (Liang et al., official code): ℓ on the mask and on every MDA attention map.

Example:
    >>> import torch
    >>> from inharmony.losses import DIRLLoss
    >>> target = torch.zeros(1, 1, 16, 16)
    >>> outputs = {"mask": target, "attention": [target] * 5}
    >>> float(DIRLLoss()(outputs, target)["loss"])  # perfect maps everywhere
    0.0
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._registry import register_loss
from .terms import output_maps, structure_loss

__all__ = ["DIRLLoss"]


@register_loss("dirl", "dirl_resnet18", "dirl_tiny")
class DIRLLoss(nn.Module):
    """DIRL's training loss (official code): ℓ(mask) and ℓ of every MDA attention map.

    ``loss = mask_weight · ℓ(mask) + attention_weight · Σ_i ℓ(attention_i)``, with ℓ =
    :func:`~inharmony.losses.structure_loss`; the official recipe uses weights 1 and 1.

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
        loss_mask = structure_loss(output_maps(outputs, "mask", "DIRLLoss")[0], target)
        attention = output_maps(outputs, "attention", "DIRLLoss")
        loss_attention = sum((structure_loss(a, target) for a in attention), torch.zeros_like(loss_mask))
        total = self.mask_weight * loss_mask + self.attention_weight * loss_attention
        return {"loss": total, "loss_mask": loss_mask.detach(), "loss_attention": loss_attention.detach()}
