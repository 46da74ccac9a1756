"""Shared fixtures: a small fake iHarmony4 tree.

``fake_ihd`` writes, once per session, a tree with the real layout
``<root>/<Subset>/{composite_images,masks,real_images}/`` for all four subsets, file names in each
subset's real style (HCOCO ``c21070_1396052_1.jpg``, HAdobe5k ``a0001_1_1.jpg``, HFlickr
``f1000_1_1.jpg``, Hday2night ``d1048-20120628-200951_1_1.jpg``) and every kind of split list:
root ``IHD_train.txt``/``IHD_test.txt`` (subset-prefixed), per-subset ``<Subset>/<Subset>_train.txt``
(bare names) and DIRL's root ``le50_train.txt``/``le50_test.txt`` (prefixed, foreground ≤ 50 %).

The fixture is written independently of :mod:`inharmony.data` (plain NumPy + OpenCV), so tests
of the data code compare against what was written here, not against the code under test.
``fake_ihd_spec`` describes every composite: its split, subset, mask, real image and exact
foreground fraction. Images are 64–96 px; masks are 8-bit single-channel PNGs with values 0/255.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

SUBSETS = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night")

# precision="auto" (the CLI and app default) runs ONNX Runtime on fp32-only CPUs, exporting new weights
# first (~15-25 s each): the suite makes hundreds of fresh random-weight models, so it keeps torch there.
# tests/test_onnx_backend.py clears this to check the rule itself.
os.environ.setdefault("INHARMONY_AUTO_BACKEND", "torch")


@dataclasses.dataclass(frozen=True)
class FakeComposite:
    """One composite written by the fixture (paths relative to the root)."""

    path: str  # e.g. "HCOCO/composite_images/c101_1396052_1.jpg"
    mask: str
    real: str
    subset: str
    split: str  # "train" | "test"
    real_id: str  # subset-qualified real image id, e.g. "HCOCO/c101"
    fg_fraction: float  # exact fraction of mask pixels that are foreground
    height: int
    width: int


# Per subset: (real image stem, (height, width), [(foreground id, rows of foreground, split, n composites)]).
# The foreground is a full-width band of `rows` rows, so its fraction is exactly rows / height.
_PLAN: dict[str, list[tuple[str, tuple[int, int], list[tuple[str, int, str, int]]]]] = {
    "HCOCO": [
        ("c101", (64, 96), [("1396052", 16, "train", 2), ("1396060", 48, "test", 1)]),  # shared real
        ("c21070", (80, 80), [("73514", 40, "train", 1), ("73600", 8, "train", 1)]),  # 40/80 = 0.5 kept
        ("c3303", (96, 64), [("555", 60, "train", 1)]),  # 0.625 > 0.5: not le50
        ("c4404", (72, 88), [("9", 20, "test", 2)]),
    ],
    "HAdobe5k": [
        ("a0001", (96, 80), [("1", 24, "train", 2), ("2", 70, "train", 1)]),
        ("a0002", (64, 64), [("1", 10, "test", 1)]),
        ("a0003", (80, 96), [("1", 30, "train", 1), ("2", 41, "test", 1)]),  # 41/80 > 0.5
        ("a0004", (88, 72), [("1", 12, "train", 1)]),
    ],
    "HFlickr": [
        ("f1000", (72, 96), [("1", 18, "train", 1), ("2", 9, "test", 1)]),
        ("f1001", (96, 96), [("1", 50, "train", 2)]),  # 50/96 > 0.5
        ("f1002", (64, 80), [("1", 16, "train", 1)]),
        ("f1003", (80, 64), [("1", 20, "test", 1)]),
    ],
    "Hday2night": [
        ("d1048-20120628-200951", (64, 96), [("1", 16, "train", 2), ("2", 8, "test", 1)]),
        ("d90-20130101-120000", (96, 64), [("1", 24, "train", 1)]),
        ("d777-20121010-083015", (80, 80), [("1", 60, "test", 1)]),  # > 0.5
        ("d5-20110505-050505", (72, 72), [("1", 18, "train", 1)]),
    ],
}


def fake_ihd_plan() -> list[FakeComposite]:
    """Every composite the fixture writes, in a fixed order."""
    out = []
    for subset in SUBSETS:
        for stem, (h, w), fgs in _PLAN[subset]:
            for fg, rows, split, n in fgs:
                for k in range(1, n + 1):
                    out.append(
                        FakeComposite(
                            path=f"{subset}/composite_images/{stem}_{fg}_{k}.jpg",
                            mask=f"{subset}/masks/{stem}_{fg}.png",
                            real=f"{subset}/real_images/{stem}.jpg",
                            subset=subset,
                            split=split,
                            real_id=f"{subset}/{stem}",
                            fg_fraction=rows / h,
                            height=h,
                            width=w,
                        )
                    )
    return out


def _real_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    # Smooth gradients plus mild noise: compresses well and looks like a photo to a CNN.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w * 200, yy / h * 200, (xx + yy) / (h + w) * 255], axis=-1)
    img = base + rng.normal(0, 8, size=(h, w, 3)) + rng.uniform(0, 40, size=3)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_fake_ihd(root: Path, seed: int = 0) -> list[FakeComposite]:
    """Write the fake tree under ``root`` and return its plan."""
    rng = np.random.default_rng(seed)
    plan = fake_ihd_plan()
    for subset in SUBSETS:
        for sub in ("composite_images", "masks", "real_images"):
            (root / subset / sub).mkdir(parents=True, exist_ok=True)
    reals: dict[str, np.ndarray] = {}
    for item in plan:
        if item.real not in reals:
            reals[item.real] = _real_image(rng, item.height, item.width)
            cv2.imwrite(str(root / item.real), reals[item.real], [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows = round(item.fg_fraction * item.height)
        mask = np.zeros((item.height, item.width), np.uint8)
        top = (item.height - rows) // 2
        mask[top : top + rows] = 255
        if not (root / item.mask).exists():
            cv2.imwrite(str(root / item.mask), mask)
        comp = reals[item.real].astype(np.int16)
        shift = rng.integers(-60, 60, size=3)
        comp[mask > 0] += shift
        comp = np.clip(comp, 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / item.path), comp, [cv2.IMWRITE_JPEG_QUALITY, 95])

    for split in ("train", "test"):
        chosen = [p for p in plan if p.split == split]
        (root / f"IHD_{split}.txt").write_text("".join(f"{p.path}\n" for p in chosen))
        le50 = [p.path for p in chosen if p.fg_fraction <= 0.5]
        (root / f"le50_{split}.txt").write_text("".join(f"{p}\n" for p in le50))
        for subset in SUBSETS:
            names = [Path(p.path).name for p in chosen if p.subset == subset]
            (root / subset / f"{subset}_{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return plan


@pytest.fixture(scope="session")
def fake_ihd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a small fake iHarmony4 tree (all four subsets, real-style names, every list kind).

    Treat it as read-only: it is shared by the whole session. Copy it (``shutil.copytree``) to alter it.
    """
    root = tmp_path_factory.mktemp("fake_ihd")
    write_fake_ihd(root)
    return root


@pytest.fixture(scope="session")
def fake_ihd_spec(fake_ihd: Path) -> list[FakeComposite]:
    """What ``fake_ihd`` holds: one :class:`FakeComposite` per composite image."""
    return fake_ihd_plan()


@pytest.fixture
def tiny_cli_args(fake_ihd: Path, tmp_path: Path) -> Callable[[str], list[str]]:
    """``tiny_cli_args(model)``: LightningCLI options for a tiny CPU run of ``model`` on ``fake_ihd``.

    32 px, batch 4, no loader workers, no progress bar, summary, sanity check or sample panels; the run
    folder is ``tmp_path / "run"``.
    """

    def args(model: str) -> list[str]:
        return [
            "--model.model", model, "--data.root", str(fake_ihd), "--data.image_size", "32",
            "--data.batch_size", "4", "--data.num_workers", "0", "--trainer.accelerator", "cpu",
            "--trainer.devices", "1", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary",
            "false", "--trainer.num_sanity_val_steps", "0", "--samples.every_n_steps", "0",
            "--trainer.default_root_dir", str(tmp_path / "run"),
        ]  # fmt: skip

    return args


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Caches (exported ONNX graphs, ...) go to a folder of the run's, never the user's ~/.cache/inharmony."""
    import os

    before = os.environ.get("INHARMONY_CACHE")
    os.environ["INHARMONY_CACHE"] = str(tmp_path_factory.mktemp("inharmony-cache"))
    yield
    if before is None:
        os.environ.pop("INHARMONY_CACHE", None)
    else:
        os.environ["INHARMONY_CACHE"] = before


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: two OpenMP threads on a busy 2-core machine spin-wait, ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Loss options that keep a model's default loss offline (tests never download). MadisNet's loss embeds
# a frozen ImageNet VGG16 domain encoder; with random VGG weights it has the same parameters and graph.
OFFLINE_LOSS_OPTIONS = {"MadisNetLoss": {"vgg_weights": False}}


@pytest.fixture
def offline_loss_for_model():
    """``loss_for_model(name)`` with the options that keep it from downloading anything."""
    from inharmony.losses import get_loss_class, loss_for_model

    def build(name: str):
        return loss_for_model(name, **OFFLINE_LOSS_OPTIONS.get(get_loss_class(name).__name__, {}))

    return build
