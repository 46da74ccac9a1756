"""S2AM's training losses (Cun & Pun, TIP 2020; the authors' ``vinthony/s2am``, ``scripts/machines/``).

* :class:`S2AMLoss` (``s2am``, the paper's S2AD with the mask): the pixel loss ``‖I_pred − I‖²`` (MSE)
  between the network's image and the real image, as the authors' ``BasicMachine`` trains ``rascv2``
  (§3.4.1: "we use the L2-norm criterion"; perceptual and adversarial terms brought no significant gain).
* :class:`S2AMMaskFreeLoss` (``s2am_maskfree``): ``β·L_pixel + α·Σ_i ‖M'_i − M_i‖² (+ L_gan)``, the paper's
  Eq. 5 with α = 90 and β = 100 (§3.4.2, as the authors' ``MMaskedRASCGAN``: ``100·loss_pixel + 90·(mask8s +
  mask4s + mask2s)``). Each spatial attention map ``M'_i`` (the model's ``outputs["attention"]``) is compared
  with the ground-truth mask area-resized to its size (the fraction of each cell that is foreground). The
  pixel term is L1 by default, as the authors' code computes it (``criterion_L1``, the pix2pix recipe the
  weight 100 comes from); ``pixel_loss="mse"`` gives the paper's Eq. 3 (L2).

**Adversarial term: optional, off by default** (``adversarial_weight=0``). With a weight > 0 the loss owns a
pix2pix PatchGAN discriminator conditioned on the composite and adds the least-squares GAN term
``MSE(D(I_pred, I_comp), 1)`` (the paper's §3.4.2, LSGAN as CycleGAN); :class:`~inharmony.training.harmonization.
HarmonizationTask` then trains the discriminator with its own optimizer (``0.5·[MSE(D(I, I_comp), 1) +
MSE(D(I_pred, I_comp), 0)]``). It is off because (1) for the harmonizer with the mask the paper found no
significant improvement from it (§3.4.1) and the authors' recipe for ``rascv2`` (``BasicMachine``) has none;
(2) for the mask-free model it moves the numbers least of the paper's ablations (Table 3: MSE 23.93 without
it vs 20.73 with it, a gain the attention loss and post-processing dwarf) while it doubles the cost of a step
(a second network, forward and backward, and a second optimizer) and makes training less stable and less
reproducible; pixel metrics (MSE/PSNR), the ones reported, are what the pixel term optimises directly.

Both losses take ``(outputs, targets)`` with ``targets`` a dict: ``"real"`` ``(B, 3, H, W)`` RGB in [0, 1],
``"mask"`` ``(B, 1, H, W)`` in {0, 1} and, for the adversarial term, ``"composite"`` (RGB in [0, 1]).

Example:
    >>> import torch
    >>> real = torch.rand(2, 3, 32, 32)
    >>> loss = S2AMLoss()
    >>> round(float(loss({"image": real}, {"real": real, "mask": torch.zeros(2, 1, 32, 32)})["loss"]), 6)
    0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import register_loss

__all__ = ["PatchDiscriminator", "S2AMLoss", "S2AMMaskFreeLoss", "attention_targets"]

_PIXEL_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN discriminator (``n_layers=3``: 70×70 receptive field), conditioned by concatenation.

    conv4×4 stride 2 → LeakyReLU(0.2), then ``n_layers − 1`` conv4×4 stride 2 → BatchNorm → LeakyReLU, one
    conv4×4 stride 1 → BatchNorm → LeakyReLU and a final conv4×4 stride 1 to one channel (a score per patch).

    Args:
        in_channels: Channels of the input: image + condition (3 + 3).
        ndf: Filters of the first layer.
        n_layers: Strided layers.

    Example:
        >>> PatchDiscriminator()(torch.rand(1, 6, 64, 64)).shape
        torch.Size([1, 1, 6, 6])
    """

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, image: Tensor, condition: Tensor | None = None) -> Tensor:
        x = image if condition is None else torch.cat([image, condition], dim=1)
        return self.net(x)


def attention_targets(mask: Tensor, maps: Sequence[Tensor]) -> list[Tensor]:
    """The ground-truth mask area-resized to the size of each attention map (fraction of foreground per cell).

    Example:
        >>> mask = torch.zeros(1, 1, 8, 8)
        >>> mask[..., :4, :] = 1
        >>> [tuple(t.shape[-2:]) for t in attention_targets(mask, [torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)])]
        [(4, 4), (2, 2)]
    """
    mask = mask.float()
    return [mask if m.shape[-2:] == mask.shape[-2:] else F.interpolate(mask, size=m.shape[-2:], mode="area")
            for m in maps]  # fmt: skip


def _targets(targets: Mapping[str, Tensor] | Tensor, who: str) -> Mapping[str, Tensor]:
    if not isinstance(targets, Mapping) or "real" not in targets:
        got = sorted(targets) if isinstance(targets, Mapping) else type(targets).__name__
        raise KeyError(
            f"{who} needs targets {{'real': (B,3,H,W) in [0, 1], 'mask': (B,1,H,W)}} (the real image comes from "
            f"the data module with with_real=True); got {got}"
        )
    return targets


class _HarmonizationLoss(nn.Module):
    """Shared parts: the pixel term, the optional adversarial term and the discriminator's loss."""

    def __init__(self, pixel_weight: float, pixel_loss: str, adversarial_weight: float) -> None:
        super().__init__()
        if pixel_loss not in _PIXEL_LOSSES:
            raise ValueError(f"pixel_loss must be one of {', '.join(_PIXEL_LOSSES)}, got {pixel_loss!r}")
        if pixel_weight < 0 or adversarial_weight < 0:
            raise ValueError("loss weights must be >= 0")
        self.pixel_weight = float(pixel_weight)
        self.pixel_loss = pixel_loss
        self.adversarial_weight = float(adversarial_weight)
        self.discriminator: PatchDiscriminator | None = PatchDiscriminator() if adversarial_weight > 0 else None

    def pixel(self, pred: Tensor, real: Tensor) -> Tensor:
        return _PIXEL_LOSSES[self.pixel_loss](pred.float(), real.float())

    def _adversarial(self, pred: Tensor, targets: Mapping[str, Tensor]) -> Tensor | None:
        if self.discriminator is None or not self.training:
            return None
        if "composite" not in targets:
            raise KeyError("the adversarial term needs targets['composite'] (the composite, RGB in [0, 1])")
        score = self.discriminator(pred, targets["composite"])
        return F.mse_loss(score, torch.ones_like(score))

    def discriminator_loss(self, pred: Tensor, targets: Mapping[str, Tensor]) -> Tensor:
        """LSGAN loss of the discriminator: ``0.5·[MSE(D(real), 1) + MSE(D(pred.detach()), 0)]``.

        Example:
            >>> loss = S2AMLoss(adversarial_weight=1.0)
            >>> x = torch.rand(1, 3, 64, 64)
            >>> float(loss.discriminator_loss(x, {"real": x, "composite": x})) >= 0
            True
        """
        if self.discriminator is None:
            raise RuntimeError("discriminator_loss needs adversarial_weight > 0")
        condition = targets["composite"]
        on_real = self.discriminator(targets["real"], condition)
        on_fake = self.discriminator(pred.detach(), condition)
        return 0.5 * (F.mse_loss(on_real, torch.ones_like(on_real)) + F.mse_loss(on_fake, torch.zeros_like(on_fake)))

    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters trained with the network (all but the discriminator's)."""
        skip = {id(p) for p in self.discriminator.parameters()} if self.discriminator is not None else set()
        return [p for p in self.parameters() if id(p) not in skip]


@register_loss("s2am")
class S2AMLoss(_HarmonizationLoss):
    """Loss of ``s2am`` (S2AD, with the mask): ``pixel_weight·MSE(I_pred, I)`` (+ the optional GAN term).

    Args:
        pixel_weight: Weight of the pixel term. The authors' ``BasicMachine`` multiplies the MSE by 1e10, a
            constant that under Adam only changes how much ``eps`` matters; 1 keeps losses readable (and
            finite in fp16).
        pixel_loss: ``"mse"`` (the paper's L2, default) or ``"l1"``.
        adversarial_weight: Weight of the LSGAN term; 0 (default) turns it and the discriminator off (see
            the module notes for why).

    Returns (forward): ``{"loss", "loss_pixel"}`` (+ ``"loss_gan"`` when adversarial).

    Example:
        >>> out = S2AMLoss()({"image": torch.zeros(1, 3, 8, 8)}, {"real": torch.ones(1, 3, 8, 8)})
        >>> sorted(out), float(out["loss"])
        (['loss', 'loss_pixel'], 1.0)
    """

    def __init__(self, pixel_weight: float = 1.0, pixel_loss: str = "mse", adversarial_weight: float = 0.0) -> None:
        super().__init__(pixel_weight, pixel_loss, adversarial_weight)

    def forward(self, outputs: Mapping[str, Any], targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        targets = _targets(targets, type(self).__name__)
        pred = outputs["image"]
        loss_pixel = self.pixel(pred, targets["real"])
        total = self.pixel_weight * loss_pixel
        losses = {"loss_pixel": loss_pixel.detach()}
        gan = self._adversarial(pred, targets)
        if gan is not None:
            total = total + self.adversarial_weight * gan
            losses["loss_gan"] = gan.detach()
        return {"loss": total, **losses}


@register_loss("s2am_maskfree")
class S2AMMaskFreeLoss(_HarmonizationLoss):
    """Loss of ``s2am_maskfree``: ``β·L_pixel + α·Σ_i MSE(M'_i, M_i)`` (+ the optional GAN term), Eq. 5.

    Args:
        pixel_weight: β (paper and authors' code: 100).
        attention_weight: α (paper and authors' code: 90), applied to each attention level.
        pixel_loss: ``"l1"`` (the authors' code, default) or ``"mse"`` (the paper's Eq. 3).
        attention_loss: ``"mse"`` (the paper's choice, §4.4.2: better than BCE) or ``"bce"``.
        adversarial_weight: Weight of the LSGAN term (the paper: 1); 0 (default) turns it off (see the
            module notes for why).

    The attention maps are read from ``outputs["attention"]`` (a list of ``(B, 1, h, w)`` sigmoids, finest
    first); a model that returns none contributes no attention term.

    Returns (forward): ``{"loss", "loss_pixel", "loss_attention"}`` (+ ``"loss_gan"``).

    Example:
        >>> mask = torch.ones(1, 1, 16, 16)
        >>> out = {"image": torch.zeros(1, 3, 16, 16), "attention": [torch.ones(1, 1, 8, 8)]}
        >>> losses = S2AMMaskFreeLoss()(out, {"real": torch.zeros(1, 3, 16, 16), "mask": mask})
        >>> float(losses["loss"]), float(losses["loss_attention"])
        (0.0, 0.0)
    """

    def __init__(
        self,
        pixel_weight: float = 100.0,
        attention_weight: float = 90.0,
        pixel_loss: str = "l1",
        attention_loss: str = "mse",
        adversarial_weight: float = 0.0,
    ) -> None:
        super().__init__(pixel_weight, pixel_loss, adversarial_weight)
        if attention_loss not in ("mse", "bce"):
            raise ValueError(f"attention_loss must be 'mse' or 'bce', got {attention_loss!r}")
        if attention_weight < 0:
            raise ValueError("loss weights must be >= 0")
        self.attention_weight = float(attention_weight)
        self.attention_loss = attention_loss

    def attention_term(self, maps: Sequence[Tensor], mask: Tensor) -> Tensor:
        """``Σ_i ℓ(M'_i, resize(M))`` over the attention levels (0 without maps)."""
        if not maps:
            return mask.new_zeros(())
        fn = F.mse_loss if self.attention_loss == "mse" else F.binary_cross_entropy
        with torch.autocast(device_type=mask.device.type, enabled=False):  # BCE refuses autocast
            return sum(
                (fn(m.float().clamp(0, 1), t) for m, t in zip(maps, attention_targets(mask, maps), strict=True)),
                mask.new_zeros((), dtype=torch.float32),
            )

    def forward(self, outputs: Mapping[str, Any], targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        targets = _targets(targets, type(self).__name__)
        if "mask" not in targets:
            raise KeyError("S2AMMaskFreeLoss needs targets['mask'] (the ground-truth region) for the attention loss")
        pred = outputs["image"]
        loss_pixel = self.pixel(pred, targets["real"])
        loss_attention = self.attention_term(list(outputs.get("attention") or []), targets["mask"])
        total = self.pixel_weight * loss_pixel + self.attention_weight * loss_attention
        losses = {"loss_pixel": loss_pixel.detach(), "loss_attention": loss_attention.detach()}
        gan = self._adversarial(pred, targets)
        if gan is not None:
            total = total + self.adversarial_weight * gan
            losses["loss_gan"] = gan.detach()
        return {"loss": total, **losses}
