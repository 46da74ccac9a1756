"""The evaluation tensors are the DIRL authors' test loader's, by default, on every evaluation path.

The reference is tests/authors_loader_reference.py (restated from the authors' ``data/ihd_dataset.py`` and
``data/base_dataset.py``). Three paths must give its tensors (image within 1e-5, mask exactly):
(a) :class:`~inharmony.preprocessing.EvalPreprocess` on the file's bytes, (b) an
:class:`~inharmony.data.IHarmony4` item built with ``eval_transform(224)``, (c)
``Predictor.preprocess(path)``. The files are the ones that make pixel paths diverge: odd sizes, thin
strips, a 3000×2000 JPEG (reduced decoding would take it at 1/8), a large PNG, grey, 16-bit and RGBA
files, and a mask whose bilinear resize lands exactly on 0.5 (``>`` and ``>=`` differ there).
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
from authors_loader_reference import authors_test_image, authors_test_item
from inharmony.data import IHarmony4, eval_transform
from inharmony.data.decode import decode_mask
from inharmony.inference import Predictor
from inharmony.preprocessing import EVAL_PIXELS, FAST_PIXELS, OFFICIAL_PIXELS, EvalPreprocess

SIZE = 224
ATOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclasses.dataclass(frozen=True)
class _Case:
    stem: str  # composite "<stem>_1_1.<ext>", mask "<stem>_1.png"
    height: int
    width: int
    ext: str = "jpg"
    kind: str = "rgb"  # "rgb" | "grey" | "rgb16" | "rgba"
    orientation: int = 1


CASES = (
    _Case("odd", 457, 613),  # the example: reduced decoding and INTER_AREA both showed here
    _Case("small", 61, 97),  # enlarged to 224: bilinear either way
    _Case("strip", 9, 301),  # thin (Predictor's minimum side is 8)
    _Case("line", 1, 250, ext="png"),  # 1 px high: data path only
    _Case("huge", 2000, 3000),  # ≥ 8 × 224: the fast path decodes it at 1/8
    _Case("big", 900, 1300, ext="png"),
    _Case("half", 448, 448),  # an exact 2× shrink: mask values land on 0.5
    _Case("grey", 333, 250, kind="grey"),
    _Case("deep", 230, 310, ext="png", kind="rgb16"),
    _Case("alpha", 301, 199, ext="png", kind="rgba"),
    _Case("turned", 300, 410, orientation=6),  # EXIF: cv2.imread turns it upright
)
BY_STEM = {case.stem: case for case in CASES}


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """Gradients, noise and a sharp block: every resampling choice shows in the pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width * 220, yy / height * 200, (xx + yy) / (height + width) * 255], axis=-1)
    image = base + rng.normal(0, 14, (height, width, 3))
    image[height // 3 : height // 2 + 1, width // 4 : width // 2 + 1] = (240, 30, 30)
    return np.clip(image, 0, 255).astype(np.uint8)


def _mask(case: _Case) -> np.ndarray:
    h, w = case.height, case.width
    mask = np.zeros((h, w), np.uint8)
    if case.stem == "half":
        mask[:, 101:301] = 255  # odd left edge: the 2× shrink averages 0 and 1 → exactly 0.5
        return mask
    cv2.ellipse(mask, (w // 2, h // 2), (max(1, w // 3), max(1, h // 3)), 15, 0, 360, 255, -1)
    return mask


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A one-subset iHarmony4 tree (``HRef``) whose test list holds every case."""
    root = tmp_path_factory.mktemp("authors")
    subset = root / "HRef"
    for folder in ("composite_images", "masks", "real_images"):
        (subset / folder).mkdir(parents=True)
    for seed, case in enumerate(CASES):
        pixels = _photo(case.height, case.width, seed)
        comp = subset / "composite_images" / f"{case.stem}_1_1.{case.ext}"
        if case.kind == "grey":
            cv2.imwrite(str(comp), cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), [cv2.IMWRITE_JPEG_QUALITY, 90])
        elif case.kind == "rgb16":
            cv2.imwrite(str(comp), pixels[..., ::-1].astype(np.uint16) * 257 + seed)
        elif case.kind == "rgba":
            alpha = np.full((*pixels.shape[:2], 1), 128, np.uint8)
            cv2.imwrite(str(comp), np.concatenate([pixels[..., ::-1], alpha], axis=2))
        elif case.orientation != 1:
            picture = Image.fromarray(pixels)
            exif = picture.getexif()
            exif[0x0112] = case.orientation
            picture.save(comp, quality=90, exif=exif)
        else:
            cv2.imwrite(str(comp), pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        cv2.imwrite(str(subset / "real_images" / f"{case.stem}.{case.ext}"), pixels[..., ::-1])
        cv2.imwrite(str(subset / "masks" / f"{case.stem}_1.png"), _mask(case))
    names = "".join(f"{case.stem}_1_1.{case.ext}\n" for case in CASES)
    (subset / "HRef_test.txt").write_text(names)
    (subset / "HRef_train.txt").write_text(names)
    return root


def _paths(tree: Path, case: _Case) -> tuple[Path, Path]:
    subset = tree / "HRef"
    return subset / "composite_images" / f"{case.stem}_1_1.{case.ext}", subset / "masks" / f"{case.stem}_1.png"


def _assert_same(image: torch.Tensor, mask: torch.Tensor | None, ref_image: torch.Tensor, ref_mask, what: str):
    assert image.dtype == torch.float32 and image.shape == ref_image.shape == (3, SIZE, SIZE), what
    diff = (image - ref_image).abs().max().item()
    assert diff <= ATOL, f"{what}: image differs from the authors' by {diff}"
    if mask is not None:
        assert mask.shape == (1, SIZE, SIZE)
        assert set(np.unique(mask.numpy()).tolist()) <= {0.0, 1.0}
        differ = int((mask.numpy().astype(np.uint8) != ref_mask).sum())
        assert differ == 0, f"{what}: {differ} mask pixels differ from the authors'"


# Masks are compared wherever the authors' mask is meaningful: their loader never turns a mask with its
# composite's EXIF orientation (it stretches it), inharmony turns it (tests/test_data_decode_faults.py).
MASKED = [case.stem for case in CASES if case.orientation == 1]


def test_the_default_is_the_official_pixel_set():
    assert EVAL_PIXELS is OFFICIAL_PIXELS
    assert eval_transform(SIZE).pixels is OFFICIAL_PIXELS and EvalPreprocess(SIZE).min_source_side is None


def test_the_cases_hit_the_edges_they_are_for(tree):
    # The exact-0.5 mask makes ">" and ">=" differ; the reference keeps ">" (their np.where(mask > 0.5)).
    case = BY_STEM["half"]
    resized = cv2.resize(_mask(case).astype(np.float32) / 255, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    assert (resized == 0.5).sum() > 0
    _, ref_mask = authors_test_item(*_paths(tree, case))
    assert ref_mask.sum() == (resized > 0.5).sum() < (resized >= 0.5).sum()


@pytest.mark.parametrize("stem", [case.stem for case in CASES])
def test_eval_preprocess_on_bytes_gives_the_authors_tensors(tree, stem):
    case = BY_STEM[stem]
    composite, mask_path = _paths(tree, case)
    prep = EvalPreprocess(SIZE)
    rgb, stored = prep.decode(composite.read_bytes(), str(composite))
    assert stored == (case.height, case.width)
    if stem in MASKED:
        image, mask = prep(rgb, decode_mask(mask_path.read_bytes(), str(mask_path)))
        _assert_same(image, mask, *authors_test_item(composite, mask_path), what=f"EvalPreprocess {stem}")
    else:
        _assert_same(prep(rgb)[0], None, authors_test_image(composite), None, what=f"EvalPreprocess {stem}")


@pytest.fixture(scope="module")
def dataset_items(tree) -> dict[str, dict]:
    dataset = IHarmony4(tree, "test", le50=False, transform=eval_transform(SIZE))
    items = {}
    for index in range(len(dataset)):
        item = dataset[index]
        items[Path(item["path"]).name.split("_")[0]] = item
    return items


@pytest.mark.parametrize("stem", [case.stem for case in CASES])
def test_dataset_items_are_the_authors_tensors(tree, dataset_items, stem):
    composite, mask_path = _paths(tree, BY_STEM[stem])
    item = dataset_items[stem]
    if stem in MASKED:
        _assert_same(item["image"], item["mask"], *authors_test_item(composite, mask_path), what=f"IHarmony4 {stem}")
    else:
        _assert_same(item["image"], None, authors_test_image(composite), None, what=f"IHarmony4 {stem}")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(inharmony.create_model("dirl_resnet18", decoder_channels=8), device="cpu")


@pytest.mark.parametrize("stem", [case.stem for case in CASES if min(case.height, case.width) >= 8])
def test_predictor_preprocess_is_the_authors_tensor(tree, predictor, stem):
    case = BY_STEM[stem]
    composite, _ = _paths(tree, case)
    image, original = predictor.preprocess(composite)
    upright = (case.width, case.height) if case.orientation >= 5 else (case.height, case.width)
    assert original == upright
    _assert_same(image, None, authors_test_image(composite), None, what=f"Predictor {stem}")


def test_the_comparison_can_fail_the_fast_pixels_are_not_the_authors(tree):
    # The historical path, still available by name: measurably different on the odd-sized photo
    # (reduced decoding + INTER_AREA + mask >= 0.5), so the equalities above are not vacuous.
    composite, mask_path = _paths(tree, BY_STEM["odd"])
    fast = EvalPreprocess(SIZE, pixels=FAST_PIXELS)
    rgb, _ = fast.decode(composite.read_bytes())
    image, _ = fast(rgb, decode_mask(mask_path.read_bytes(), size=rgb.shape[:2]))
    ref_image, _ = authors_test_item(composite, mask_path)
    assert (image - ref_image).abs().max().item() > 0.05
    composite, mask_path = _paths(tree, BY_STEM["half"])
    rgb, _ = fast.decode(composite.read_bytes())
    _, mask = fast(rgb, decode_mask(mask_path.read_bytes(), size=rgb.shape[:2]))
    assert int((mask.numpy().astype(np.uint8) != authors_test_item(composite, mask_path)[1]).sum()) > 0


def test_the_official_vs_fast_bench_runs(capsys):
    from inharmony.benchmarks import eval_pixels

    assert eval_pixels.run(n=1, sizes="480x640", image_size=32) == 0
    out = capsys.readouterr().out
    for row in ("official", "fast", "fast - official", "decode+preprocess (ms/image)", "ground-truth pixels"):
        assert row in out
