"""The synthetic-composite generator and ``inharmony synth``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from inharmony.cli import main
from inharmony.data import DataError, IHarmony4, build_index, parse_composite_name, synthesize


@pytest.fixture(scope="module")
def synth_png(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_png")
    summary = synthesize(root, n=16, seed=3, size=64, ext="png", min_fg=0.1, max_fg=0.4, progress=False)
    assert summary["train"] + summary["test"] == 16
    return root


def _triples(root: Path, subset: str = "HSynth"):
    for name in sorted((root / subset / "composite_images").iterdir()):
        real, fg, _ = parse_composite_name(name.name)
        yield (
            cv2.imread(str(name)),
            cv2.imread(str(root / subset / "masks" / f"{real}_{fg}.png"), cv2.IMREAD_UNCHANGED),
            cv2.imread(str(root / subset / "real_images" / f"{real}{name.suffix}")),
        )


def test_layout_and_lists(synth_png):
    base = synth_png / "HSynth"
    assert {p.name for p in base.iterdir()} >= {"composite_images", "masks", "real_images", "HSynth_train.txt",
                                                "HSynth_test.txt", "synth.json"}  # fmt: skip
    train = build_index(synth_png, "train")
    test = build_index(synth_png, "test")
    assert len(train) + len(test) == 16 and len(test) == round(0.2 * 16)
    root_list = (synth_png / "IHD_train.txt").read_text().split()
    assert sorted(root_list) == sorted(s.composite for s in train)
    # every composite is le50 (max_fg ≤ 0.5), so the le50 dataset keeps them all
    assert len(IHarmony4(synth_png, "train", le50=True)) == len(train)


def test_foreground_bounds_and_region_only_change(synth_png):
    for composite, mask, real in _triples(synth_png):
        assert mask.ndim == 2 and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        fraction = np.count_nonzero(mask) / mask.size
        assert 0.1 <= fraction <= 0.4
        inside = mask > 0
        diff = np.abs(composite.astype(int) - real.astype(int))
        assert np.array_equal(composite[~inside], real[~inside])  # lossless PNG: the rest is identical
        assert diff[inside].mean() >= 0.04 * 255 * 0.9  # the region really changed


def test_jpeg_background_nearly_identical(tmp_path):
    synthesize(tmp_path, n=6, seed=1, size=96, progress=False)
    for composite, mask, real in _triples(tmp_path):
        # JPEG blocks touching the region may differ; far from it the two encodings agree closely.
        far = cv2.dilate(mask, np.ones((33, 33), np.uint8)) == 0
        if far.any():
            assert np.abs(composite.astype(int) - real.astype(int))[far].mean() < 1.0


def test_deterministic_per_seed(synth_png, tmp_path):
    again = tmp_path / "again"
    synthesize(again, n=16, seed=3, size=64, ext="png", min_fg=0.1, max_fg=0.4, progress=False)
    files = sorted(
        p.relative_to(synth_png) for p in synth_png.rglob("*") if p.is_file() and ".inharmony" not in p.parts
    )
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        if rel.name != "synth.json":  # holds the output path
            assert (synth_png / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = tmp_path / "other"
    synthesize(other, n=16, seed=4, size=64, ext="png", min_fg=0.1, max_fg=0.4, progress=False)
    assert (other / "HSynth" / "HSynth_train.txt").read_text() != (again / "HSynth" / "HSynth_train.txt").read_text()


def test_test_photos_are_never_seen_in_training(synth_png, tmp_path):
    log = json.loads((synth_png / "HSynth" / "synth.json").read_text())
    train_photos = {c["photo"] for c in log["composites"] if c["split"] == "train"}
    test_photos = {c["photo"] for c in log["composites"] if c["split"] == "test"}
    assert test_photos and not train_photos & test_photos
    assert test_photos <= set(log["test_photos"])
    # with test_photos=0 the split is by real image instead: photos may be shared, real images not
    synthesize(tmp_path, n=10, seed=0, size=48, test_photos=0, progress=False)
    train_ids = {s.real_id for s in build_index(tmp_path, "train")}
    assert train_ids.isdisjoint({s.real_id for s in build_index(tmp_path, "test")})


def test_user_masks_and_photo_folder(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(photos / f"my_photo {i}.jpg"), rng.integers(0, 255, (80, 120, 3), dtype=np.uint8))
    masks = tmp_path / "masks"
    masks.mkdir()
    square = np.zeros((40, 40), np.uint8)
    square[10:30, 10:30] = 255  # 25 %
    cv2.imwrite(str(masks / "square.png"), square)
    out = tmp_path / "out"
    synthesize(out, n=4, seed=0, photos=photos, masks=masks, size=40, progress=False, test_photos=1)
    for _, mask, _ in _triples(out):
        assert np.count_nonzero(mask) / mask.size == pytest.approx(0.25, abs=0.03)  # resized to the crop
    names = [p.name for p in (out / "HSynth" / "real_images").iterdir()]
    assert all(n.startswith("my-photo-") for n in names)  # '_' and spaces replaced: names still pair
    with pytest.raises(DataError, match="could not draw"):
        synthesize(tmp_path / "x", n=2, photos=photos, masks=masks, max_fg=0.2, progress=False)
    with pytest.raises(DataError, match="not a folder"):
        synthesize(tmp_path / "y", n=2, photos=tmp_path / "nope", progress=False)


def test_merges_into_an_existing_root(fake_ihd, tmp_path):
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    before = (root / "IHD_train.txt").read_text().split()
    synthesize(root, n=5, seed=0, size=48, progress=False)
    after = (root / "IHD_train.txt").read_text().split()
    assert after[: len(before)] == before and any(e.startswith("HSynth/") for e in after)
    synthesize(root, n=5, seed=1, size=48, progress=False)  # re-running replaces, not duplicates
    assert len((root / "IHD_train.txt").read_text().split()) == len(after)


def test_cli(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--n", "5", "--seed", "2", "--size", "48", "--quiet"]) == 0
    assert "train" in capsys.readouterr().out
    assert len(build_index(tmp_path, "train")) + len(build_index(tmp_path, "test")) == 5
    assert main(["synth", "--out", str(tmp_path), "--n", "2", "--photos", str(tmp_path / "none"), "--quiet"]) == 2
