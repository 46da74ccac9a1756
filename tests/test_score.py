"""``inharmony.HarmonyScorer`` and ``inharmony score``: libcom's harmony score of a photo, from its pixels.

The reference is an independent re-statement of libcom's ``HarmonyScoreModel`` photo pipeline written here:
torchvision's ``Resize((256, 256))`` of the PIL photo (PIL's bilinear resize), ``ToTensor``,
``Normalize(0.5, 0.5)``; the foreground mask ``mask / 255`` (float32) and the background ``1 − mask`` each
resized as a float PIL image; then ``bargainnet_reference`` (libcom's ``StyleEncoder`` and score, functional,
seeded random weights in libcom's key names). Our scorer loads the same weights from libcom's file layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

import inharmony
from bargainnet_reference import libcom_state_dict, style_encoder
from inharmony.cli import main
from inharmony.errors import DataError, ImageReadError
from inharmony.inference import Predictor
from inharmony.inference.scorer import HarmonyScorer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-5


def photo_and_mask(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured photo with a tinted middle and its 8-bit mask (soft 1-px edge)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 100 / (h + w)], -1) + rng.normal(30, 12, (h, w, 3))
    mask = np.zeros((h, w), np.uint8)
    top, bottom, left, right = h // 5, 4 * h // 5, w // 4, 3 * w // 4
    mask[top - 1 : bottom + 1, left - 1 : right + 1] = 100
    mask[top:bottom, left:right] = 255
    base[top:bottom, left:right] *= [1.4, 0.7, 0.5]
    return np.clip(base, 0, 255).astype(np.uint8), mask


def libcom_score(state: dict, photo: np.ndarray, mask_u8: np.ndarray, size: int = 256) -> float:
    """libcom's ``HarmonyScoreModel.__call__`` on an RGB photo and an 8-bit mask."""
    transform = transforms.Compose(
        [transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)]
    )
    mask_transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
    fg = mask_u8.astype(np.float32) / 255.0
    bg = 1 - fg
    fg_t, bg_t = mask_transform(Image.fromarray(fg)), mask_transform(Image.fromarray(bg))
    image = transform(Image.fromarray(photo))
    with torch.no_grad():
        bg_style = style_encoder(state, image, bg_t)
        fg_style = style_encoder(state, image, fg_t)
    dist = float(np.sqrt(np.sum((bg_style.numpy() - fg_style.numpy()) ** 2)))
    return float(np.exp(-0.04212 * dist))


@pytest.fixture(scope="module")
def state() -> dict:
    return libcom_state_dict(seed=5)


@pytest.fixture(scope="module")
def libcom_file(state, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("libcom") / "BargainNet.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def scorer(libcom_file) -> HarmonyScorer:
    return HarmonyScorer("bargainnet", weights=libcom_file, localizer=None, device="cpu")


@pytest.mark.parametrize("size", [(64, 64), (45, 70), (96, 37), (300, 260)], ids=str)
def test_score_equals_libcom(state, scorer, size) -> None:
    photo, mask = photo_and_mask(*size, seed=sum(size))
    theirs = libcom_score(state, photo, mask)
    ours = scorer(photo, mask)
    print(f"BargainNet photo {size[0]}x{size[1]}: score {ours:.6f}, |ours - libcom| = {abs(ours - theirs):.2e}")
    assert abs(ours - theirs) < TOL
    assert 0.01 < ours < 0.99  # the weights separate the regions: a real comparison
    # (libcom resizes 1 − mask on its own: 1 − resize(mask) moves this score by ~4e-4, so the test tells them apart)


def test_batch_equals_one_at_a_time(scorer) -> None:
    pairs = [photo_and_mask(45, 70, 1), photo_and_mask(96, 37, 2)]
    pairs = [(p, m.astype(np.float32) / 255) for p, m in pairs]
    assert scorer.scores(pairs) == pytest.approx([scorer.score(*pair) for pair in pairs], abs=1e-6)


def test_bad_masks_and_roles_get_clear_errors(scorer, tmp_path) -> None:
    photo, mask = photo_and_mask(45, 70, 3)
    with pytest.raises(DataError, match="the mask is empty"):
        scorer(photo, np.zeros_like(mask))
    with pytest.raises(DataError, match="covers the whole photo: there is no background"):
        scorer(photo, np.full_like(mask, 255))
    with pytest.raises(DataError, match="70x44 but the photo is 70x45"):
        scorer(photo, mask[:44])
    with pytest.raises(ImageReadError):
        scorer(tmp_path / "missing.jpg", mask)
    with pytest.raises(ValueError, match="no localizer"):
        scorer(photo)
    with pytest.raises(ValueError, match="pctnet is a harmonizer"):
        HarmonyScorer("pctnet")
    with pytest.raises(ValueError, match="madisnet is a localizer"):
        HarmonyScorer("madisnet")
    with pytest.raises(ValueError, match="bargainnet is a scorer"):
        HarmonyScorer(scorer.model, localizer="bargainnet")


def test_grey_16_bit_alpha_and_cmyk_photos_are_converted(scorer, tmp_path) -> None:
    """Documented handling (inharmony.imageio): grey → RGB, 16-bit → 8-bit, alpha dropped, CMYK → RGB."""
    photo, mask = photo_and_mask(45, 70, 4)
    soft = mask.astype(np.float32) / 255
    rgb_score = scorer(photo, soft)
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGRA))
    assert scorer(tmp_path / "rgba.png", soft) == pytest.approx(rgb_score, abs=1e-6)
    cv2.imwrite(str(tmp_path / "deep.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    assert scorer(tmp_path / "deep.png", soft) == pytest.approx(rgb_score, abs=1e-6)
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    assert scorer(tmp_path / "grey.png", soft) == pytest.approx(scorer(np.dstack([grey] * 3), soft), abs=1e-6)
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert 0 < scorer(tmp_path / "cmyk.jpg", soft) <= 1


# --------------------------------------------------------------------------- inharmony score


class BoxLocalizer(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = torch.full_like(x[:, :1], 0.05)
        h, w = x.shape[-2:]
        mask[..., h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 0.9
        return {"mask": mask}


def test_score_cli_with_and_without_a_mask(libcom_file, scorer, tmp_path, capsys, monkeypatch) -> None:
    import inharmony.inference.scorer as module

    photo, mask = photo_and_mask(64, 96, 6)
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    args = ["--weights", str(libcom_file), "--device", "cpu"]
    assert main(["score", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"), *args]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"{tmp_path / 'photo.png'}: harmony {scorer(photo, mask.astype(np.float32) / 255):.2f}"

    box = Predictor(BoxLocalizer(), size=32, device="cpu")
    monkeypatch.setattr(module, "resolve_localizer", lambda *args, **kwargs: box)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    assert main(["score", str(tmp_path / "photo.png"), str(tmp_path / "broken.jpg"), *args, "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert (report["command"], report["scored"], report["skipped"]) == ("score", 1, 1)
    found, broken = report["photos"]
    assert found["status"] == "scored" and found["region"] == "predicted" and 0 < found["score"] <= 1
    assert broken["status"] == "skipped" and "broken.jpg" in broken["error"]
    assert "broken.jpg" in captured.err


def test_score_cli_bad_inputs_exit_2(libcom_file, tmp_path, capsys) -> None:
    photo, mask = photo_and_mask(64, 96, 7)
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    cases = {
        "empty.png": (np.zeros_like(mask), "the mask is empty"),
        "full.png": (np.full_like(mask, 255), "no background to compare"),
        "small.png": (mask[:50], "but the photo is 96x64"),
        "colour.png": (np.dstack([mask, mask * 0, mask]), "colour"),
    }
    args = ["--weights", str(libcom_file), "--device", "cpu"]
    for name, (values, message) in cases.items():
        cv2.imwrite(str(tmp_path / name), values)
        assert main(["score", str(tmp_path / "photo.png"), "--mask", str(tmp_path / name), *args]) == 2, name
        err = capsys.readouterr().err
        assert err.count("inharmony: error:") == 1 and message in err and "Traceback" not in err, err
    for extra, message in [
        (["--scorer", "pctnet"], "pctnet is a harmonizer"),
        (["--localizer", "bargainnet"], "bargainnet is a scorer"),
    ]:
        assert main(["score", str(tmp_path / "photo.png"), *extra, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert err.count("inharmony: error:") == 1 and message in err, err
    assert main(["score", str(tmp_path / "nothing.jpg"), *args]) == 2
    assert "nothing.jpg" in capsys.readouterr().err


def test_top_level_exports() -> None:
    assert inharmony.HarmonyScorer is HarmonyScorer
    assert "Harmonizer" in inharmony.__all__ and "HarmonyScorer" in dir(inharmony)
