"""`inharmony harmonize` and inharmony.inference.harmonizer: only the region changes, at the photo's own size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import inharmony
from inharmony.cli import main
from inharmony.errors import DataError, ImageReadError
from inharmony.inference import Predictor
from inharmony.inference.harmonizer import Harmonized, Harmonizer, harmonize, load_mask_array, soft_mask

H, W = 97, 131  # not square, odd sizes


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([xx * 1.5, yy * 2.0, (xx + yy) * 0.8], axis=-1) + rng.normal(0, 6, (H, W, 3))
    img = np.clip(base, 0, 255).astype(np.uint8)
    img[25:70, 40:100] = np.clip(img[25:70, 40:100] * [1.4, 0.7, 0.6], 0, 255).astype(np.uint8)  # the odd region
    return img


@pytest.fixture(scope="module")
def region() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[25:70, 40:100] = 255
    return mask


@pytest.fixture(scope="module")
def s2am() -> torch.nn.Module:
    torch.manual_seed(0)
    return inharmony.create_model("s2am", num_downs=5).eval()  # random weights: the output is noise, the rule holds


@pytest.fixture(scope="module")
def hub(tmp_path_factory, s2am) -> Path:
    folder = tmp_path_factory.mktemp("s2am_hub")
    s2am.save_pretrained(folder)
    return folder


def test_outside_the_mask_is_bit_identical(photo, region, s2am):
    soft = region.astype(np.float32) / 255
    soft[24, 40:100] = 0.25  # a soft edge row blends
    result = Harmonizer(s2am, size=64, device="cpu")(photo, soft)
    assert isinstance(result, Harmonized)
    assert result.image.shape == photo.shape and result.image.dtype == np.uint8
    outside = soft == 0
    assert np.array_equal(result.image[outside], photo[outside])
    assert not np.array_equal(result.image[soft == 1], photo[soft == 1])  # the region did change
    assert np.array_equal(result.mask_uint8() > 0, soft > 0)
    assert result.panel().size == (3 * W, H)


class BoxLocalizer(torch.nn.Module):
    """A stand-in localizer: probability 0.9 in a box, 0.05 elsewhere (a random network is sure of nothing)."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = torch.full_like(x[:, :1], 0.05)
        mask[..., 16:48, 20:50] = 0.9
        return {"mask": mask}


def test_predicted_mask_from_a_localizer(photo, s2am):
    localizer = Predictor(BoxLocalizer(), size=64, device="cpu")
    result = harmonize(photo, harmonizer=s2am, localizer=localizer, size=64, device="cpu")
    prob = localizer(photo)
    assert np.allclose(result.mask, np.rint(soft_mask(prob) * 255) / 255, atol=1 / 255)
    untouched = result.mask == 0
    assert untouched.any() and np.array_equal(result.image[untouched], photo[untouched])


def test_mask_free_harmonizer_finds_its_region(photo):
    torch.manual_seed(2)
    net = inharmony.create_model("s2am_maskfree", num_downs=5)
    result = Harmonizer(net, size=64, device="cpu")(photo)
    assert result.mask.shape == (H, W)
    untouched = result.mask == 0
    assert np.array_equal(result.image[untouched], photo[untouched])


def test_mask_loading_and_errors(photo, region, s2am, tmp_path):
    assert load_mask_array(region == 255).max() == 1.0
    assert load_mask_array((region > 0).astype(np.uint8)).max() == 1.0  # a 0/1 mask
    with pytest.raises(DataError, match="131x50 but the photo is 131x97"):
        load_mask_array(region[:50], (H, W))
    with pytest.raises(DataError, match="colour"):
        load_mask_array(np.dstack([region, region * 0, region]))
    with pytest.raises(ImageReadError):
        load_mask_array(tmp_path / "missing.png")
    with pytest.raises(ImageReadError):
        Harmonizer(s2am, size=64, device="cpu")(tmp_path / "missing.jpg", region)


def _run(*args: str) -> int:
    return main(["harmonize", *args, "--model", "s2am", "--device", "cpu", "--size", "64"])  # PCTNet is the default


def test_cli_writes_the_three_files(photo, region, hub, tmp_path):
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "photo_region.png"), region)
    out = tmp_path / "out"
    args = [str(tmp_path / "photo.png"), "--mask", str(tmp_path / "photo_region.png"), "--weights", str(hub)]
    assert _run(*args, "--out", str(out)) == 0
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == ["photo_harmonized.png", "photo_mask.png", "photo_panel.png"]
    written = cv2.cvtColor(cv2.imread(str(out / "photo_harmonized.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(written[region == 0], photo[region == 0])
    assert np.array_equal(cv2.imread(str(out / "photo_mask.png"), cv2.IMREAD_GRAYSCALE), region)
    assert _run(*args, "--out", str(out)) == 0  # a re-run replaces its own outputs
    (out / "photo_panel.png").write_bytes(b"mine")  # ... but never a file it did not write
    assert _run(*args, "--out", str(out)) == 2


def test_cli_bad_input_exits_2(photo, region, hub, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "small.png"), region[:50])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    cv2.imwrite(str(tmp_path / "region.png"), region)
    out = str(tmp_path / "out")
    weights = ["--weights", str(hub)]
    assert _run(str(tmp_path / "nothing.jpg"), "--out", out, *weights) == 2
    assert "nothing.jpg" in capsys.readouterr().err
    assert _run(str(tmp_path / "photo.png"), "--mask", str(tmp_path / "small.png"), "--out", out, *weights) == 2
    assert "131x50 but the photo is 131x97" in capsys.readouterr().err
    assert _run(str(tmp_path / "broken.jpg"), "--mask", str(tmp_path / "region.png"), "--out", out, *weights) == 2
    assert "broken.jpg" in capsys.readouterr().err
    assert _run(str(tmp_path / "photo.png"), "--out", out, "--threshold", "1.5", *weights) == 2
    assert not Path(out).exists() or not any(p.suffix == ".png" for p in Path(out).iterdir())
