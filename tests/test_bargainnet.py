"""BargainNet: libcom's BargainNet.pth layout → :class:`~inharmony.models.bargainnet.BargainNet`, equal scores.

A seeded random state dict in libcom's key names and shapes (``bargainnet_reference``) is saved as libcom's
file is (a plain ``torch.save``'d state dict), read back with ``read_state_dict`` (``weights_only=True``),
renamed by :func:`checkpoint_filter_fn` and loaded strictly; our model must then give the domain codes,
distances and scores of libcom's computation, restated one image and one region at a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import inharmony
from bargainnet_reference import harmony_score, libcom_state_dict, style_encoder
from inharmony.errors import CheckpointError, OfficialCheckpointError
from inharmony.models import load_state_dict_strict, read_state_dict
from inharmony.models.bargainnet import BargainNet, checkpoint_filter_fn
from inharmony.models.converters import find_converter

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-5


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    sd = libcom_state_dict(seed=3)
    sd["convs.weight"] = sd["convs.weight"] * 4  # distances of a few tens: scores spread over (0, 1)
    return sd


@pytest.fixture(scope="module")
def libcom_file(state, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("libcom") / "BargainNet.pth"
    torch.save(state, path)  # libcom's BargainNet.pth is a bare state dict
    return path


def load_libcom(path: Path) -> BargainNet:
    model = BargainNet()
    load_state_dict_strict(model, checkpoint_filter_fn(read_state_dict(path), model), str(path))
    return model.eval()


@pytest.fixture(scope="module")
def model(libcom_file: Path) -> BargainNet:
    return load_libcom(libcom_file)


def composite(h: int, w: int, seed: int, soft: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised image whose foreground is tinted, and a (soft) foreground mask."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(3, h, w, generator=gen)
    mask = torch.zeros(1, h, w)
    mask[:, h // 4 : 3 * h // 4, w // 3 : 5 * w // 6] = 1.0
    if soft:
        mask = F.avg_pool2d(mask[None], 7, stride=1, padding=3, count_include_pad=False)[0]
    image = image * (1 - mask) + image * torch.tensor([1.0, 0.6, 0.3]).view(3, 1, 1) * mask
    return image * 2 - 1, mask


# --------------------------------------------------------------------------- the key rules


def test_libcom_file_converts_with_no_key_left_over(state, model) -> None:
    assert len(model.state_dict()) == len(state) == 5 + 1 + 3 * 5 + 2  # convolutions, conv1f.bias, BN, head
    assert sum(p.numel() for p in model.parameters()) == 3_919_376
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == 3_919_376
    assert inharmony.create_model("bargainnet").state_dict().keys() == model.state_dict().keys()


def test_wrapped_file_with_module_prefixes_converts(state, model, tmp_path: Path) -> None:
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
    other = load_libcom(path)
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key


def test_every_mismatch_is_named(state, tmp_path: Path) -> None:
    bad = dict(state)
    del bad["norm3f.running_var"]
    bad["conv6f.weight"] = torch.zeros(1)
    bad["convs.weight"] = torch.zeros(8, 512, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(CheckpointError) as err:
        load_libcom(path)
    message = str(err.value)
    assert str(path) in message
    assert "missing keys (1): norms.1.running_var" in message
    assert "unexpected keys (1): conv6f.weight" in message
    assert "head.weight: checkpoint (8, 512, 1, 1) vs model (16, 512, 1, 1)" in message


# --------------------------------------------------------------------------- equal scores


@pytest.mark.parametrize(
    "size,soft", [((256, 256), True), ((64, 64), False), ((96, 80), True), ((71, 100), True)], ids=str
)
def test_scores_equal_libcoms(state, model, size, soft) -> None:
    image, mask = composite(*size, seed=size[0] + size[1], soft=soft)
    with torch.no_grad():
        out = model(image[None], mask[None])
        theirs_fg = style_encoder(state, image, mask)
        theirs_bg = style_encoder(state, image, 1 - mask)
    score, distance = harmony_score(state, image, mask)
    assert 2.0 < distance < 80.0, "the reference weights must separate the two regions"
    scale = float(torch.cat([theirs_fg, theirs_bg]).abs().max())  # the codes: relative differences
    diffs = {
        "style_fg": float((out["style_fg"][0] - theirs_fg).abs().max()) / scale,
        "style_bg": float((out["style_bg"][0] - theirs_bg).abs().max()) / scale,
        "distance": abs(float(out["distance"][0]) - distance),
        "score": abs(float(out["score"][0]) - score),
    }
    print(f"BargainNet {size[0]}x{size[1]}: score {score:.4f}, distance {distance:.2f}, max |ours - libcom| {diffs}")
    assert diffs["score"] < TOL and diffs["distance"] / distance < TOL
    assert diffs["style_fg"] < TOL and diffs["style_bg"] < TOL


def test_batch_of_two_equals_two_single_runs(model) -> None:
    pairs = [composite(96, 80, seed=1), composite(96, 80, seed=2, soft=False)]
    image = torch.stack([p[0] for p in pairs])
    mask = torch.stack([p[1] for p in pairs])
    with torch.no_grad():
        batched = model(image, mask)["score"]
        singles = torch.cat([model(image[i : i + 1], mask[i : i + 1])["score"] for i in range(2)])
    diff = float((batched - singles).abs().max())
    print(f"BargainNet batch of 2 vs single runs: max diff {diff:.2e}")
    assert batched.shape == (2,) and diff < TOL


def test_swapping_foreground_and_background_keeps_the_score(model) -> None:
    image, mask = composite(64, 64, seed=9)
    with torch.no_grad():
        one = model(image[None], mask[None])
        other = model(image[None], 1 - mask[None])
    assert torch.allclose(one["score"], other["score"], atol=TOL)
    assert torch.allclose(one["style_fg"], other["style_bg"], rtol=TOL, atol=TOL)


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_give_clear_errors(model) -> None:
    image, mask = torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64)
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 1, 64, 64\)"):
        model(image, torch.rand(1, 1, 64, 72))
    with pytest.raises(ValueError, match=r"image must have shape \(B, 3, H, W\), got \(3, 64, 64\)"):
        model(image[0], mask)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, 1, H, W\), got \(64, 64\)"):
        model(image, mask[0, 0])
    with pytest.raises(TypeError, match="image must be a float tensor"):
        model(image.numpy(), mask)
    with pytest.raises(ValueError, match="at least 63×63"):
        model(torch.rand(1, 3, 62, 64), torch.rand(1, 1, 62, 64))


# --------------------------------------------------------------------------- loading libcom's file


def test_inharmony_load_reads_libcoms_file(model, libcom_file: Path) -> None:
    assert find_converter(str(libcom_file)).name == "harmony-libcom"
    loaded = inharmony.load("bargainnet", weights=libcom_file)
    assert not loaded.training and loaded.pretrained_cfg.task == "harmony_score"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(OfficialCheckpointError, match="holds libcom's 'bargainnet', not 'pctnet'"):
        inharmony.load("pctnet", weights=libcom_file)


def test_create_model_pretrained_converts_the_published_file(model, libcom_file, monkeypatch) -> None:
    from inharmony.models.converters import libcom_harmony

    monkeypatch.setattr(libcom_harmony, "download_hub_file", lambda repo, name, **_: str(libcom_file.parent / name))
    loaded = inharmony.create_model("bargainnet", pretrained=True)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
