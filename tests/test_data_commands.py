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
