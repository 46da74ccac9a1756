"""The DataModule: batches, the val split, the streaming (litdata) source, skipping bad samples."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from inharmony.data import DataError, IHarmony4, IHarmony4DataModule, eval_transform
from inharmony.data.streaming import StreamingIHarmony4, optimize_ihd


def _dm(root, **kw):
    kw = {"batch_size": 4, "num_workers": 0, "image_size": 32, "val_fraction": 0.3, **kw}
    return IHarmony4DataModule(str(root), **kw)


def test_fit_batches(fake_ihd, fake_ihd_spec):
    dm = _dm(fake_ihd)
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "mask", "subset", "path"}
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (4, 1, 32, 32) and set(batch["mask"].unique().tolist()) <= {0.0, 1.0}
    assert len(batch["subset"]) == len(batch["path"]) == 4
    spec = {p.path: p for p in fake_ihd_spec}
    assert all(
        spec[p].subset == s and spec[p].split == "train" for p, s in zip(batch["path"], batch["subset"], strict=True)
    )
    train_ids = {s.real_id for s in dm.train_dataset.samples}
    val_ids = {s.real_id for s in dm.val_dataset.samples}
    assert train_ids and val_ids and not train_ids & val_ids
    n_le50_train = sum(p.split == "train" and p.fg_fraction <= 0.5 for p in fake_ihd_spec)
    assert len(dm.train_dataset) + len(dm.val_dataset) == n_le50_train
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape[1:] == (3, 32, 32)


def test_test_and_predict_use_the_test_split(fake_ihd, fake_ihd_spec):
    dm = _dm(fake_ihd, le50=False, eval_batch_size=64)
    dm.setup("test")
    (batch,) = list(dm.test_dataloader())
    assert sorted(batch["path"]) == sorted(p.path for p in fake_ihd_spec if p.split == "test")
    (again,) = list(dm.predict_dataloader())
    assert again["path"] == batch["path"] and torch.equal(again["image"], batch["image"])


def test_no_val_when_fraction_zero(fake_ihd):
    dm = _dm(fake_ihd, val_fraction=0.0)
    dm.setup("fit")
    assert dm.val_dataloader() == [] and len(dm.train_dataset) > 0


def test_root_with_a_synthetic_subset(fake_ihd, tmp_path):
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    synth = root / "HSynth"
    shutil.copytree(root / "HFlickr", synth)
    for split in ("train", "test"):
        (synth / f"HFlickr_{split}.txt").rename(synth / f"HSynth_{split}.txt")
    dm = _dm(root, le50=False)
    dm.setup("test")
    assert list(dm.test_dataset.counts()) == ["HCOCO", "HAdobe5k", "HFlickr", "Hday2night", "HSynth"]
    only = _dm(root, subsets=["HSynth"], le50=False)
    only.setup("test")
    assert set(only.test_dataset.counts()) == {"HSynth"}


def test_prepare_data_names_what_is_missing(fake_ihd, tmp_path):
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    shutil.rmtree(root / "Hday2night" / "real_images")
    with pytest.raises(DataError, match=r"Hday2night.*real_images"):
        _dm(root).prepare_data()
    with pytest.raises(DataError, match="not a directory"):
        _dm(tmp_path / "missing").prepare_data()
    with pytest.raises(ValueError, match="exactly one"):
        IHarmony4DataModule()


def test_bad_sample_raises_or_is_skipped(fake_ihd, tmp_path):
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    bad = root / "HAdobe5k" / "composite_images" / "a0002_1_1.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    ds = IHarmony4(root, "test", le50=False, transform=eval_transform(32))
    index = next(i for i, s in enumerate(ds.samples) if s.composite.endswith("a0002_1_1.jpg"))
    with pytest.raises(DataError, match=r"a0002_1_1\.jpg"):
        ds[index]
    skipping = IHarmony4(root, "test", le50=False, transform=eval_transform(32), on_error="skip")
    with pytest.warns(UserWarning, match=r"skipping bad sample.*a0002_1_1\.jpg"):
        item = skipping[index]
    assert item["path"] == skipping.samples[index + 1].composite and skipping.skipped == 1


def test_mismatched_mask_is_an_error_naming_both(fake_ihd, tmp_path):
    import cv2
    import numpy as np

    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    cv2.imwrite(str(root / "HFlickr" / "masks" / "f1003_1.png"), np.zeros((10, 10), np.uint8))
    ds = IHarmony4(root, "test", le50=False)
    index = next(i for i, s in enumerate(ds.samples) if s.mask.endswith("f1003_1.png"))
    with pytest.raises(DataError, match=r"f1003_1\.png is 10x10 but composite .*f1003_1_1\.jpg is 64x80"):
        ds[index]


# -- streaming ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chunks(fake_ihd, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chunks")
    counts = optimize_ihd(fake_ihd, out, val_fraction=0.3, seed=0, cache_dir=out / "cache")
    assert counts["train"] > 0 and counts["val"] > 0 and counts["test"] > 0
    return out


def _by_path(batches):
    items = {}
    for b in batches:
        for i, p in enumerate(b["path"]):
            items[p] = (b["image"][i], b["mask"][i], b["subset"][i])
    return items


@pytest.mark.parametrize("stage", ["val", "test"])
def test_streaming_gives_the_same_samples_as_the_folder(fake_ihd, chunks, stage):
    folder = _dm(fake_ihd)
    stream = IHarmony4DataModule(streaming=str(chunks), batch_size=4, num_workers=0, image_size=32, val_fraction=0.3)
    stream.prepare_data()
    for dm in (folder, stream):
        dm.setup("fit" if stage == "val" else "test")
    loader = "val_dataloader" if stage == "val" else "test_dataloader"
    a, b = _by_path(getattr(folder, loader)()), _by_path(getattr(stream, loader)())
    assert sorted(a) == sorted(b) and a
    for path in a:
        assert torch.equal(a[path][0], b[path][0]) and torch.equal(a[path][1], b[path][1])
        assert a[path][2] == b[path][2]


def test_streaming_train_covers_the_folder_train(fake_ihd, chunks):
    folder = _dm(fake_ihd)
    folder.setup("fit")
    ds = StreamingIHarmony4(str(chunks / "train"))
    assert len(ds) == len(folder.train_dataset)
    assert {ds[i]["path"] for i in range(len(ds))} == {s.composite for s in folder.train_dataset.samples}
    stream = IHarmony4DataModule(streaming=str(chunks), batch_size=4, num_workers=0, image_size=32, val_fraction=0.3)
    stream.setup("fit")
    batch = next(iter(stream.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["mask"].shape == (4, 1, 32, 32)


def test_streaming_missing_chunks(tmp_path):
    with pytest.raises(DataError, match="inharmony data optimize"):
        IHarmony4DataModule(streaming=str(tmp_path)).prepare_data()


# -- options: model selection, evaluation pixels, explicit lists, argument checks -----------------------


def _le50_train(spec):
    return sorted(p.path for p in spec if p.split == "train" and p.fg_fraction <= 0.5)


def test_validation_authors_trains_on_everything_and_validates_on_a_sample_of_it(fake_ihd, fake_ihd_spec):
    dm = _dm(fake_ihd, validation="authors", val_fraction=None, seed=42)
    dm.setup("fit")
    train = sorted(s.composite for s in dm.train_dataset.samples)
    val = [s.composite for s in dm.val_dataset.samples]
    assert train == _le50_train(fake_ihd_spec)  # the whole list: the papers' training set
    assert set(val) <= set(train) and len(val) == max(1, round(0.1 * len(train)))  # default fraction 0.1
    again = _dm(fake_ihd, validation="authors", val_fraction=None, seed=42)
    again.setup("fit")
    assert [s.composite for s in again.val_dataset.samples] == val
    picks = set()
    for seed in range(6):
        other = _dm(fake_ihd, validation="authors", val_fraction=0.3, seed=seed)
        other.setup("fit")
        picks.add(frozenset(s.composite for s in other.val_dataset.samples))
    assert len(picks) > 1


def test_validation_disjoint_and_none(fake_ihd, fake_ihd_spec):
    disjoint = _dm(fake_ihd, validation="disjoint", val_fraction=None)
    assert disjoint.val_fraction == 0.05
    disjoint.setup("fit")
    train, val = disjoint.train_dataset.samples, disjoint.val_dataset.samples
    assert not {s.real_id for s in train} & {s.real_id for s in val}
    assert sorted(s.composite for s in train + val) == _le50_train(fake_ihd_spec)
    none = _dm(fake_ihd, validation="none")
    none.setup("fit")
    assert none.val_dataloader() == [] and sorted(s.composite for s in none.train_dataset.samples) == _le50_train(
        fake_ihd_spec
    )


def test_seed_defaults_to_seed_everything(fake_ihd, monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "42")
    assert _dm(fake_ihd).seed == 42 and _dm(fake_ihd, seed=3).seed == 3
    monkeypatch.delenv("PL_GLOBAL_SEED")
    assert _dm(fake_ihd).seed == 0


def test_explicit_lists_are_not_filtered_again(fake_ihd, fake_ihd_spec, tmp_path):
    big_train = next(p.path for p in fake_ihd_spec if p.split == "train" and p.fg_fraction > 0.5)
    big_test = next(p.path for p in fake_ihd_spec if p.split == "test" and p.fg_fraction > 0.5)
    train_list, test_list = tmp_path / "train.txt", tmp_path / "test.txt"
    train_list.write_text("\n".join([*_le50_train(fake_ihd_spec)[:4], big_train]) + "\n")
    test_list.write_text(big_test + "\n")
    dm = _dm(fake_ihd, le50=True, train_list=str(train_list), test_list=str(test_list), validation="none")
    dm.prepare_data()
    dm.setup(None)
    assert big_train in {s.composite for s in dm.train_dataset.samples} and len(dm.train_dataset) == 5
    assert [s.composite for s in dm.test_dataset.samples] == [big_test]


def test_eval_pixels_option(fake_ihd):
    from inharmony.preprocessing import FAST_PIXELS, OFFICIAL_PIXELS

    dm = _dm(fake_ihd)
    assert dm.eval_transform.pixels is OFFICIAL_PIXELS and dm.hparams.eval_pixels == "official"
    assert _dm(fake_ihd, eval_pixels="fast").eval_transform.pixels is FAST_PIXELS
    dm.setup("test")
    assert dm.test_dataset.transform.min_source_side is None  # official: full-size decoding
    tt = _dm(fake_ihd, crop_min_foreground=None).train_transform
    assert tt.min_foreground is None and dm.train_transform.min_foreground == 10.0
    assert dm.train_transform.keep_prob == 0.05


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("batch_size", 0),
        ("eval_batch_size", 0),
        ("image_size", -32),
        ("num_workers", -1),
        ("validation", "random"),
        ("val_fraction", 1.0),
        ("crop_scale", (0.0, 1.0)),
        ("hflip", 2.0),
        ("crop_keep_prob", -0.1),
        ("eval_pixels", "authors"),
        ("on_error", "ignore"),
        ("subsets", []),
    ],
)
def test_bad_options_are_refused_up_front_naming_the_option(fake_ihd, option, value):
    with pytest.raises(DataError, match=rf"IHarmony4DataModule: {option} ") as info:
        _dm(fake_ihd, **{option: value})
    assert "\n" not in str(info.value)


def test_missing_root_and_streaming_authors_refused_up_front(tmp_path):
    with pytest.raises(DataError, match=r"root .* is not a directory"):
        IHarmony4DataModule(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="validation 'authors' needs the folder source"):
        IHarmony4DataModule(streaming=str(tmp_path), validation="authors")
