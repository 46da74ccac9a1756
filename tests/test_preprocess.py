"""One evaluation preprocessing: ``Predictor`` and the test loader give the network identical tensors.

The tree written here has the iHarmony4 layout (one subset, a test list), with the files that make
preprocessing diverge when two code paths exist: an odd-sized JPEG, a JPEG large enough for reduced
decoding (the fast pixels), a PNG, and a non-square JPEG with an EXIF orientation. For each,
``Predictor.preprocess`` and the ``IHarmony4DataModule`` test batch must be equal bit for bit
(``torch.equal``), at the published network size (224). Equality with the authors' loader itself is
tests/test_eval_pixels_authors.py's.

EXIF: composites are turned upright as OpenCV turns them, and the data path turns their masks the same
way (tests/test_data_decode_faults.py checks the mask's pixels).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import inharmony
from inharmony.constants import IMAGENET_MEAN, IMAGENET_STD
from inharmony.data import IHarmony4, IHarmony4DataModule, eval_transform, train_transform
from inharmony.imageio import decode_image, reduction_factor
from inharmony.inference import Predictor, resize_mask
from inharmony.preprocessing import (
    EVAL_PIXELS,
    FAST_PIXELS,
    OFFICIAL_PIXELS,
    PIXEL_PRESETS,
    EvalPreprocess,
    Normalize,
    eval_pixels,
)

SIZE = 224

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise and a sharp block: resampling choices show in the pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width * 220, yy / height * 200, (xx + yy) / (height + width) * 255], axis=-1)
    image = base + rng.normal(0, 12, (height, width, 3))
    image[height // 3 : height // 2, width // 4 : width // 2] = (240, 30, 30)
    return np.clip(image, 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class _File:
    name: str  # composite file name, "<real>_<fg>_<k>.<ext>"
    height: int  # as stored
    width: int
    orientation: int = 1


FILES = (
    _File("odd_1_1.jpg", 457, 613),  # odd size; 457 // 2 ≥ 224, so even this one decodes at 1/2
    _File("large_1_1.jpg", 1000, 1500),  # ≥ 4 × 224: decoded at 1/4
    _File("lossless_1_1.png", 300, 410),  # PNG: never reduced
    _File("turned_1_1.jpg", 480, 640, orientation=6),  # EXIF: stored turned, shown upright (640 × 480)
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A one-subset iHarmony4 tree (``HTest``) whose test list holds :data:`FILES`."""
    root = tmp_path_factory.mktemp("ihd")
    subset = root / "HTest"
    for folder in ("composite_images", "masks", "real_images"):
        (subset / folder).mkdir(parents=True)
    for i, spec in enumerate(FILES):
        real, fg, _ = spec.name.rsplit(".", 1)[0].split("_")
        ext = spec.name.rsplit(".", 1)[1]
        pixels = _photo(spec.height, spec.width, seed=i)
        picture = Image.fromarray(pixels)
        if ext == "jpg":
            exif = picture.getexif()
            if spec.orientation != 1:
                exif[0x0112] = spec.orientation
            picture.save(subset / "composite_images" / spec.name, quality=92, exif=exif)
        else:
            picture.save(subset / "composite_images" / spec.name)
        Image.fromarray(pixels).save(subset / "real_images" / f"{real}.{ext}")
        mask = np.zeros((spec.height, spec.width), np.uint8)
        mask[spec.height // 4 : spec.height // 2, spec.width // 5 : spec.width // 2] = 255
        cv2.imwrite(str(subset / "masks" / f"{real}_{fg}.png"), mask)
    (subset / "HTest_test.txt").write_text("".join(f"{spec.name}\n" for spec in FILES))
    (subset / "HTest_train.txt").write_text("".join(f"{spec.name}\n" for spec in FILES))
    return root


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    model = inharmony.create_model("dirl_resnet18", decoder_channels=8)
    return Predictor(model, device="cpu")


@pytest.fixture(scope="module")
def test_batch(tree) -> dict:
    dm = IHarmony4DataModule(str(tree), batch_size=2, eval_batch_size=len(FILES), num_workers=0, le50=False)
    dm.setup("test")
    (batch,) = list(dm.test_dataloader())
    return batch


def test_the_files_exercise_reduced_decoding_and_exif(tree):
    # Guards the premise of the tests below: with the fast pixels two of the JPEGs are decoded at reduced
    # scale, the PNG is not, and the EXIF composite is stored turned.
    factors = {}
    for spec in FILES:
        buf = (tree / "HTest" / "composite_images" / spec.name).read_bytes()
        rgb, stored = decode_image(buf, spec.name, SIZE)
        assert stored == (spec.height, spec.width)
        factors[spec.name] = reduction_factor(spec.height, spec.width, SIZE) if spec.name.endswith(".jpg") else 1
        assert max(rgb.shape[:2]) == -(-max(spec.height, spec.width) // factors[spec.name])
        assert decode_image(buf, spec.name)[0].shape[:2] in ((spec.height, spec.width), (spec.width, spec.height))
    assert factors == {"odd_1_1.jpg": 2, "large_1_1.jpg": 4, "lossless_1_1.png": 1, "turned_1_1.jpg": 2}
    with Image.open(tree / "HTest" / "composite_images" / "turned_1_1.jpg") as image:
        assert image.getexif()[0x0112] == 6


def test_predictor_and_test_loader_feed_identical_tensors(tree, predictor, test_batch):
    assert sorted(test_batch["path"]) == sorted(f"HTest/composite_images/{spec.name}" for spec in FILES)
    for path, loaded in zip(test_batch["path"], test_batch["image"], strict=True):
        predicted, _ = predictor.preprocess(tree / path)
        assert predicted.dtype == loaded.dtype == torch.float32
        assert predicted.shape == loaded.shape == (3, SIZE, SIZE)
        assert torch.equal(predicted, loaded), path


def test_exif_composite_reaches_the_network_upright(tree, predictor, test_batch):
    path = "HTest/composite_images/turned_1_1.jpg"
    loaded = test_batch["image"][test_batch["path"].index(path)]
    predicted, original = predictor.preprocess(tree / path)
    assert original == (640, 480) and torch.equal(predicted, loaded)
    # Restated by hand: the stored pixels at full size, turned 90° clockwise (orientation 6), give the same
    # tensor; not turned, another one.
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    stored = cv2.cvtColor(cv2.imdecode(np.fromfile(tree / path, np.uint8), flags), cv2.COLOR_BGR2RGB)
    upright = np.ascontiguousarray(np.rot90(stored, k=-1))
    assert torch.equal(predictor.preprocessing(upright)[0], loaded)
    assert not torch.equal(predictor.preprocessing(np.ascontiguousarray(stored))[0], loaded)


def test_folder_dataset_with_eval_transform_matches_too(tree, predictor):
    dataset = IHarmony4(tree, "test", le50=False, transform=eval_transform(SIZE))
    for item in (dataset[i] for i in range(len(dataset))):
        assert torch.equal(predictor.preprocess(tree / item["path"])[0], item["image"]), item["path"]


def test_predictor_preprocessing_is_the_eval_transform(predictor):
    prep = predictor.preprocessing
    assert isinstance(prep, EvalPreprocess) and isinstance(eval_transform(SIZE), EvalPreprocess)
    assert prep.size == eval_transform(SIZE).size == (SIZE, SIZE)
    assert prep.pixels is EVAL_PIXELS and eval_transform(SIZE).pixels is EVAL_PIXELS
    cfg = predictor.model.pretrained_cfg
    assert prep.normalize.mean == tuple(cfg.mean) == IMAGENET_MEAN
    assert prep.normalize.std == tuple(cfg.std) == IMAGENET_STD


# -- the pixel choices, each honoured ---------------------------------------------------------------------


def test_default_pixels_are_the_authors_test_loaders():
    # The authors' loader: full-size decode, INTER_LINEAR for image and mask, mask > 0.5 (issue 11).
    assert EVAL_PIXELS is OFFICIAL_PIXELS
    assert (OFFICIAL_PIXELS.reduced_decoding, OFFICIAL_PIXELS.area_for_downscale) == (False, False)
    assert (OFFICIAL_PIXELS.mask_threshold, OFFICIAL_PIXELS.mask_inclusive) == (0.5, False)
    # The historical data path stays available, by name, as the speed option.
    assert (FAST_PIXELS.reduced_decoding, FAST_PIXELS.area_for_downscale) == (True, True)
    assert (FAST_PIXELS.mask_threshold, FAST_PIXELS.mask_inclusive) == (0.5, True)
    assert PIXEL_PRESETS == {"official": OFFICIAL_PIXELS, "fast": FAST_PIXELS}
    assert eval_pixels("official") is OFFICIAL_PIXELS and eval_pixels("fast") is FAST_PIXELS
    with pytest.raises(ValueError, match="'official', 'fast'"):
        eval_pixels("authors")


def test_reduced_decoding_choice():
    buf = cv2.imencode(".jpg", _photo(457, 613, 0))[1].tobytes()
    fast = EvalPreprocess(SIZE, pixels=dataclasses.replace(EVAL_PIXELS, reduced_decoding=True))
    full = EvalPreprocess(SIZE, pixels=dataclasses.replace(EVAL_PIXELS, reduced_decoding=False))
    assert fast.min_source_side == SIZE and full.min_source_side is None
    assert fast.decode(buf)[0].shape == (229, 307, 3)
    assert full.decode(buf)[0].shape == (457, 613, 3)
    np.testing.assert_array_equal(full.decode(buf)[0], cv2.cvtColor(cv2.imdecode(np.frombuffer(buf, np.uint8), 1), 4))


@pytest.mark.parametrize("area", [True, False])
def test_interpolation_choice(area):
    image = _photo(90, 130, 1)
    prep = EvalPreprocess(48, pixels=dataclasses.replace(EVAL_PIXELS, area_for_downscale=area))
    expected = cv2.resize(image, (48, 48), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)
    assert torch.equal(prep(image)[0], Normalize()(expected))
    # Enlarging is bilinear either way.
    small = _photo(20, 30, 2)
    assert torch.equal(prep(small)[0], Normalize()(cv2.resize(small, (48, 48), interpolation=cv2.INTER_LINEAR)))


def test_mask_threshold_choice():
    image = np.zeros((8, 8, 3), np.uint8)
    mask = np.full((8, 8), 0.5, np.float32)
    mask[0, 0] = 0.25
    inclusive = EvalPreprocess(8, pixels=dataclasses.replace(EVAL_PIXELS, mask_inclusive=True))
    strict = EvalPreprocess(8, pixels=dataclasses.replace(EVAL_PIXELS, mask_inclusive=False))
    assert inclusive(image, mask)[1].sum() == 63 and strict(image, mask)[1].sum() == 0
    assert EvalPreprocess(8, pixels=dataclasses.replace(EVAL_PIXELS, mask_threshold=0.2))(image, mask)[1].sum() == 64


def test_dataset_follows_the_pixels_of_its_eval_transform(tree):
    full = dataclasses.replace(EVAL_PIXELS, reduced_decoding=False)
    item = IHarmony4(tree, "test", le50=False, transform=eval_transform(SIZE, pixels=full))[0]
    buf = (tree / item["path"]).read_bytes()
    rgb, _ = decode_image(buf)  # full size
    assert torch.equal(item["image"], EvalPreprocess(SIZE, pixels=full)(rgb)[0])


# -- shared pieces ---------------------------------------------------------------------------------------


def test_train_and_eval_share_the_normalisation_step():
    assert isinstance(train_transform(32).normalize, Normalize) and isinstance(eval_transform(32).normalize, Normalize)
    image = _photo(16, 16, 3)
    reference = (image.astype(np.float32) / 255 - np.array(IMAGENET_MEAN, np.float32)) / np.array(
        IMAGENET_STD, np.float32
    )
    np.testing.assert_allclose(Normalize()(image).permute(1, 2, 0).numpy(), reference, atol=1e-6)
    custom = Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))(np.full((2, 2, 3), 255, np.uint8))
    assert torch.allclose(custom, torch.ones(3, 2, 2))


def test_size_multiple_comes_from_the_registry():
    model = inharmony.create_model("dirl_resnet18", decoder_channels=8)
    assert model.pretrained_cfg.size_multiple == 16
    Predictor(model, size=48, device="cpu")
    with pytest.raises(ValueError, match="multiples of 16"):
        Predictor(model, size=40, device="cpu")
    model.pretrained_cfg = dataclasses.replace(model.pretrained_cfg, size_multiple=32)
    with pytest.raises(ValueError, match="multiples of 32"):
        Predictor(model, size=48, device="cpu")
    assert Predictor(model, size=64, device="cpu").size == (64, 64)


def test_resize_mask_is_public_and_bilinear():
    prob = torch.rand(8, 12, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.interpolate(prob[None, None], size=(30, 45), mode="bilinear", align_corners=False)
    for given in (prob, prob.numpy()):
        out = resize_mask(given, 30, 45)
        assert out.dtype == np.float32 and out.shape == (30, 45)
        np.testing.assert_allclose(out, expected[0, 0].numpy(), atol=1e-5)
