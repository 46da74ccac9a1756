"""Photo level: ``inharmony.Harmonizer("pctnet")`` and ``inharmony fix`` give libcom's pixels.

The reference is an independent re-statement of libcom's ``ImageHarmonizationModel`` (``PCTNet``) photo
pipeline written here: OpenCV ``INTER_LINEAR`` resizes of the 8-bit RGB photo and of ``mask / 255`` (float64)
to the low resolution, torchvision's ``ToTensor``, the module of ``pctnet_reference`` (libcom's layout, seeded
random weights), ``clamp(255 · out)`` rounded to 8 bits as ``cv2.imwrite`` rounds. Our Harmonizer loads the
same weights from libcom's file layout. Images are 33–96 px; the low resolution is 64 (256 for the published
weights) to keep the ViT fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision import transforms

import inharmony
from bargainnet_reference import libcom_state_dict
from inharmony.cli import main
from inharmony.errors import DataError
from inharmony.inference import Predictor
from inharmony.inference.harmonizer import Harmonizer
from inharmony.inference.scorer import HarmonyScorer
from inharmony.models import load_state_dict_strict, read_state_dict
from inharmony.models.bargainnet import BargainNet
from inharmony.models.bargainnet import checkpoint_filter_fn as bargainnet_filter
from inharmony.models.pctnet import PCTNet, checkpoint_filter_fn
from pctnet_reference import LibcomPCTNet, libcom_pctnet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LOWRES = 64
SIZES = [(64, 64), (45, 70), (33, 97), (96, 37)]


def photo_and_mask(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured 8-bit photo whose middle is tinted, and its mask: 255 inside, a soft 1-px edge, 0 outside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 100 / (h + w)], -1) + rng.normal(30, 12, (h, w, 3))
    mask = np.zeros((h, w), np.uint8)
    top, bottom, left, right = h // 5, 4 * h // 5, w // 4, 3 * w // 4
    mask[top - 1 : bottom + 1, left - 1 : right + 1] = 100  # a soft edge
    mask[top:bottom, left:right] = 255
    base[top:bottom, left:right] *= [1.3, 0.8, 0.6]
    return np.clip(base, 0, 255).astype(np.uint8), mask


def libcom_photo(net: LibcomPCTNet, photo: np.ndarray, mask_u8: np.ndarray, lowres: int = LOWRES) -> np.ndarray:
    """libcom's ``ImageHarmonizationModel.__call__`` for PCTNet (RGB in, RGB out), on the reference module."""
    to_tensor = transforms.ToTensor()
    mask = mask_u8 / 255.0  # float64, as libcom's read_mask_opencv(...) / 255.0
    img_lr = cv2.resize(photo, (lowres, lowres))
    mask_lr = cv2.resize(mask, (lowres, lowres))
    img, img_lr = to_tensor(photo).float(), to_tensor(img_lr).float()
    mask, mask_lr = to_tensor(mask).float(), to_tensor(mask_lr).float()
    with torch.no_grad():
        out = net(img_lr, img, mask_lr, mask)
    out = torch.clamp(255.0 * out.permute(1, 2, 0), 0, 255).numpy()
    return np.rint(out).astype(np.uint8)  # cv2.imwrite's saturate_cast rounds to nearest


@pytest.fixture(scope="module")
def reference() -> LibcomPCTNet:
    return libcom_pctnet(seed=11)


@pytest.fixture(scope="module")
def libcom_file(reference: LibcomPCTNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("libcom") / "PCTNet.pth"
    torch.save(reference.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def pctnet(libcom_file: Path) -> PCTNet:
    model = PCTNet(lowres_size=LOWRES)
    load_state_dict_strict(model, checkpoint_filter_fn(read_state_dict(libcom_file), model), str(libcom_file))
    return model.eval()


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_photo_level_equals_libcom(reference, pctnet, size) -> None:
    photo, mask = photo_and_mask(*size, seed=sum(size))
    theirs = libcom_photo(reference, photo, mask)
    result = Harmonizer(pctnet, size=LOWRES, device="cpu")(photo, mask)
    ours = result.image
    assert ours.shape == photo.shape and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    print(f"PCTNet photo {size[0]}x{size[1]}: max |ours - libcom| = {diff.max()} grey level(s), "
          f"{(diff > 0).mean():.4%} of values differ")  # fmt: skip
    assert diff.max() <= 1
    assert np.array_equal(ours[mask == 0], photo[mask == 0])  # bit-identical outside the mask
    assert np.abs(ours[mask == 255].astype(int) - photo[mask == 255]).max() > 5  # the region did change
    assert np.array_equal(result.mask_uint8(), mask)


def test_empty_mask_is_an_error_and_the_wrong_roles_are_refused(pctnet) -> None:
    photo, mask = photo_and_mask(45, 70, seed=0)
    harmonizer = Harmonizer(pctnet, size=LOWRES, device="cpu")
    with pytest.raises(DataError, match="the mask is empty"):
        harmonizer(photo, np.zeros_like(mask))
    with pytest.raises(ValueError, match=r"madisnet is a localizer .* not a harmonizer"):
        Harmonizer("madisnet")
    with pytest.raises(ValueError, match=r"bargainnet is a scorer .* not a harmonizer"):
        Harmonizer("bargainnet")
    with pytest.raises(ValueError, match=r"pctnet is a harmonizer .* not a localizer"):
        Harmonizer(pctnet, size=LOWRES, localizer="pctnet")
    with pytest.raises(ValueError, match=r"s2am_maskfree is a harmonizer .* finds its region itself"):
        Harmonizer(pctnet, size=LOWRES, localizer="s2am_maskfree")
    with pytest.raises(ValueError, match=r"pctnet is a harmonizer .* not a scorer"):
        Harmonizer(pctnet, size=LOWRES, scorer="pctnet")


def test_s2am_stays_selectable() -> None:
    torch.manual_seed(0)
    s2am = inharmony.create_model("s2am", num_downs=5).eval()
    photo, mask = photo_and_mask(45, 70, seed=1)
    harmonizer = Harmonizer(s2am, size=64, device="cpu")
    assert not harmonizer.full_resolution
    result = harmonizer(photo, mask)
    assert np.array_equal(result.image[mask == 0], photo[mask == 0])


# --------------------------------------------------------------------------- inharmony fix


class BoxLocalizer(torch.nn.Module):
    """A stand-in localizer: probability 0.9 in the middle box, 0.05 elsewhere."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = torch.full_like(x[:, :1], 0.05)
        h, w = x.shape[-2:]
        mask[..., h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 0.9
        return {"mask": mask}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny PCTNet hub folder (low resolution 256, as the published weights), libcom's BargainNet file, photos."""
    root = tmp_path_factory.mktemp("fix")
    torch.manual_seed(0)
    net = inharmony.create_model("pctnet", depth=1, embed_dim=32)
    with torch.no_grad():
        net.to_params.bias.copy_(torch.tensor([1.2, 0, 0, 0, 0.9, 0, 0, 0, 0.8, 0.05, 0, 0]))  # visibly recolours
    net.save_pretrained(root / "pctnet_hub")
    torch.save(libcom_state_dict(seed=3), root / "BargainNet.pth")
    photos = root / "photos"
    photos.mkdir()
    for i, (h, w) in enumerate([(64, 96), (80, 72)]):
        photo, mask = photo_and_mask(h, w, seed=i)
        cv2.imwrite(str(photos / f"p{i}.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / f"p{i}_mask.png"), mask)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return {"root": root, "photos": photos, "pctnet": root / "pctnet_hub", "bargainnet": root / "BargainNet.pth"}


@pytest.fixture
def box_localizer(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every localizer the pipeline builds is the box (the CLI names madisnet: no download); the precisions asked."""
    import inharmony.inference.harmonizer as module

    asked: list[str | None] = []

    def build(spec, weights=None, device=None, batch_size=4, precision=None):
        asked.append(precision)
        return Predictor(BoxLocalizer(), size=32, device="cpu", batch_size=batch_size)

    monkeypatch.setattr(module, "resolve_localizer", build)
    return asked


def fix(files: dict[str, Path], *args: str) -> int:
    weights = ["--weights", str(files["pctnet"]), "--scorer_weights", str(files["bargainnet"])]
    return main(["fix", *args, *weights, "--device", "cpu"])


def test_fix_a_folder_writes_scores_and_never_overwrites(files, box_localizer, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert fix(files, str(files["photos"]), "--out", str(out), "--batch-size", "2") == 1  # broken.jpg skipped
    assert box_localizer == ["auto"]  # the localizer runs the fast path by default
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and "skipped" in captured.err
    lines = [line for line in captured.out.splitlines() if "harmony" in line]
    assert len(lines) == 2 and all(" -> " in line for line in lines), captured.out
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == [f"p{i}_{k}.png" for i in (0, 1) for k in ("fixed", "mask", "panel")]
    manifest = json.loads((out / ".inharmony-predict.json").read_text())
    assert set(manifest["outputs"]) == set(names)
    original = cv2.cvtColor(cv2.imread(str(files["photos"] / "p0.jpg")), cv2.COLOR_BGR2RGB)
    fixed = cv2.cvtColor(cv2.imread(str(out / "p0_fixed.png")), cv2.COLOR_BGR2RGB)
    mask = cv2.imread(str(out / "p0_mask.png"), cv2.IMREAD_GRAYSCALE)
    assert fixed.shape == original.shape and 0 < (mask > 0).mean() < 1
    assert np.array_equal(fixed[mask == 0], original[mask == 0])
    assert not np.array_equal(fixed[mask == 255], original[mask == 255])
    panel = cv2.imread(str(out / "p0_panel.png"))
    assert panel.shape[:2] == (64, 3 * 96)

    assert fix(files, str(files["photos"]), "--out", str(out)) == 1  # a re-run replaces its own outputs
    (out / "p1_panel.png").write_bytes(b"mine")  # ... but never a file it did not write
    assert fix(files, str(files["photos"]), "--out", str(out)) == 2
    assert "would overwrite" in capsys.readouterr().err
    assert (out / "p1_panel.png").read_bytes() == b"mine"


def test_fix_json_and_the_scores_equal_the_scorers(files, box_localizer, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    photo = files["photos"] / "p1.jpg"
    assert fix(files, str(photo), "--out", str(out), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert {k: report[k] for k in ("command", "written", "skipped")} == {"command": "fix", "written": 1, "skipped": 0}
    (entry,) = report["photos"]
    assert entry["input"] == str(photo) and entry["status"] == "written" and entry["region"] == "predicted"
    assert set(entry["outputs"]) == {"fixed", "mask", "panel"}
    assert all(Path(p).is_file() for p in entry["outputs"].values())
    assert 0 < entry["score_before"] <= 1 and 0 < entry["score_after"] <= 1
    assert entry["score_before"] != entry["score_after"]
    scorer = HarmonyScorer("bargainnet", weights=files["bargainnet"], localizer=None, device="cpu")
    mask = cv2.imread(entry["outputs"]["mask"], cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    fixed = cv2.cvtColor(cv2.imread(entry["outputs"]["fixed"]), cv2.COLOR_BGR2RGB)
    assert scorer(photo, mask) == pytest.approx(entry["score_before"], abs=1e-6)
    assert scorer(fixed, mask) == pytest.approx(entry["score_after"], abs=1e-6)


def test_fix_with_a_mask_and_its_bad_inputs(files, tmp_path, capsys) -> None:
    out = str(tmp_path / "out")
    photo = str(files["photos"] / "p0.jpg")
    assert fix(files, photo, "--mask", str(files["root"] / "p0_mask.png"), "--out", out, "--json") == 0
    (entry,) = json.loads(capsys.readouterr().out)["photos"]
    assert entry["region"] == "given"
    h, w = 64, 96
    bad = {
        "empty": (np.zeros((h, w), np.uint8), "the mask is empty"),
        "full": (np.full((h, w), 255, np.uint8), "covers the whole photo: there is no background"),
        "small": (np.zeros((h - 1, w), np.uint8), "but the photo is 96x64"),
    }
    for name, (mask, message) in bad.items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), mask)
        assert fix(files, photo, "--mask", str(tmp_path / f"{name}.png"), "--out", str(tmp_path / name)) == 2, name
        err = capsys.readouterr().err
        assert err.count("inharmony: error:") == 1 and message in err and "Traceback" not in err, err
    for args, message in [
        (["--model", "madisnet"], "madisnet is a localizer"),
        (["--localizer", "pctnet"], "pctnet is a harmonizer"),
        (["--scorer", "pctnet"], "pctnet is a harmonizer"),
    ]:
        assert main(["fix", photo, "--out", str(tmp_path / "roles"), *args, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert err.count("inharmony: error:") == 1 and message in err, err


def test_harmonize_defaults_to_pctnet(files, tmp_path) -> None:
    out = tmp_path / "out"
    photo, mask = files["photos"] / "p0.jpg", files["root"] / "p0_mask.png"
    assert main(["harmonize", str(photo), "--mask", str(mask), "--weights", str(files["pctnet"]),
                 "--out", str(out), "--device", "cpu"]) == 0  # fmt: skip
    fixed = cv2.cvtColor(cv2.imread(str(out / "p0_harmonized.png")), cv2.COLOR_BGR2RGB)
    expected = Harmonizer(inharmony.load("pctnet", weights=files["pctnet"]), device="cpu")(photo, mask).image
    assert np.array_equal(fixed, expected)


def test_scorer_is_built_from_a_module_too(files) -> None:
    model = BargainNet()
    load_state_dict_strict(model, bargainnet_filter(libcom_state_dict(seed=3)), "state")
    photo, mask = photo_and_mask(64, 96, seed=0)
    net = inharmony.load("pctnet", weights=files["pctnet"])
    scorer = HarmonyScorer(model.eval(), localizer=None, device="cpu")
    result = Harmonizer(net, device="cpu", scorer=scorer)(photo, mask)
    assert 0 < result.score_before <= 1 and 0 < result.score_after <= 1
    assert result.score_before == pytest.approx(scorer(photo, mask))
    assert result.panel().size == (3 * 96, 64)
