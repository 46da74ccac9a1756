"""PCTNet: libcom's PCTNet.pth layout → :class:`~inharmony.models.pctnet.PCTNet`, equal outputs.

A re-statement of libcom's network in its own module layout (``pctnet_reference``) gets seeded random
weights; its state dict is saved as libcom's file is (a plain ``torch.save``'d state dict), read back with
``read_state_dict`` (``weights_only=True``), renamed by :func:`checkpoint_filter_fn` and loaded strictly.
Our model must then compute what the reference computes, one image at a time and one-shot at full
resolution, for any full-resolution size.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import inharmony
from inharmony.errors import CheckpointError, OfficialCheckpointError
from inharmony.models import load_state_dict_strict, read_state_dict
from inharmony.models.converters import find_converter
from inharmony.models.pctnet import PCTNet, apply_color_transform, checkpoint_filter_fn
from pctnet_reference import LibcomPCTNet, full_resolution, libcom_pctnet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-5
LOWRES = 64  # the published weights see 256×256; the weights do not depend on it, and 64² keeps the ViT fast
SIZES = [(64, 64), (45, 70), (33, 97), (96, 37)]  # full resolution: square, non-square, odd, taller than wide


@pytest.fixture(scope="module")
def reference() -> LibcomPCTNet:
    return libcom_pctnet(seed=7)


@pytest.fixture(scope="module")
def libcom_file(reference: LibcomPCTNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("libcom") / "PCTNet.pth"
    torch.save(reference.state_dict(), path)  # libcom's PCTNet.pth is a bare state dict
    return path


def load_libcom(path: Path, **kwargs) -> PCTNet:
    model = PCTNet(**{"lowres_size": LOWRES, **kwargs})
    load_state_dict_strict(model, checkpoint_filter_fn(read_state_dict(path), model), str(path))
    return model.eval()


@pytest.fixture(scope="module")
def model(libcom_file: Path) -> PCTNet:
    return load_libcom(libcom_file)


def composite(h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An image in [0, 1] and a soft foreground mask: a rectangle with a feathered edge."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(3, h, w, generator=gen)
    mask = torch.zeros(1, h, w)
    mask[:, h // 5 : 4 * h // 5, w // 4 : 3 * w // 4] = 1.0
    mask = F.avg_pool2d(mask[None], 5, stride=1, padding=2, count_include_pad=False)[0]
    return image, mask


def lowres(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    resize = lambda t: F.interpolate(t[None], size=(LOWRES, LOWRES), mode="bilinear")[0]  # noqa: E731
    return resize(image), resize(mask)


# --------------------------------------------------------------------------- the key rules


def test_libcom_file_converts_with_no_key_left_over(reference: LibcomPCTNet, model: PCTNet) -> None:
    ours, theirs = model.state_dict(), reference.state_dict()
    assert len(ours) == len(theirs) == 2 + 9 * 12 + 2 + 2
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters()) == 4_809_896


def test_wrapped_file_with_module_prefixes_converts(reference: LibcomPCTNet, model: PCTNet, tmp_path: Path) -> None:
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in reference.state_dict().items()}}, path)
    other = load_libcom(path)
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key


def test_every_mismatch_is_named(reference: LibcomPCTNet, tmp_path: Path) -> None:
    state = dict(reference.state_dict())
    del state["encoder.transformer_enc.layers.3.linear2.bias"]
    state["encoder.extra.weight"] = torch.zeros(1)
    state["get_params.weight"] = torch.zeros(12, 11, 1, 1)
    state["encoder.patch_to_embedding.1.weight"] = torch.zeros(256, 48)  # cannot be a 4×4×4 kernel
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_libcom(path)
    message = str(err.value)
    assert str(path) in message
    assert "missing keys (1): blocks.3.fc2.bias" in message
    assert "unexpected keys (1): encoder.extra.weight" in message
    assert "to_params.weight: checkpoint (12, 11, 1, 1) vs model (12, 12, 1, 1)" in message
    assert "patch_embed.weight: checkpoint (256, 48) vs model (256, 4, 4, 4)" in message


# --------------------------------------------------------------------------- equal outputs


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_outputs_equal_libcoms_at_any_full_resolution(reference, model, size) -> None:
    image, mask = composite(*size, seed=size[0] * 100 + size[1])
    image_lr, mask_lr = lowres(image, mask)
    with torch.no_grad():
        theirs = reference(image_lr, image, mask_lr, mask)
        theirs_lr = reference.forward_lowres(image_lr, mask_lr)
        out = model(image[None], mask[None], image_lr[None], mask_lr[None])
    fg = mask[0] > 0.5
    changed = (theirs - image).abs().amax(0)[fg]
    assert float(changed.mean()) > 0.05, "the reference weights must change the foreground"
    assert float((theirs - image).abs().amax(0)[mask[0] == 0].max()) == 0.0  # background untouched
    diff = float((out["image"][0] - theirs).abs().max())
    diff_lr = float((out["image_lr"][0] - theirs_lr).abs().max())
    print(f"PCTNet {size[0]}x{size[1]}: max |ours - libcom| full-res {diff:.2e}, low-res {diff_lr:.2e}")
    assert diff < TOL and diff_lr < TOL


def test_batch_of_two_equals_two_single_runs(model) -> None:
    pairs = [composite(45, 70, seed=1), composite(45, 70, seed=2)]
    image = torch.stack([p[0] for p in pairs])
    mask = torch.stack([p[1] for p in pairs])
    with torch.no_grad():
        batched = model(image, mask)["image"]
        singles = torch.cat([model(image[i : i + 1], mask[i : i + 1])["image"] for i in range(2)])
    diff = float((batched - singles).abs().max())
    print(f"PCTNet batch of 2 vs single runs: max diff {diff:.2e}")
    assert diff < TOL


def test_default_config_at_256_equals_libcom(reference, libcom_file) -> None:
    """The published configuration: the low-resolution copy at 256×256, made inside."""
    model = load_libcom(libcom_file, lowres_size=256)
    image, mask = composite(40, 52, seed=5)
    image_lr, mask_lr = (F.interpolate(t[None], size=(256, 256), mode="bilinear")[0] for t in (image, mask))
    with torch.no_grad():
        theirs = reference(image_lr, image, mask_lr, mask)
        ours = model(image[None], mask[None])["image"][0]
    diff = float((ours - theirs).abs().max())
    print(f"PCTNet lowres 256 (made inside): max |ours - libcom| {diff:.2e}")
    assert diff < TOL


def test_lowres_inputs_are_bilinear_resizes_when_not_given(model) -> None:
    image, mask = composite(45, 70, seed=3)
    image_lr, mask_lr = lowres(image, mask)
    with torch.no_grad():
        inside = model(image[None], mask[None])
        given = model(image[None], mask[None], image_lr[None], mask_lr[None])
    assert torch.equal(inside["image"], given["image"]) and torch.equal(inside["image_lr"], given["image_lr"])


def test_lowres_resize_is_opencvs_inter_linear() -> None:
    """libcom resizes with cv2.resize(INTER_LINEAR): the same filter (here on float pixels, no rounding)."""
    cv2 = pytest.importorskip("cv2")
    image, _ = composite(45, 70, seed=4)
    theirs = torch.from_numpy(cv2.resize(image.permute(1, 2, 0).numpy(), (LOWRES, LOWRES))).permute(2, 0, 1)
    ours = F.interpolate(image[None], size=(LOWRES, LOWRES), mode="bilinear", align_corners=False)[0]
    assert float((ours - theirs).abs().max()) < 1e-5


# --------------------------------------------------------------------------- the band-wise transform


@pytest.mark.parametrize("band_pixels", [1, 70, 997, 1 << 30], ids=lambda n: f"band{n}")
def test_band_wise_transform_equals_one_shot(band_pixels: int) -> None:
    gen = torch.Generator().manual_seed(11)
    params = torch.randn(1, 12, 16, 16, generator=gen) * 0.5
    params[:, :9] += torch.eye(3).flatten().view(1, 9, 1, 1)
    image, mask = composite(50, 83, seed=12)
    one_shot = full_resolution(image, mask, params)
    banded = apply_color_transform(image[None], mask[None], params, band_pixels=band_pixels)[0]
    diff = float((banded - one_shot).abs().max())
    print(f"band-wise transform ({band_pixels} px/band) vs one-shot: max diff {diff:.2e}")
    assert diff < TOL
    assert banded.dtype == torch.float32


def test_band_wise_transform_keeps_the_dtype_and_batches() -> None:
    gen = torch.Generator().manual_seed(13)
    params = torch.randn(2, 12, 8, 8, generator=gen)
    image = torch.rand(2, 3, 21, 34, generator=gen)
    mask = torch.rand(2, 1, 21, 34, generator=gen)
    both = apply_color_transform(image, mask, params, band_pixels=100)
    for i in range(2):
        assert torch.allclose(both[i], full_resolution(image[i], mask[i], params[i : i + 1]), atol=TOL)
    half = apply_color_transform(image.half(), mask.half(), params, band_pixels=100)
    assert half.dtype == torch.float16


def test_transform_outside_the_regions_box_is_the_input_exactly() -> None:
    """Only the box around the region is computed: two images with boxes apart, and an empty mask."""
    gen = torch.Generator().manual_seed(17)
    params = torch.randn(2, 12, 8, 8, generator=gen)
    image = torch.rand(2, 3, 40, 56, generator=gen)
    mask = torch.zeros(2, 1, 40, 56)
    mask[0, :, 3:9, 5:12] = torch.rand(6, 7, generator=gen)
    mask[1, :, 30:37, 40:50] = 1.0
    got = apply_color_transform(image, mask, params, band_pixels=64)
    for i in range(2):
        assert torch.allclose(got[i], full_resolution(image[i], mask[i], params[i : i + 1]), atol=TOL)
    outside = (mask == 0).expand_as(image)
    assert torch.equal(got[outside], image[outside])
    assert not torch.allclose(got, image)  # the regions did change
    empty = apply_color_transform(image, torch.zeros_like(mask), params)
    assert torch.equal(empty, image) and empty.data_ptr() != image.data_ptr()


def test_uint8_photo_in_gives_the_float_result_rounded() -> None:
    """A uint8 photo is read band by band; the output equals the float path's, rounded to 8 bits."""
    torch.manual_seed(3)
    model = PCTNet(depth=1, lowres_size=32, band_pixels=300).eval()
    photo = torch.randint(0, 256, (2, 3, 37, 53), dtype=torch.uint8)
    _, soft = composite(37, 53, seed=5)
    mask = soft[None].expand(2, 1, 37, 53).contiguous()
    with torch.no_grad():
        as_bytes = model(photo, mask)["image"]
        as_float = model(photo.float() / 255, mask)["image"]
    assert as_bytes.dtype == torch.uint8
    assert torch.equal(as_bytes, (as_float * 255).round().clamp(0, 255).to(torch.uint8))
    assert torch.equal(as_bytes[mask.expand_as(photo) == 0], photo[mask.expand_as(photo) == 0])


def test_gradients_reach_every_parameter_through_the_bands() -> None:
    torch.manual_seed(0)
    net = PCTNet(depth=1, lowres_size=16, band_pixels=40).train()
    image, mask = composite(30, 23, seed=14)
    out = net(image[None], mask[None])
    (out["image"].mean() + out["image_lr"].mean()).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_give_clear_errors(model) -> None:
    image, mask = torch.rand(1, 3, 40, 50), torch.rand(1, 1, 40, 50)
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 1, 40, 50\)"):
        model(image, torch.rand(1, 1, 40, 49))
    with pytest.raises(ValueError, match=r"image must have shape \(B, 3, H, W\), got \(3, 40, 50\)"):
        model(image[0], mask)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, 1, H, W\), got \(1, 40, 50\)"):
        model(image, mask[0])
    with pytest.raises(ValueError, match="mask must have shape"):
        model(image, torch.rand(1, 3, 40, 50))
    with pytest.raises(TypeError, match="image must be a float tensor"):
        model(image.numpy(), mask)
    wrong_dtype = r"image must be a float tensor in \[0, 1\] or a uint8 tensor, got dtype torch.int16"
    with pytest.raises(ValueError, match=wrong_dtype):
        model((image * 255).to(torch.int16), mask)
    with pytest.raises(ValueError, match=r"mask must be a float tensor in \[0, 1\], got dtype torch.uint8"):
        model(image, (mask * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="multiples of 4"):
        model(image, mask, torch.rand(1, 3, 62, 62), torch.rand(1, 1, 62, 62))
    with pytest.raises(ValueError, match=r"mask_lr must have shape \(1, 1, 64, 64\)"):
        model(image, mask, torch.rand(1, 3, 64, 64), torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="lowres_size 30 is not a multiple"):
        PCTNet(lowres_size=30)


# --------------------------------------------------------------------------- loading libcom's file


def test_inharmony_load_reads_libcoms_file_and_folder(model, libcom_file: Path) -> None:
    assert find_converter(str(libcom_file)).name == "harmony-libcom"
    assert find_converter(str(libcom_file.parent)).name == "harmony-libcom"
    for source in (libcom_file, libcom_file.parent):
        loaded = inharmony.load("pctnet", weights=source)
        assert not loaded.training and loaded.pretrained_cfg.name == "pctnet.libcom"
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(OfficialCheckpointError, match="holds libcom's 'pctnet', not 'bargainnet'"):
        inharmony.load("bargainnet", weights=libcom_file)
    with pytest.raises(OfficialCheckpointError, match=r"needs libcom's BargainNet\.pth"):
        inharmony.load("bargainnet", weights=libcom_file.parent)


def test_libcoms_whole_folder_stays_madisnets(libcom_file: Path, tmp_path: Path) -> None:
    (tmp_path / "PCTNet.pth").write_bytes(libcom_file.read_bytes())
    assert find_converter(str(tmp_path)).name == "harmony-libcom"
    (tmp_path / "Inharmonious_G.pth").write_bytes(b"")
    assert find_converter(str(tmp_path)).name == "madisnet-libcom"


def test_create_model_pretrained_converts_the_published_file(model, libcom_file, tmp_path, monkeypatch) -> None:
    from inharmony.models.converters import get_converter, libcom_harmony

    snapshot = tmp_path / "models--BCMIZB--Libcom_pretrained_models" / "snapshots" / ("ab" * 20)
    snapshot.mkdir(parents=True)
    (snapshot / "PCTNet.pth").write_bytes(libcom_file.read_bytes())
    asked = []

    def fake_download(repo_id: str, filename: str, offline_hint: str, revision: str | None = None) -> str:
        asked.append((repo_id, filename, revision))
        return str(snapshot / filename)

    monkeypatch.setattr(libcom_harmony, "download_hub_file", fake_download)
    cfg = inharmony.get_pretrained_cfg("pctnet")
    assert get_converter(cfg.weights_format).load_published is not None
    loaded = inharmony.create_model("pctnet", pretrained=True, lowres_size=LOWRES)
    assert asked == [("BCMIZB/Libcom_pretrained_models", "PCTNet.pth", None)]
    assert loaded.pretrained_cfg.revision == "ab" * 20
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
