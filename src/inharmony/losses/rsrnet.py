"""RSRNet's training loss (§3.4, eq. 3): ℓ of the final mask plus the decayed ℓ of every RSR iteration's mask.

Example:
    >>> from inharmony.losses import rsr_iteration_weights
    >>> [round(w, 2) for w in rsr_iteration_weights(2)]  # the last iteration weighs 1
    [0.8, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._registry import register_loss
from .terms import output_maps, structure_loss

__all__ = ["RSRNetLoss", "rsr_iteration_weights"]


def rsr_iteration_weights(num_iterations: int, decay: float = 0.8) -> list[float]:
    """Weights ``decay^(K−k)`` of the RSR masks k = 1..K (RSRNet eq. 3): the last mask weighs 1.

    Example:
        >>> [round(w, 2) for w in rsr_iteration_weights(3, 0.8)]
        [0.64, 0.8, 1.0]
    """
    if num_iterations < 0:
        raise ValueError(f"num_iterations must be >= 0, got {num_iterations}")
    return [float(decay) ** (num_iterations - k) for k in range(1, num_iterations + 1)]


@register_loss("rsrnet", "rsrnet_resnet18")
class RSRNetLoss(nn.Module):
    """RSRNet's loss (§3.4, eq. 3): ``final_weight · ℓ(M_fnl) + Σ_k decay^(K−k) ℓ(M̄^k)``.

    Uses ``outputs["mask"]`` (M_fnl) and ``outputs["rsr_masks"]`` (the K upsampled RSR masks, in
    iteration order); ℓ = :func:`~inharmony.losses.structure_loss`.

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
        loss_final = structure_loss(output_maps(outputs, "mask", "RSRNetLoss")[0], target)
        masks: Sequence[Tensor] = output_maps(outputs, "rsr_masks", "RSRNetLoss")
        weights = rsr_iteration_weights(len(masks), self.decay)
        loss_rsr = sum(
            (w * structure_loss(m, target) for w, m in zip(weights, masks, strict=True)),
            torch.zeros_like(loss_final),
        )
        total = self.final_weight * loss_final + loss_rsr
        return {"loss": total, "loss_final": loss_final.detach(), "loss_rsr": loss_rsr.detach()}
