"""The DIRL authors' training step of ``inharmony bench train`` computes what our training step computes."""

from __future__ import annotations

import copy

import torch

from inharmony.benchmarks.authors_dirl import authors_training_step
from inharmony.losses import DIRLLoss
from inharmony.models import create_model


def _batch():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(3, 3, 32, 32, generator=g)
    target = torch.zeros(3, 1, 32, 32)
    target[0, :, 4:20, 6:30] = 1
    target[1, :, 10:14, 10:14] = 1
    target[2, :, :, 16:] = 1
    return image, target


def test_the_authors_step_equals_ours_loss_and_update():
    # Their loss as written (five grouped convolutions, a per-image IoU loop) against DIRLLoss's vectorised
    # one: the same loss and the same gradients; and their Adam did update the weights.
    torch.manual_seed(0)
    theirs = create_model("dirl_resnet18").train()
    ours, initial = copy.deepcopy(theirs), copy.deepcopy(theirs)
    image, target = _batch()
    their_loss = authors_training_step(theirs, image, target, lr=1e-3)()

    optimizer = torch.optim.Adam(ours.parameters(), lr=1e-3, fused=True)
    loss = DIRLLoss()(ours(image), target)["loss"]
    loss.backward()
    optimizer.step()

    assert abs(their_loss - float(loss.detach())) < 1e-4 * abs(float(loss.detach()))
    # Gradients agree (a conv bias ahead of a BatchNorm has a gradient of rounding noise: hence the scale).
    scale = max(float(p.grad.abs().max()) for p in ours.parameters())
    moved = [0, 0]
    for (name, a), b, before in zip(theirs.named_parameters(), ours.parameters(), initial.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert (a.grad - b.grad).abs().max() <= 1e-4 * scale, name
        moved[0] += int(not torch.equal(a, before))
        moved[1] += int(not torch.equal(b, before))
    assert moved[0] == moved[1] > 0.8 * len(list(initial.parameters()))  # their Adam updated the same tensors


def test_the_authors_iou_loop_is_their_formula():
    from inharmony.benchmarks.authors_dirl import _iou_loss_per_image_loop

    pred = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]], [[[0.2, 0.2], [0.2, 0.2]]]])
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]], [[[1.0, 0.0], [0.0, 0.0]]]])
    # 1 - 1.5 / (2 + 1.5 - 1.5) = 0.25 and 1 - 0.2 / (1 + 0.8 - 0.2) = 0.875
    assert abs(float(_iou_loss_per_image_loop(pred, target)) - (0.25 + 0.875) / 2) < 1e-7
