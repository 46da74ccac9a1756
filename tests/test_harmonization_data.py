"""The data module gives a harmonizer the real image (same pixels as the composite), and only when asked."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from inharmony.constants import IMAGENET_MEAN, IMAGENET_STD
from inharmony.data import DataError, IHarmony4DataModule
from inharmony.data.synth import synthesize

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def _dm(root, **kw):
    kw = {"batch_size": 4, "num_workers": 0, "image_size": 32, "val_fraction": 0.3, "le50": False, **kw}
    return IHarmony4DataModule(str(root), **kw)


def test_real_only_when_asked(fake_ihd, tmp_path):
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    for real in root.glob("*/real_images/*"):
        real.write_bytes(b"not an image")  # a localizer never reads them: their content must not matter
    dm = _dm(root)
    dm.setup("test")
    assert "real" not in next(iter(dm.test_dataloader()))
    asking = _dm(root)
    asking.trainer = SimpleNamespace(lightning_module=SimpleNamespace(needs_real=True))  # a harmonizer's task
    assert asking.with_real
    asking.setup("test")
    with pytest.raises(DataError, match="real_images"):  # the harmonizer's loader does read them
        next(iter(asking.test_dataloader()))


def test_eval_real_is_the_resized_real_image(fake_ihd, fake_ihd_spec):
    dm = _dm(fake_ihd, with_real=True, image_size=48)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["real"].shape == (4, 3, 48, 48) and batch["real"].dtype == torch.float32
    spec = {p.path: p for p in fake_ihd_spec}
    for i, path in enumerate(batch["path"]):
        bgr = cv2.imread(str(fake_ihd / spec[path].real))
        want = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (48, 48), interpolation=cv2.INTER_LINEAR)
        got = (batch["real"][i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert np.array_equal(got, want)  # un-normalised RGB in [0, 1] of the authors' test resize


def test_train_real_takes_the_composites_crop_and_flip(tmp_path):
    root = tmp_path / "synth"
    synthesize(root, n=6, seed=1, size=40, progress=False)
    for comp in (root / "HSynth" / "composite_images").iterdir():  # composite := its real image
        real = root / "HSynth" / "real_images" / (comp.name.rsplit("_", 2)[0] + comp.suffix)
        shutil.copyfile(real, comp)
    dm = _dm(root, with_real=True, crop_scale=(0.3, 0.6), hflip=0.5, val_fraction=0.0, validation="none")
    dm.setup("fit")
    torch.manual_seed(0)
    for batch in dm.train_dataloader():
        composite = batch["image"] * STD + MEAN
        assert torch.allclose(composite, batch["real"], atol=1e-5)  # same random crop, same flip, same pixels


def test_synthetic_data_has_real_images(tmp_path):
    info = synthesize(tmp_path / "s", n=4, seed=0, size=32, progress=False)
    dm = _dm(info["root"], with_real=True, validation="none")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    diff = (batch["image"] * STD + MEAN - batch["real"]).abs().mean(dim=1, keepdim=True)
    inside, outside = diff[batch["mask"] > 0].mean(), diff[batch["mask"] == 0].mean()
    assert inside > 3 * outside  # the composite differs from its real image in its region (JPEG noise elsewhere)


def test_streaming_refuses_real(tmp_path):
    chunks = tmp_path / "chunks"
    for split in ("train", "test"):
        (chunks / split).mkdir(parents=True)
        (chunks / split / "index.json").write_text("{}")
    dm = IHarmony4DataModule(streaming=str(chunks), with_real=True, num_workers=0)
    with pytest.raises(DataError, match="real images"):
        dm.setup("fit")
