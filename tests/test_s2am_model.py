"""S2AM networks: the authors' computation, output contract, parameter counts, gradients, input checks.

Our networks are compared with ``s2am_reference`` (a functional restatement of the authors' forward over
their state dict, in their key names) on the same random weights: ours → their layout
(:func:`inharmony.converters.s2am.to_official_state_dict`) → their forward. Small widths
(``base_channels=16``) and depths (``num_downs`` 5–6) keep each test to a fraction of a second; the
structure is the authors' at every size, and the counts below check the full-size network.
"""

from __future__ import annotations

import pytest
import torch

import inharmony
from inharmony.models.converters.s2am import to_official_state_dict
from inharmony.models.s2am import S2AM, S2AMMaskFree, smoothing_kernel
from s2am_reference import gaussian_kernel, official_forward, official_parameter_count

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-5
# Measured by building the authors' networks (vinthony/s2am, backbone_unet.py) and counting their parameters.
AUTHORS_RASCV2 = 67_003_051
AUTHORS_MASKEDURASC = 67_009_134
SMALL = {"num_downs": 6, "base_channels": 16}


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights with non-trivial BatchNorm statistics, activations O(1) through the UNet."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            elif name.endswith("running_mean"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=gen))
            elif tensor.ndim == 1:
                base = 1.0 if name.endswith("bn.weight") or ".bn1.weight" in name or ".bn2.weight" in name else 0.0
                tensor.copy_(base + 0.1 * torch.randn(tensor.shape, generator=gen))
            else:
                fan_in = tensor[0].numel() if "up.conv" not in name and "head" not in name else tensor.shape[0] * 16
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
    return model


def composite(batch: int, height: int, width: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=gen)
    mask = torch.zeros(batch, 1, height, width)
    mask[:, :, height // 5 : height // 2 + 3, width // 4 : width - 7] = 1.0
    mask[-1] *= 0.7  # a soft mask exercises the authors' rounding
    return image, mask


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "s2am": randomise(inharmony.create_model("s2am", **SMALL), seed=1).eval(),
        "s2am_maskfree": randomise(inharmony.create_model("s2am_maskfree", **SMALL), seed=2).eval(),
    }


# --------------------------------------------------------------------------- registry and parameter counts


def test_registry_facts() -> None:
    from inharmony.losses import S2AMLoss, S2AMMaskFreeLoss, get_loss_class

    for name, loss in [("s2am", S2AMLoss), ("s2am_maskfree", S2AMMaskFreeLoss)]:
        cfg = inharmony.get_pretrained_cfg(name)
        assert cfg.input_size == (3, 256, 256)
        assert cfg.mean == (0.0, 0.0, 0.0) and cfg.std == (1.0, 1.0, 1.0)  # the authors feed ToTensor() pixels
        assert cfg.size_multiple == 256  # eight stride-2 steps
        assert get_loss_class(name) is loss
        assert cfg.hf_hub_id is None and "Cun" in cfg.paper and "1907.06406" in cfg.paper_url
    assert inharmony.get_pretrained_cfg("s2am_maskfree").metrics["ap"] == 43.77


def test_parameter_counts_equal_the_authors() -> None:
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    with torch.device("meta"):  # counting needs no initialisation
        assert count(inharmony.create_model("s2am")) == AUTHORS_RASCV2 == official_parameter_count("rascv2")
        assert count(inharmony.create_model("s2am_maskfree")) == AUTHORS_MASKEDURASC
    assert official_parameter_count("maskedurasc") == AUTHORS_MASKEDURASC


def test_smoothing_kernel_is_the_authors() -> None:
    assert (smoothing_kernel() - gaussian_kernel()).abs().max() < 1e-7
    assert abs(float(smoothing_kernel()[0, 0, 2, 2]) - 0.0917) < 1e-3  # exp(-((x-2)/2)^2), not a σ=1 Gaussian


# --------------------------------------------------------------------------- the authors' computation


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("config,size", [(SMALL, (64, 64)), ({"num_downs": 5, "base_channels": 16}, (96, 64))])
def test_s2am_equals_the_authors_network(config, size, training) -> None:
    model = randomise(inharmony.create_model("s2am", **config), seed=3).train(training)
    image, mask = composite(2, *size)
    sd = to_official_state_dict(model)
    with torch.no_grad():
        ours = model(image, mask)["image"]
        theirs, _, _ = official_forward(sd, torch.cat([image, mask], 1), training=training)
    assert float(theirs.std()) > 0.05
    assert (ours - theirs).abs().max() <= TOL


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("config,size", [(SMALL, (64, 64)), ({"num_downs": 5, "base_channels": 16}, (96, 64))])
def test_s2am_maskfree_equals_the_authors_network(config, size, training) -> None:
    model = randomise(inharmony.create_model("s2am_maskfree", **config), seed=4).train(training)
    image, _ = composite(2, *size)
    sd = to_official_state_dict(model)
    with torch.no_grad():
        ours = model(image)
        image_ref, mask_ref, levels_ref = official_forward(sd, image, training=training)
    assert float(image_ref.std()) > 0.05 and float(mask_ref.std()) > 1e-3
    assert (ours["image"] - image_ref).abs().max() <= TOL
    assert (ours["mask"] - mask_ref).abs().max() <= TOL
    for got, expected in zip(ours["attention"], levels_ref, strict=True):
        assert (got - expected).abs().max() <= TOL


def test_reference_is_sensitive_to_the_attention_parts(models) -> None:
    """The comparison can fail: scaling one gate, the learnable block or the spatial attention changes the output."""
    image, mask = composite(1, 64, 64, seed=5)
    for name, inputs, keys in [
        ("s2am", torch.cat([image, mask], 1), ["attention.spliced_attention.fc.2.weight", "connection.rconv2.weight"]),
        (
            "s2am_maskfree",
            image,
            ["attention.mask_attention.fc.2.weight", "attention.background_attention.fc.0.weight"],
        ),
    ]:
        sd = to_official_state_dict(models[name])
        base = official_forward(sd, inputs)[0]
        for key in [k for k in sd if k.endswith(tuple(keys))]:  # at each of the three levels
            changed = {k: v.clone() for k, v in sd.items()}
            changed[key].mul_(1.5)
            assert (official_forward(changed, inputs)[0] - base).abs().max() > 1e-4, key


def test_s2am_reads_the_mask(models) -> None:
    image, mask = composite(1, 64, 64, seed=6)
    with torch.no_grad():
        with_region = models["s2am"](image, mask)["image"]
        without = models["s2am"](image, torch.zeros_like(mask))["image"]
    assert (with_region - without).abs().max() > 1e-3


# --------------------------------------------------------------------------- output contract


def test_output_contract(models) -> None:
    image, mask = composite(2, 64, 128, seed=7)
    with torch.no_grad():
        out = models["s2am"](image, mask)
        free = models["s2am_maskfree"](image)
    assert set(out) == {"image"} and out["image"].shape == (2, 3, 64, 128)
    assert set(free) == {"image", "mask", "attention"}
    assert free["image"].shape == (2, 3, 64, 128) and free["mask"].shape == (2, 1, 64, 128)
    assert [tuple(a.shape) for a in free["attention"]] == [(2, 1, 32, 64), (2, 1, 16, 32), (2, 1, 8, 16)]
    for m in [free["mask"], *free["attention"]]:
        assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
    models["s2am_maskfree"].train()
    try:
        assert len(models["s2am_maskfree"](image)["attention"]) == 3  # present in training mode too
    finally:
        models["s2am_maskfree"].eval()


def test_blend_and_global_skip(models) -> None:
    state = models["s2am_maskfree"].state_dict()
    blended = inharmony.create_model("s2am_maskfree", blend=True, **SMALL).eval()
    skipped = inharmony.create_model("s2am_maskfree", global_skip=True, **SMALL).eval()
    blended.load_state_dict(state)
    skipped.load_state_dict(state)
    image, _ = composite(1, 64, 64, seed=8)
    with torch.no_grad():
        raw = models["s2am_maskfree"](image)
        mixed = blended(image)["image"]
        plus = skipped(image)["image"]
    expected = raw["image"] * raw["mask"] + image * (1 - raw["mask"])  # the paper's Eq. 2
    assert (mixed - expected).abs().max() <= 1e-6
    assert (plus - (raw["image"] + image)).abs().max() <= 1e-6
    s2am_skip = inharmony.create_model("s2am", global_skip=True, **SMALL).eval()
    s2am_skip.load_state_dict(models["s2am"].state_dict())
    _, mask = composite(1, 64, 64, seed=8)
    with torch.no_grad():
        assert (s2am_skip(image, mask)["image"] - models["s2am"](image, mask)["image"] - image).abs().max() <= 1e-6


@pytest.mark.parametrize("name", ["s2am", "s2am_maskfree"])
def test_gradients_reach_every_parameter(name) -> None:
    torch.manual_seed(9)
    model = inharmony.create_model(name, num_downs=5, base_channels=32).train()  # no gate with a lone ReLU
    image, mask = composite(2, 32, 32, seed=9)
    out = model(image, mask) if name == "s2am" else model(image)
    loss = out["image"].square().mean()
    if name == "s2am_maskfree":
        loss = loss + out["mask"].mean() + sum(a.mean() for a in out["attention"])
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead


def test_bad_inputs_are_refused(models) -> None:
    image, mask = composite(1, 64, 64)
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 1, 64, 64\)"):
        models["s2am"](image, mask[:, :, :32])
    with pytest.raises(ValueError, match=r"64×48 .*multiples of 64 \(S2AM's UNet halves the size 6 times\).*64×64"):
        models["s2am"](image[..., :48], mask[..., :48])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        models["s2am"](torch.cat([image, mask], 1), mask)
    with pytest.raises(ValueError, match="multiples of 64"):
        models["s2am_maskfree"](image[..., :48])
    with pytest.raises(TypeError, match="mask must be a float tensor"):
        models["s2am"](image, mask.numpy())
    with pytest.raises(ValueError, match="num_downs must be at least 5"):
        S2AM(num_downs=4)


def test_hub_round_trip_keeps_the_arguments(models, tmp_path) -> None:
    model = inharmony.create_model("s2am_maskfree", blend=True, **SMALL)
    model.load_state_dict(models["s2am_maskfree"].state_dict())
    model.save_pretrained(tmp_path / "hub")
    loaded = inharmony.from_pretrained(tmp_path / "hub")
    assert isinstance(loaded, S2AMMaskFree) and loaded.blend and loaded.size_multiple == 64
    image, _ = composite(1, 64, 64, seed=10)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(image)["image"], model.eval()(image)["image"])


@pytest.mark.parametrize("name", ["s2am", "s2am_maskfree"])
def test_torch_export_matches_eager(models, name) -> None:
    """torch.export (the path the ONNX exporter takes) captures the whole graph, attention list included."""
    image, mask = composite(1, 64, 64, seed=11)
    args = (image, mask) if name == "s2am" else (image,)
    with torch.no_grad():
        exported = torch.export.export(models[name], args)
        eager, captured = models[name](*args), exported.module()(*args)
    assert (captured["image"] - eager["image"]).abs().max() <= 1e-6
    if name == "s2am_maskfree":
        for a, b in zip([eager["mask"], *eager["attention"]], [captured["mask"], *captured["attention"]], strict=True):
            assert (a - b).abs().max() <= 1e-6


def test_model_card_of_a_harmonizer_says_harmonization():
    from inharmony.models import get_pretrained_cfg
    from inharmony.models.model_card import render_model_card

    def card(name: str) -> str:
        config = {"architecture": name, "pretrained_cfg": get_pretrained_cfg(name).to_dict(), "model_args": {}}
        return render_model_card(config, repo_id="org/repo")

    s2am, dirl = card("s2am"), card("dirl")
    assert "pipeline_tag: image-to-image" in s2am and "inharmony harmonize photo.jpg --model s2am" in s2am
    assert "Predictor" not in s2am
    assert "pipeline_tag: image-segmentation" in dirl and "inharmony predict photo.jpg --model dirl" in dirl
