"""The le50 selection, its cache, and the validation split by real-image id."""

from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest

from inharmony.data import ForegroundCache, IHarmony4, build_index, foreground_fraction, split_by_real_id


@pytest.mark.parametrize("split", ["train", "test"])
def test_le50_keeps_exactly_foregrounds_up_to_half(fake_ihd, fake_ihd_spec, split, tmp_path):
    ds = IHarmony4(fake_ihd, split, le50=True, cache_dir=tmp_path)
    want = [p.path for p in fake_ihd_spec if p.split == split and p.fg_fraction <= 0.5]
    assert sorted(s.composite for s in ds.samples) == sorted(want)
    # ... and it agrees with the le50 list written next to the data (DIRL's format).
    listed = (fake_ihd / f"le50_{split}.txt").read_text().split()
    assert sorted(s.composite for s in ds.samples) == sorted(listed)
    if split == "train":  # the boundary case (exactly 50 %) is kept, 50/96 is not
        assert "HCOCO/composite_images/c21070_73514_1.jpg" in {s.composite for s in ds.samples}
        assert "HFlickr/composite_images/f1001_1_1.jpg" not in {s.composite for s in ds.samples}


def test_foreground_fraction_matches_naive_count(fake_ihd, fake_ihd_spec):
    for p in fake_ihd_spec[:6]:
        mask = cv2.imread(str(fake_ihd / p.mask), cv2.IMREAD_GRAYSCALE)
        naive = sum(int(v) >= 128 for v in mask.ravel()) / mask.size
        assert foreground_fraction(fake_ihd / p.mask) == pytest.approx(naive)
        assert foreground_fraction(fake_ihd / p.mask) == pytest.approx(p.fg_fraction)


def test_cache_is_used_and_invalidated(fake_ihd, tmp_path):
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    shutil.rmtree(root / ".inharmony", ignore_errors=True)  # other tests may have cached the shared tree
    masks = [s.mask for s in build_index(root, "train")]
    victim_composite = "HCOCO/composite_images/c3303_555_1.jpg"  # 62.5 % foreground: not le50
    assert victim_composite not in {s.composite for s in IHarmony4(root, "train", cache_dir=tmp_path).samples}
    cache = ForegroundCache(root)
    first = cache.fractions(masks)
    assert cache.computed == len(set(masks))
    assert cache.path == root / ".inharmony" / "foreground.json" and cache.path.is_file()
    second = ForegroundCache(root)
    assert second.fractions(masks) == first and second.computed == 0

    # A changed mask (new content, size and mtime) is recomputed, the others are not.
    victim = root / "HCOCO" / "masks" / "c3303_555.png"
    full = np.full((96, 64), 255, np.uint8)
    full[:30] = 0
    cv2.imwrite(str(victim), full)
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = ForegroundCache(root)
    fresh = third.fractions(masks)
    assert third.computed == 1
    assert fresh["HCOCO/masks/c3303_555.png"] == pytest.approx(66 / 96)
    # Shrink the region below 50 %: the composite, excluded before, now enters the le50 selection.
    small = np.zeros((96, 64), np.uint8)
    small[:10] = 255
    cv2.imwrite(str(victim), small)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    ds = IHarmony4(root, "train", le50=True)
    assert victim_composite in {s.composite for s in ds.samples}


def test_cache_dir_option(fake_ihd, tmp_path):
    cache = ForegroundCache(fake_ihd, cache_dir=tmp_path / "c")
    cache.fractions([s.mask for s in build_index(fake_ihd, "test")])
    assert cache.path.parent == tmp_path / "c" and cache.path.is_file()


# -- validation split -------------------------------------------------------------------------------


def test_val_split_is_disjoint_by_real_id_and_seeded(fake_ihd):
    samples = build_index(fake_ihd, "train")
    train, val = split_by_real_id(samples, val_fraction=0.3, seed=1)
    assert train and val
    assert not {s.real_id for s in train} & {s.real_id for s in val}
    assert sorted(train + val, key=lambda s: s.composite) == sorted(samples, key=lambda s: s.composite)
    again = split_by_real_id(list(reversed(samples)), val_fraction=0.3, seed=1)[1]
    assert {s.composite for s in again} == {s.composite for s in val}
    n_ids = len({s.real_id for s in samples})
    assert len({s.real_id for s in val}) == round(0.3 * n_ids)
    others = {frozenset(s.real_id for s in split_by_real_id(samples, 0.3, seed)[1]) for seed in range(8)}
    assert len(others) > 1  # the seed matters


def test_val_split_edge_cases(fake_ihd):
    samples = build_index(fake_ihd, "train")
    assert split_by_real_id(samples, 0.0) == (samples, [])
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_real_id(samples, 1.0)


@pytest.mark.parametrize(
    "entries",
    [
        "not a dict",
        {"HCOCO/masks/c3303_555.png": "garbage"},
        {"HCOCO/masks/c3303_555.png": [1, 2]},
        {"HCOCO/masks/c3303_555.png": ["STAT", 7.5]},  # the file's real size/mtime, a fraction that cannot be
        {"HCOCO/masks/c3303_555.png": ["STAT", True]},
    ],
)
def test_a_malformed_cache_is_recomputed_not_a_traceback(fake_ihd, tmp_path, entries):
    import json

    from inharmony.data.le50 import _VERSION

    masks = [s.mask for s in build_index(fake_ihd, "train")]
    expected = ForegroundCache(fake_ihd, cache_dir=tmp_path / "clean").fractions(masks)
    cache = ForegroundCache(fake_ihd, cache_dir=tmp_path / "bad")
    cache.path.parent.mkdir(parents=True)
    if isinstance(entries, dict):
        for rel, entry in entries.items():
            if entry[0] == "STAT":
                st = (fake_ihd / rel).stat()
                entries[rel] = [st.st_size, st.st_mtime_ns, entry[1]]
    cache.path.write_text(json.dumps({"version": _VERSION, "entries": entries}))
    assert cache.fractions(masks) == expected  # the malformed entry was recomputed, not trusted


def test_a_split_list_that_is_not_utf8_names_the_line(tmp_path):
    from inharmony.data.index import read_list_file
    from inharmony.errors import DataError

    path = tmp_path / "le50_test.txt"
    path.write_bytes(b"HCOCO/composite_images/c1_1_1.jpg\nHCOCO/composite_images/c\xe91_1_2.jpg\n")
    with pytest.raises(DataError, match=r"le50_test.txt:2: not UTF-8 text \(byte 0xe9\)"):
        read_list_file(path)
