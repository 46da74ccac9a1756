"""The encoder both DIRL and RSRNet use: ResNet with a full-resolution stem and a fifth block.

Both papers take torchvision's ResNet34, replace its 7×7 stride-2 stem and max-pool by a 3×3
stride-1 convolution (64 channels, with bias) + BN + ReLU, keep ``layer1..layer4`` unchanged and
add a fifth stage (3×3 max-pool, stride 2, then three 512→512 basic blocks). The five feature
maps therefore have strides 1, 2, 4, 8, 16. ``layer1`` runs at the input's full resolution, which
is why DIRL costs ~200 GFLOPs at 224×224.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import timm
import torch
import torch.utils.checkpoint
from timm.models.resnet import BasicBlock
from torch import nn

from ._download import ensure_hub_file_available

__all__ = ["BACKBONE_WEIGHTS", "PAPER_WIDTHS", "ResNetEncoder", "checkpointed"]


def checkpointed(fn: Callable[..., Any], *args: Any, modules: Sequence[nn.Module]) -> Any:
    """``fn(*args)`` under activation checkpointing: its activations are recomputed in backward.

    Outputs and gradients equal the plain call's. BatchNorm layers inside ``modules`` see the
    batch twice (forward, then the recomputation in backward); their running statistics are put
    back after the recomputation, so they are updated once, exactly as without checkpointing.
    Without gradients (evaluation, ``torch.no_grad``) this is a plain call.

    Args:
        fn: The computation (a module or a function of ``args``).
        *args: Its inputs.
        modules: The modules whose BatchNorm statistics ``fn`` updates.

    Example:
        >>> block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
        >>> y = checkpointed(block, torch.randn(2, 3, 8, 8), modules=[block])
        >>> y.shape
        torch.Size([2, 4, 8, 8])
    """
    if not torch.is_grad_enabled():
        return fn(*args)
    guard = functools.partial(_checkpoint_contexts, tuple(modules))
    return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False, context_fn=guard)


def _checkpoint_contexts(modules: tuple[nn.Module, ...]) -> tuple[contextlib.AbstractContextManager, Any]:
    return contextlib.nullcontext(), _batchnorm_stats_kept(modules)


@contextlib.contextmanager
def _batchnorm_stats_kept(modules: tuple[nn.Module, ...]) -> Iterator[None]:
    norms = [
        m
        for module in modules
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    saved = [[b.detach().clone() for b in m.buffers(recurse=False)] for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, values in zip(norms, saved, strict=True):
                for buffer, value in zip(m.buffers(recurse=False), values, strict=True):
                    buffer.copy_(value)

# Channels of ResNet18/34's layer1..layer4: the papers' encoder.
PAPER_WIDTHS = (64, 128, 256, 512)

# ImageNet weights the papers used: torchvision's, which timm publishes under these tags.
BACKBONE_WEIGHTS = {
    "resnet18": "resnet18.tv_in1k",
    "resnet34": "resnet34.tv_in1k",
}


class ResNetEncoder(nn.Module):
    """ResNet18/34 encoder with a stride-1 stem; returns five features at strides 1, 2, 4, 8, 16.

    Args:
        backbone: ``"resnet34"`` (both papers) or ``"resnet18"`` (a lighter variant).
        pretrained_backbone: ``False`` (random init), ``True`` (ImageNet weights through timm,
            tag ``<backbone>.tv_in1k``, downloaded once into the Hugging Face cache) or a path to a
            local timm/torchvision ResNet state dict (``.safetensors``, ``.pth``, ``.bin``).
        widths: Channels of ``layer1..layer4`` (the stem has ``widths[0]``, the fifth stage
            ``widths[3]``). The papers' ``(64, 128, 256, 512)`` by default; narrower ones (timm's
            ``channels`` argument) make a cheaper network for CPU demos and have no ImageNet weights.

    Example:
        >>> encoder = ResNetEncoder("resnet34")
        >>> [f.shape[1] for f in encoder(torch.zeros(1, 3, 32, 32))]
        [64, 128, 256, 512, 512]
        >>> narrow = ResNetEncoder("resnet18", widths=(16, 32, 64, 128))
        >>> narrow.channels
        (16, 32, 64, 128, 128)
    """

    def __init__(
        self,
        backbone: str = "resnet34",
        pretrained_backbone: bool | str = False,
        widths: Sequence[int] = PAPER_WIDTHS,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONE_WEIGHTS:
            raise ValueError(
                f"unsupported backbone {backbone!r}; choose one of {sorted(BACKBONE_WEIGHTS)}"
            )
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4 or min(widths) < 2 or widths[0] % 2:
            raise ValueError(
                f"widths must be four channel counts (layer1..layer4), the first even, got {widths}"
            )
        if widths != PAPER_WIDTHS and pretrained_backbone not in (False, None):
            raise ValueError(
                f"ImageNet weights exist only for the widths {PAPER_WIDTHS}, not {widths}: "
                "pass pretrained_backbone=False for a narrower encoder"
            )
        resnet = _build_resnet(backbone, pretrained_backbone, widths)
        self.backbone = backbone
        self.channels = (*widths, widths[3])
        self.strides = (1, 2, 4, 8, 16)
        self.stem_conv = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=True)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        self.stem_act = nn.ReLU(inplace=True)
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        self.pool5 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer5 = nn.Sequential(*(BasicBlock(widths[3], widths[3]) for _ in range(3)))
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the full-resolution stage (stem + ``layer1``) in backward instead of storing it.

        At full resolution ``layer1`` holds most of a training step's activation memory; with this on
        its activations are recomputed (one more ``layer1`` forward per step). Outputs, gradients and
        BatchNorm statistics are unchanged (:func:`checkpointed`).
        """
        self.grad_checkpointing = bool(enable)

    def _full_resolution(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer1(self.stem_act(self.stem_bn(self.stem_conv(x))))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features ``[f1, f2, f4, f8, f16]`` (``self.channels``: 64, 128, 256, 512, 512 by default)."""
        if self.grad_checkpointing:
            f1 = checkpointed(self._full_resolution, x, modules=[self.stem_bn, self.layer1])
        else:
            f1 = self._full_resolution(x)
        f2 = self.layer2(f1)
        f4 = self.layer3(f2)
        f8 = self.layer4(f4)
        f16 = self.layer5(self.pool5(f8))
        return [f1, f2, f4, f8, f16]


def _build_resnet(backbone: str, pretrained_backbone: bool | str, widths: tuple[int, ...]) -> nn.Module:
    if pretrained_backbone is False or pretrained_backbone is None:
        if widths == PAPER_WIDTHS:
            return timm.create_model(backbone, pretrained=False)
        # timm feeds layer1 64 channels unless the stem is "deep" (two convolutions, 2 × stem_width out);
        # that stem is dropped here (ours replaces it), so it only sets layer1's input width to widths[0].
        return timm.create_model(
            backbone, pretrained=False, channels=widths, stem_type="deep", stem_width=widths[0] // 2
        )
    tag = BACKBONE_WEIGHTS[backbone]
    if isinstance(pretrained_backbone, (str, os.PathLike)):
        path = os.fspath(pretrained_backbone)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"backbone weights file not found: {path}")
        return timm.create_model(tag, pretrained=True, pretrained_cfg_overlay={"file": path})
    hub_id = f"timm/{tag}"
    ensure_hub_file_available(
        hub_id,
        ("model.safetensors", "pytorch_model.bin"),
        offline_hint=(
            f"pass pretrained_backbone='path/to/{tag}.safetensors' (a local copy of the weights), "
            "or pretrained_backbone=False to start from random weights"
        ),
    )
    return timm.create_model(tag, pretrained=True)
