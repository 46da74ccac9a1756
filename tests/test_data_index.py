"""Index and pairing: names of every subset's style, each list format, bad input."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from inharmony.data import (
    DataError,
    IHarmony4,
    build_index,
    pair_composite,
    parse_composite_name,
    read_list_file,
)

REFERENCE = Path("/work/shared/reference")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("c21070_1396052_1.jpg", ("c21070", "1396052", "1")),
        ("a0001_1_5.jpg", ("a0001", "1", "5")),
        ("f1000_2_1.jpg", ("f1000", "2", "1")),
        ("d1048-20120628-200951_1_1.jpg", ("d1048-20120628-200951", "1", "1")),
        ("HCOCO/composite_images/c1_2_3.jpg", ("c1", "2", "3")),
    ],
)
def test_parse_composite_name(name, expected):
    assert parse_composite_name(name) == expected


@pytest.mark.parametrize("bad", ["c21070.jpg", "c21070_1.jpg", "_1_1.jpg", "a__1.jpg"])
def test_parse_composite_name_rejects_unpairable(bad):
    with pytest.raises(DataError, match="cannot pair"):
        parse_composite_name(bad)


def test_pair_composite_hday2night():
    s = pair_composite("Hday2night", "d1048-20120628-200951_1_2.jpg")
    assert s.mask == "Hday2night/masks/d1048-20120628-200951_1.png"
    assert s.real == "Hday2night/real_images/d1048-20120628-200951.jpg"
    assert s.real_id == "Hday2night/d1048-20120628-200951"


def _expected(spec, split):
    return {(p.path, p.mask, p.real, p.subset, p.real_id) for p in spec if p.split == split}


def _got(samples):
    return {(s.composite, s.mask, s.real, s.subset, s.real_id) for s in samples}


@pytest.mark.parametrize("split", ["train", "test"])
def test_index_pairs_every_composite_like_the_fixture(fake_ihd, fake_ihd_spec, split):
    samples = build_index(fake_ihd, split)
    assert _got(samples) == _expected(fake_ihd_spec, split)
    assert len(samples) == len(_expected(fake_ihd_spec, split))


def test_root_list_and_per_subset_lists_agree(fake_ihd, tmp_path):
    per_subset = build_index(fake_ihd, "train")
    # The same tree without per-subset lists falls back to the root IHD_train.txt.
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    for p in root.glob("*/*_t*.txt"):
        p.unlink()
    assert _got(build_index(root, "train")) == _got(per_subset)


def test_explicit_list_file_and_subset_filter(fake_ihd, fake_ihd_spec):
    samples = build_index(fake_ihd, list_file="le50_test.txt", subsets=["Hday2night", "HFlickr"])
    want = {p.path for p in fake_ihd_spec if p.split == "test" and p.fg_fraction <= 0.5 and p.subset in
            ("Hday2night", "HFlickr")}  # fmt: skip
    assert {s.composite for s in samples} == want
    bare = build_index(fake_ihd, list_file=fake_ihd / "HCOCO" / "HCOCO_test.txt")
    assert {s.subset for s in bare} == {"HCOCO"}


def test_counts_per_subset(fake_ihd, fake_ihd_spec):
    ds = IHarmony4(fake_ihd, "test", le50=False)
    want = Counter(p.subset for p in fake_ihd_spec if p.split == "test")
    assert ds.counts() == dict(want)
    assert list(ds.counts()) == ["HCOCO", "HAdobe5k", "HFlickr", "Hday2night"]


def test_read_list_file_formats(tmp_path):
    f = tmp_path / "l.txt"
    f.write_text("# comment\nHCOCO/composite_images/c1_1_1.jpg\r\n\n  HFlickr/composite_images/f2_1_1.jpg  \n")
    assert read_list_file(f) == [("HCOCO", "c1_1_1.jpg"), ("HFlickr", "f2_1_1.jpg")]
    f.write_text("c1_1_1.jpg\n")
    assert read_list_file(f, subset="HCOCO") == [("HCOCO", "c1_1_1.jpg")]
    with pytest.raises(DataError, match="bare name"):
        read_list_file(f)
    f.write_text("HCOCO/masks/c1_1.png\n")
    with pytest.raises(DataError, match="not a composite"):
        read_list_file(f)


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="/work/shared (DIRL's le50 lists) is absent")
@pytest.mark.parametrize(
    ("split", "counts"),
    [
        ("train", {"HAdobe5k": 18652, "HCOCO": 38327, "HFlickr": 6967, "Hday2night": 309}),
        ("test", {"HAdobe5k": 2065, "HCOCO": 4256, "HFlickr": 783, "Hday2night": 133}),
    ],
)
def test_reads_dirl_le50_lists(split, counts):
    entries = read_list_file(REFERENCE / f"le50_{split}.txt")
    assert dict(Counter(s for s, _ in entries)) == counts
    # Every real name pairs (hyphenated Hday2night names, two-id HCOCO names).
    samples = [pair_composite(s, n) for s, n in entries]
    assert all(s.mask.endswith(".png") and s.real.endswith(".jpg") for s in samples)
    day = [s for s in samples if s.subset == "Hday2night"]
    assert all("-" in s.real_id for s in day)


# -- bad input ---------------------------------------------------------------------------------------


@pytest.fixture
def ihd_copy(fake_ihd, tmp_path) -> Path:
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    return root


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        build_index(tmp_path / "nope")


def test_missing_subfolder(ihd_copy):
    shutil.rmtree(ihd_copy / "HFlickr" / "masks")
    with pytest.raises(DataError, match=r"HFlickr/masks"):
        build_index(ihd_copy, "train")


def test_missing_list_files(ihd_copy):
    (ihd_copy / "IHD_test.txt").unlink()
    (ihd_copy / "HAdobe5k" / "HAdobe5k_test.txt").unlink()
    with pytest.raises(DataError, match=r"no test list for subset 'HAdobe5k'"):
        build_index(ihd_copy, "test")


@pytest.mark.parametrize("kind", ["composite_images", "masks", "real_images"])
def test_list_entry_with_missing_file(ihd_copy, kind):
    victim = {"composite_images": "c4404_9_1.jpg", "masks": "c4404_9.png", "real_images": "c4404.jpg"}[kind]
    (ihd_copy / "HCOCO" / kind / victim).unlink()
    with pytest.raises(DataError, match=victim.replace(".", r"\.")) as err:
        build_index(ihd_copy, "test")
    assert "HCOCO_test.txt" in str(err.value)


def test_empty_list(ihd_copy):
    (ihd_copy / "HCOCO" / "HCOCO_train.txt").write_text("\n")
    with pytest.raises(DataError, match="no entries"):
        build_index(ihd_copy, "train")
