"""Losses against independent references: nn.BCELoss, SSIM in NumPy/SciPy, the IoU formula by loop."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate
from skimage.metrics import structural_similarity

from inharmony.errors import UnknownModelError
from inharmony.losses import (
    DIRLLoss,
    LocalizationLoss,
    MadisNetLoss,
    MaskLoss,
    RSRNetLoss,
    S2AMLoss,
    S2AMMaskFreeLoss,
    bce_loss,
    gaussian_window,
    get_loss_class,
    iou_loss,
    loss_for_model,
    register_loss,
    rsr_iteration_weights,
    ssim,
    ssim_loss,
    structure_loss,
)


def _pair(seed: int = 0, shape=(2, 1, 24, 20)):
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(shape, generator=g) > 0.6).float()
    pred = torch.rand(shape, generator=g).clamp(1e-3, 1 - 1e-3)
    return pred, target


def _ssim_map_numpy(a: np.ndarray, b: np.ndarray, size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """SSIM map of two 2-D images with a zero-padded Gaussian window, written from the formula."""
    x = np.arange(size) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()

    def blur(v):
        return correlate(v, w, mode="constant", cval=0.0)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def test_bce_matches_nn_bceloss():
    pred, target = _pair()
    torch.testing.assert_close(bce_loss(pred, target), torch.nn.BCELoss()(pred, target))


def test_gaussian_window():
    w = gaussian_window(11, 1.5)
    assert w.shape == (11, 11) and abs(float(w.sum()) - 1) < 1e-6
    assert torch.argmax(w) == 60  # the centre
    torch.testing.assert_close(w, w.T)
    with pytest.raises(ValueError, match="odd"):
        gaussian_window(10)


def test_ssim_loss_of_identical_inputs_is_zero():
    pred, _ = _pair()
    assert abs(float(ssim_loss(pred, pred))) < 1e-6
    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:10, 4:12] = 1
    assert abs(float(ssim_loss(target, target))) < 1e-6


def test_ssim_matches_numpy_formula_with_zero_padding():
    pred, target = _pair(1, shape=(3, 1, 19, 23))
    ours = float(ssim(pred, target))
    maps = [_ssim_map_numpy(p[0].double().numpy(), t[0].double().numpy()) for p, t in zip(pred, target, strict=True)]
    assert abs(ours - float(np.mean(maps))) < 1e-5


def test_ssim_matches_scikit_image_away_from_the_border():
    # skimage pads by reflection; 5 px (the window radius) from the border the two agree exactly.
    pred, target = _pair(2, shape=(1, 1, 40, 36))
    a, b = pred[0, 0].double().numpy(), target[0, 0].double().numpy()
    _, full = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, full=True
    )
    ours = _ssim_map_numpy(a, b)
    np.testing.assert_allclose(ours[5:-5, 5:-5], full[5:-5, 5:-5], atol=1e-9)
    # and the torch implementation gives the same mean as the NumPy map
    assert abs(float(ssim(pred, target)) - ours.mean()) < 1e-5


def test_ssim_multichannel_is_per_channel():
    pred, target = _pair(3, shape=(2, 3, 16, 16))
    per_channel = [float(ssim(pred[:, c : c + 1], target[:, c : c + 1])) for c in range(3)]
    assert abs(float(ssim(pred, target)) - np.mean(per_channel)) < 1e-6


def _ssim_five_blurs(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM in float64 with one blur per map, per channel: the textbook layout ``ssim`` stacks into one call."""
    window = gaussian_window().double().view(1, 1, 11, 11)

    def blur(v):
        return torch.cat([torch.nn.functional.conv2d(v[:, c : c + 1], window, padding=5) for c in range(v.shape[1])], 1)

    mu_p, mu_t = blur(pred), blur(target)
    var_p, var_t = blur(pred * pred) - mu_p**2, blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    return (((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))).mean()


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_value_and_gradient_match_five_separate_blurs(channels):
    pred, target = _pair(4, shape=(2, channels, 20, 18))
    ours_pred = pred.clone().requires_grad_()
    ours = ssim(ours_pred, target)
    ours.backward()
    ref_pred = pred.double().requires_grad_()
    ref = _ssim_five_blurs(ref_pred, target.double())
    ref.backward()
    assert abs(float(ours) - float(ref)) < 1e-6
    scale = float(ref_pred.grad.abs().max())
    torch.testing.assert_close(ours_pred.grad.double(), ref_pred.grad, rtol=0, atol=1e-5 * scale)


def test_iou_loss_matches_formula():
    pred, target = _pair(4)
    expected = np.mean(
        [
            1 - (p * t).sum() / (p.sum() + t.sum() - (p * t).sum())
            for p, t in zip(pred.double().numpy(), target.double().numpy(), strict=True)
        ]
    )
    assert abs(float(iou_loss(pred, target)) - expected) < 1e-6


def test_iou_loss_empty_prediction_and_target_is_zero_with_finite_gradient():
    pred = torch.zeros(2, 1, 8, 8, requires_grad=True)
    target = torch.zeros(2, 1, 8, 8)
    target[1, 0, :2, :2] = 1
    loss = iou_loss(pred, target)
    assert abs(float(loss.detach()) - 0.5) < 1e-6  # image 0: 0/0 → 0; image 1: 1 - 0/4 = 1
    loss.backward()
    assert torch.isfinite(pred.grad).all()


def test_structure_loss_is_the_sum():
    pred, target = _pair(5)
    expected = bce_loss(pred, target) + ssim_loss(pred, target) + iou_loss(pred, target)
    torch.testing.assert_close(structure_loss(pred, target), expected)
    assert abs(float(structure_loss(target, target))) < 1e-6


def test_losses_run_in_float32_under_autocast():
    pred, target = _pair(6)
    ref = structure_loss(pred, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = structure_loss(pred.bfloat16(), target)
    assert out.dtype == torch.float32
    assert abs(float(out) - float(ref)) < 0.05  # only the bf16 rounding of the input differs


def test_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match=r"pred \(1, 1, 8, 8\) and target \(1, 1, 16, 16\)"):
        structure_loss(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 16, 16))


def test_dirl_loss_weights_and_gradients():
    pred, target = _pair(7)
    attention = [_pair(10 + i)[0].requires_grad_() for i in range(5)]
    mask = pred.clone().requires_grad_()
    out = DIRLLoss(mask_weight=2.0, attention_weight=0.5)({"mask": mask, "attention": attention}, target)
    expected_att = sum(structure_loss(a, target) for a in attention)
    expected = 2.0 * structure_loss(mask, target) + 0.5 * expected_att
    torch.testing.assert_close(out["loss"], expected)
    torch.testing.assert_close(out["loss_attention"], expected_att.detach())
    out["loss"].backward()
    assert mask.grad is not None and all(a.grad is not None for a in attention)
    with pytest.raises(KeyError, match="attention"):
        DIRLLoss()({"mask": mask}, target)


def test_rsr_iteration_weights_follow_eq3():
    weights = rsr_iteration_weights(12, 0.8)
    assert len(weights) == 12 and weights[-1] == 1.0
    assert weights == pytest.approx([0.8 ** (12 - k) for k in range(1, 13)])
    assert all(a < b for a, b in itertools.pairwise(weights))  # later masks weigh more
    assert rsr_iteration_weights(0) == []


def test_rsrnet_loss_total():
    pred, target = _pair(8)
    masks = [_pair(20 + k)[0] for k in range(3)]
    out = RSRNetLoss(decay=0.5, final_weight=2.0)({"mask": pred, "rsr_masks": masks}, target)
    expected = 2.0 * structure_loss(pred, target) + sum(
        w * structure_loss(m, target) for w, m in zip([0.25, 0.5, 1.0], masks, strict=True)
    )
    torch.testing.assert_close(out["loss"], expected)


def test_loss_for_model(monkeypatch):
    from inharmony.losses import _registry

    assert isinstance(loss_for_model("dirl"), DIRLLoss)
    assert isinstance(loss_for_model("dirl_resnet18"), DIRLLoss)
    assert isinstance(loss_for_model("rsrnet"), RSRNetLoss)
    assert isinstance(loss_for_model("rsrnet.ihd_le50"), RSRNetLoss)  # a weight tag resolves to its architecture
    assert loss_for_model("rsrnet", decay=0.5).decay == 0.5  # keyword arguments reach the loss class
    with pytest.raises(UnknownModelError, match="no default loss"):
        loss_for_model("no_such_model")
    # a registered model for which no loss is registered
    monkeypatch.delitem(_registry._LOSSES, "dirl_resnet18")
    with pytest.raises(ValueError, match="no default loss"):
        loss_for_model("dirl_resnet18")


# Which loss trains which architecture, written out: the losses' registry is the only place that says it.
EXPECTED_LOSSES = {
    "dirl": DIRLLoss, "dirl_resnet18": DIRLLoss, "dirl_tiny": DIRLLoss,
    "rsrnet": RSRNetLoss, "rsrnet_resnet18": RSRNetLoss,
    "madisnet": MadisNetLoss, "madisnet_unet": MadisNetLoss, "unet": LocalizationLoss,
    "s2am": S2AMLoss, "s2am_maskfree": S2AMMaskFreeLoss,
}  # fmt: skip


def test_each_model_trains_with_its_papers_loss():
    import inharmony
    from inharmony.losses import _registry

    assert set(EXPECTED_LOSSES) == set(_registry._LOSSES)  # a new loss registration is written out above too
    assert set(_registry._LOSSES) <= set(inharmony.list_models())  # no loss for an architecture that does not exist
    for name, expected in EXPECTED_LOSSES.items():
        assert get_loss_class(name) is expected, name


def test_register_loss_refuses_a_second_loss_for_an_architecture(monkeypatch):
    from inharmony.losses import _registry

    monkeypatch.setattr(_registry, "_LOSSES", dict(_registry._LOSSES))
    assert register_loss("dirl")(DIRLLoss) is DIRLLoss  # the same class again: nothing changes
    with pytest.raises(ValueError, match="already have a loss"):
        register_loss("dirl")(RSRNetLoss)
    with pytest.raises(ValueError, match="architecture names"):
        register_loss("dirl.ihd_le50")
    assert register_loss("new_net", "other_net")(MaskLoss) is MaskLoss
    assert _registry._LOSSES["new_net"] is _registry._LOSSES["other_net"] is MaskLoss
