"""MadisNet, MadisNet(UNet) and the UNet baseline as networks: outputs, sizes, registry facts, iHDRNet's quirks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import inharmony
from inharmony.models._ihdrnet import IHDRNet, slice_grid
from inharmony.models.madisnet import LIBCOM_REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ("madisnet", "madisnet_unet", "unet")


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: inharmony.create_model(name).eval() for name in NAMES}


def test_outputs_at_a_non_square_size(models) -> None:
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        outs = {name: model(x) for name, model in models.items()}
    for name, out in outs.items():
        assert out["mask"].shape == (1, 1, 64, 96), name
        assert float(out["mask"].min()) >= 0 and float(out["mask"].max()) <= 1, name
    assert set(outs["madisnet"]) == {"mask", "retouched", "attention"}
    assert set(outs["madisnet_unet"]) == {"mask", "retouched"}
    assert set(outs["unet"]) == {"mask"}
    retouched = outs["madisnet"]["retouched"]
    assert retouched.shape == (1, 3, 64, 96) and float(retouched.min()) > 0 and float(retouched.max()) < 1
    assert [a.shape for a in outs["madisnet"]["attention"]] == [(1, 1, 64, 96)] * 5


@pytest.mark.parametrize("name", NAMES)
def test_sizes_the_network_cannot_take_are_refused(models, name) -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        models[name](torch.randn(1, 3, 64, 72))


def test_registry_facts() -> None:
    assert set(NAMES) <= set(inharmony.list_models())
    for name in NAMES:
        cfg = inharmony.get_pretrained_cfg(name)
        assert cfg.input_size == (3, 256, 256) and cfg.size_multiple == 16
        assert "pretrained_backbone" in cfg.download_args
    cfg = inharmony.get_pretrained_cfg("madisnet")
    assert cfg.hf_hub_id == LIBCOM_REPO and cfg.metrics["ap"] == 87.88 and cfg.license == "apache-2.0"
    assert inharmony.get_pretrained_cfg("madisnet_unet").metrics["ap"] == 80.18
    assert inharmony.get_pretrained_cfg("unet").metrics["ap"] == 74.90


def test_localizer_sees_the_retouched_image(models) -> None:
    """The localizer's input is iHDRNet's 0–1 image, not the normalised composite (the authors' wiring)."""
    model = models["madisnet_unet"]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        assert torch.equal(out["mask"], model.localizer(out["retouched"]))


def test_grid_is_sliced_with_the_row_as_x() -> None:
    """The authors give grid_sample the pixel's row as x (the grid's width axis): a grid that varies
    along its width gives an image that varies down its rows."""
    grid = torch.zeros(1, 12, 2, 4, 4)
    grid[..., :] = torch.arange(4.0)  # varies along the grid's last (width) axis only
    out = slice_grid(grid, torch.zeros(1, 1, 8, 8))
    assert torch.allclose(out[0, 0, :, 0], torch.linspace(0, 3, 8))  # down the rows
    assert torch.allclose(out[0, 0, 0, :], torch.zeros(8))  # constant along a row


def test_ihdrnet_residual_blocks_double_their_output() -> None:
    net = IHDRNet().eval()
    block = net.coeffs.blocks[0]
    x = torch.randn(1, 128, 4, 4)
    with torch.no_grad():
        inner = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
        assert torch.allclose(block(x), F.relu(2 * inner))


# --------------------------------------------------------------------------- training losses and configs


def test_localization_loss_is_zero_for_a_perfect_mask() -> None:
    from inharmony.losses.madisnet import LocalizationLoss

    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:12, 4:12] = 1
    out = LocalizationLoss()({"mask": target, "attention": [target] * 5}, target)
    assert float(out["loss"]) < 1e-4
    worse = LocalizationLoss()({"mask": torch.full_like(target, 0.5), "attention": [target] * 5}, target)
    assert float(worse["loss_mask"]) > 0.5 and float(worse["loss_attention"]) < 1e-4


def test_triplet_terms() -> None:
    from inharmony.losses.madisnet import triplet_losses

    z = torch.zeros(1, 16, 1, 1)
    e = torch.zeros(1, 16, 1, 1)
    e[0, 0] = 1.0
    magnified = triplet_losses(e, z, 2 * e, z, margin=1e-3)  # discrepancy grew, same direction
    assert float(magnified["ddm"]) == 0 and abs(float(magnified["reg"])) < 1e-6
    shrunk = triplet_losses(2 * e, z, -e, z, margin=1e-3)  # shrank and turned around
    assert abs(float(shrunk["ddm"]) - (4 - 1 + 1e-3)) < 1e-6 and abs(float(shrunk["reg"]) - 2) < 1e-5


def test_partial_convolution_sees_only_its_region() -> None:
    from inharmony.losses.madisnet import partial_conv2d

    x, w, b = torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3), torch.randn(4)
    full, updated = partial_conv2d(x, torch.ones(1, 1, 8, 8), w, b, padding=1)
    inside = F.conv2d(x, w, b, padding=1)[..., 1:-1, 1:-1]
    assert torch.allclose(full[..., 1:-1, 1:-1], inside, atol=1e-5) and bool((updated == 1).all())
    region = torch.zeros(1, 1, 8, 8)
    region[..., :4, :] = 1
    out, _ = partial_conv2d(x, region, w, b, padding=1)
    changed = x.clone()
    changed[..., 4:, :] = 100.0  # outside the region: must not matter
    again, _ = partial_conv2d(changed, region, w, b, padding=1)
    assert torch.equal(out, again) and bool((out[..., 5:, :] == 0).all())


@pytest.fixture(scope="module")
def training_step():
    """One LocalizationTask training step of madisnet with its default loss recipe (random VGG: offline)."""
    from inharmony.losses.madisnet import MadisNetLoss
    from inharmony.training.localization import LocalizationTask

    torch.manual_seed(2)
    task = LocalizationTask("madisnet", loss=MadisNetLoss(vgg_weights=False))
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 10:24] = 1
    task.log = lambda *args, **kwargs: None  # no trainer attached
    loss = task.training_step({"image": torch.randn(2, 3, 32, 32), "mask": mask}, 0)
    loss.backward()
    return task, loss


def test_training_step_trains_ihdrnet_localizer_and_domain_adaptors(training_step) -> None:
    task, loss = training_step
    assert torch.isfinite(loss)
    encoder = task.loss.domain_encoder
    assert all(p.grad is not None for p in task.model.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    # The frozen VGG16 is neither trained nor saved: the optimizer and checkpoints see the adaptors only.
    assert sorted(encoder.state_dict()) == ["adaptors.0.weight", "adaptors.1.weight", "adaptors.2.weight", "weight"]
    task.eval()
    with torch.no_grad():
        losses = task.loss(task.model(torch.randn(1, 3, 32, 32)), torch.zeros(1, 1, 32, 32))
    assert "loss_triplet" not in losses  # validation scores the localization terms only


def test_domain_encoder_fails_fast_offline(monkeypatch, tmp_path) -> None:
    import time

    from inharmony.errors import HubUnreachableError
    from inharmony.losses.madisnet import DomainEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    encoder = DomainEncoder()  # building it downloads nothing
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError, match=r"vgg16\.tv_in1k.*vgg_weights="):
        encoder(torch.randn(1, 3, 16, 16), torch.ones(1, 1, 16, 16))
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("name", NAMES)
def test_configs_hold_the_authors_recipe(name) -> None:
    import importlib
    import inspect
    from pathlib import Path

    import yaml

    from inharmony.data import IHarmony4DataModule

    config = yaml.safe_load((Path(__file__).parents[1] / "configs" / f"{name}.yaml").read_text())
    assert config["model"]["model"] == name and config["seed_everything"] == 42
    assert config["trainer"]["max_epochs"] == 60
    adam = dict(config["model"]["optimizer"]["init_args"])
    assert adam.pop("fused") is True  # the implementation, not the recipe: the same arithmetic in one kernel
    assert adam == {"lr": 0.0001, "betas": [0.9, 0.999], "weight_decay": 0.0001}
    assert config["model"]["lr_scheduler"]["init_args"] == {"milestones": [30, 40, 50, 55], "gamma": 0.5}
    data = config["data"]["init_args"]
    assert data["image_size"] == 256 and data["crop_scale"] == [0.9, 1.0]
    assert set(data) <= set(inspect.signature(IHarmony4DataModule.__init__).parameters)
    loss = config["model"]["loss"]
    module, _, cls = loss["class_path"].rpartition(".")
    built = getattr(importlib.import_module(module), cls)(**{**loss["init_args"], "vgg_weights": False}
                                                          if cls == "MadisNetLoss" else loss["init_args"])  # fmt: skip
    assert built.ssim_weight == 0 and built.iou_weight == 1
    if name.startswith("madisnet"):
        assert (built.triplet_weight, built.direction_weight, built.margin) == (1e-3, 1e-3, 1e-3)
