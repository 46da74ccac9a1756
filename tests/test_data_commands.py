"""``inharmony data check|resize|optimize``."""

from __future__ import annotations

import shutil

import cv2
import numpy as np

from inharmony.cli import main
from inharmony.data import IHarmony4, build_index
from inharmony.data.streaming import StreamingIHarmony4


def test_resize_copy(fake_ihd, fake_ihd_spec, tmp_path):
    out = tmp_path / "small"
    assert main(["data", "resize", "--root", str(fake_ihd), "--out", str(out), "--max-side", "48"]) == 0
    for p in fake_ihd_spec:
        comp = cv2.imread(str(out / p.path))
        mask = cv2.imread(str(out / p.mask), cv2.IMREAD_UNCHANGED)
        assert max(comp.shape[:2]) == 48 and comp.shape[:2] == mask.shape
        assert abs(comp.shape[0] / comp.shape[1] - p.height / p.width) < 0.05
        assert set(np.unique(mask)) <= {0, 255}
        assert abs(np.count_nonzero(mask) / mask.size - p.fg_fraction) < 0.05
    assert {s.composite for s in build_index(out, "test")} == {p.path for p in fake_ihd_spec if p.split == "test"}
    # the le50 lists come from the original masks
    want = {p.path for p in fake_ihd_spec if p.split == "train" and p.fg_fraction <= 0.5}
    assert set((out / "le50_train.txt").read_text().split()) == want
    ds = IHarmony4(out, list_file="le50_train.txt", le50=False)
    assert {s.composite for s in ds.samples} == want
    assert main(["data", "resize", "--root", str(fake_ihd), "--out", str(fake_ihd)]) == 2


def test_check_counts_and_bad_files(fake_ihd, fake_ihd_spec, tmp_path, capsys):
    assert main(["data", "check", "--root", str(fake_ihd), "--decode", "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    test = [p for p in fake_ihd_spec if p.split == "test"]
    n_le50 = sum(p.fg_fraction <= 0.5 for p in test)
    assert f"test: {len(test)} composites, {n_le50} with foreground ≤ 50 % (le50)" in out
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    victim = root / "Hday2night" / "composite_images" / "d90-20130101-120000_1_1.jpg"
    victim.write_bytes(victim.read_bytes()[:300])
    assert main(["data", "check", "--root", str(root), "--decode"]) == 1
    out = capsys.readouterr().out
    assert "BAD: " in out and "d90-20130101-120000_1_1.jpg: " in out and "1 bad sample(s) in train" in out


def test_optimize_command(fake_ihd, tmp_path):
    out = tmp_path / "chunks"
    argv = ["data", "optimize", "--root", str(fake_ihd), "--out", str(out), "--val-fraction", "0.3"]
    assert main(argv) == 0
    assert (out / "inharmony.json").is_file()
    test = StreamingIHarmony4(str(out / "test"))
    assert len(test) == len(IHarmony4(fake_ihd, "test"))


def test_check_compares_the_derived_split_with_a_published_list(fake_ihd, fake_ihd_spec, tmp_path, capsys):
    test_le50 = sorted(p.path for p in fake_ihd_spec if p.split == "test" and p.fg_fraction <= 0.5)
    same = tmp_path / "le50_test.txt"
    same.write_text("\n".join(reversed(test_le50)) + "\n")
    argv = ["data", "check", "--root", str(fake_ihd), "--cache-dir", str(tmp_path / "c")]
    assert main([*argv, "--compare-list", str(same)]) == 0
    out = capsys.readouterr().out
    assert "compare le50 test (derived) with" in out and "same composites on both sides" in out
    # A list that misses one derived composite and names a composite the le50 rule excludes.
    excluded = next(p.path for p in fake_ihd_spec if p.split == "test" and p.fg_fraction > 0.5)
    other = tmp_path / "published.txt"
    other.write_text("\n".join([*test_le50[1:], excluded]) + "\n")
    assert main([*argv, "--compare-list", str(other), "--compare-split", "test"]) == 1
    out = capsys.readouterr().out
    subset = test_le50[0].split("/")[0]
    n_subset = sum(p.startswith(subset + "/") for p in test_le50)
    assert f"1 only in the derived split: {test_le50[0]}" in out
    assert f"1 only in the list: {excluded}" in out
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == [subset] and "le50" not in line)
    published = n_subset - 1 + (excluded.split("/")[0] == subset)
    assert row[1:] == [str(n_subset), str(published)]
    # The split is inferred from the list's name; the train list of the tree matches the derived train split.
    assert main([*argv, "--compare-list", str(fake_ihd / "le50_train.txt")]) == 0
    assert "compare le50 train (derived)" in capsys.readouterr().out


def test_check_decode_reports_masks_stored_as_0_1(fake_ihd, fake_ihd_spec, tmp_path, capsys):
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    victim = next(p for p in fake_ihd_spec if p.split == "test")
    mask = cv2.imread(str(root / victim.mask), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(root / victim.mask), (mask > 127).astype(np.uint8))  # 0/1 instead of 0/255
    assert main(["data", "check", "--root", str(root), "--decode"]) == 0
    out = capsys.readouterr().out
    assert "1 mask(s) stored as 0/1" in out
    train_part = out.split("test:")[0]
    assert "stored as 0/1" not in train_part
