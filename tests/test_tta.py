"""Flip test-time augmentation: FlipAverage against a hand-written loop, and its use by Predictor, test and demo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import inharmony
from inharmony.inference import Predictor
from inharmony.inference.tta import FlipAverage

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The flips of each mode, written out here (not read from inharmony.inference.tta) as the reference.
FLIPS = {"h": [(), (-1,)], "v": [(), (-2,)], "hv": [(), (-1,), (-2,), (-2, -1)]}


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return inharmony.create_model("dirl_tiny").eval()


def _naive_average(model: nn.Module, x: torch.Tensor, flips: list[tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The mean of the flipped-back masks and attention maps, one flip at a time."""
    masks, attention = [], []
    for dims in flips:
        out = model(torch.flip(x, dims)) if dims else model(x)
        masks.append(torch.flip(out["mask"], dims) if dims else out["mask"])
        attention.append([torch.flip(a, dims) if dims else a for a in out["attention"]])
    mean_attention = [sum(maps) / len(flips) for maps in zip(*attention, strict=True)]
    return {"mask": sum(masks) / len(flips), "attention": mean_attention}


@pytest.mark.parametrize("flips", ["h", "v", "hv"])
def test_flip_average_matches_a_loop_over_flips(tiny, flips):
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        expected = _naive_average(tiny, x, FLIPS[flips])
        got = FlipAverage(tiny, flips=flips)(x)
        plain = tiny(x)
    assert FlipAverage(tiny, flips=flips).passes == {"h": 2, "v": 2, "hv": 4}[flips]
    assert torch.allclose(got["mask"], expected["mask"], atol=1e-6)
    assert len(got["attention"]) == len(expected["attention"])
    for a, b in zip(got["attention"], expected["attention"], strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(got["mask"], plain["mask"], atol=1e-4)  # it did average something
    assert float(got["mask"].min()) >= 0.0 and float(got["mask"].max()) <= 1.0


def test_all_four_flips_make_the_mask_flip_with_the_image(tiny):
    # Averaging over the whole group of flips makes the output equivariant: flipping the input flips the
    # mask exactly (up to float rounding). A wrong flip-back (or a missing pass) breaks this.
    x = torch.randn(1, 3, 32, 32)
    averaged = FlipAverage(tiny, flips="hv")
    with torch.no_grad():
        base = averaged(x)["mask"]
        for dims in ((-1,), (-2,), (-2, -1)):
            assert torch.allclose(averaged(x.flip(dims))["mask"], base.flip(dims), atol=1e-5)
        plain = tiny(x)["mask"]
        assert not torch.allclose(tiny(x.flip(-1))["mask"], plain.flip(-1), atol=1e-4)


class _Mixed(nn.Module):
    """A map in bf16, a vector and an integer map: only floating 4-D tensors are averaged."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        ramp = torch.arange(x.shape[-1], dtype=torch.float32).expand_as(x[:, :1])
        return {
            "map": ramp.to(torch.bfloat16),
            "vector": x.mean(dim=(2, 3)),
            "labels": (ramp > 1).long(),
        }


def test_only_floating_maps_are_averaged_in_float32():
    x = torch.randn(2, 3, 4, 4)
    out = FlipAverage(_Mixed(), flips="h")(x)
    # the ramp and its mirror average to a constant; summed in float32, returned as float32
    assert out["map"].dtype == torch.float32 and torch.allclose(out["map"], torch.full_like(out["map"], 1.5))
    assert torch.equal(out["vector"], x.mean(dim=(2, 3)))  # the plain pass's
    assert torch.equal(out["labels"], (torch.arange(4).expand(2, 1, 4, 4) > 1).long())


def test_bad_options_are_refused(tiny):
    with pytest.raises(ValueError, match="flips must be one of 'h', 'v', 'hv', got 'd4'"):
        FlipAverage(tiny, flips="d4")
    with pytest.raises(ValueError, match=r"needs a \(B, C, H, W\) batch, got shape \(3, 32, 32\)"):
        FlipAverage(tiny)(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="tta must be None or one of"):
        Predictor(tiny, size=32, device="cpu", tta="both")


def test_predictor_tta_averages_the_flipped_masks(tiny):
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    plain = Predictor(tiny, size=32, device="cpu")
    tensor, _ = plain.preprocess(image)
    with torch.no_grad():
        expected = _naive_average(tiny, tensor[None], FLIPS["hv"])["mask"][0, 0].numpy()
    for precision in (None, "fp32"):
        predictor = Predictor(tiny, size=32, device="cpu", tta="hv", precision=precision)
        assert predictor.tta == "hv" and isinstance(predictor.model, FlipAverage)
        assert np.abs(predictor(image) - expected).max() < 1e-5
    assert np.abs(plain(image) - expected).max() > 1e-4


def test_cli_test_tta_scores_the_averaged_masks(fake_ihd, tiny_cli_args, tmp_path, capsys):
    from inharmony.cli import main
    from inharmony.data import IHarmony4DataModule
    from inharmony.metrics.functional import per_image_scores
    from inharmony.training.localization import LocalizationTask

    args = tiny_cli_args("dirl_tiny")
    assert main(["fit", *args, "--trainer.max_steps", "3"]) == 0
    ckpt = str(next((tmp_path / "run").rglob("last.ckpt")))
    tables = {}
    for tta in (None, "hv"):
        out = tmp_path / f"table-{tta}"
        assert main(["test", *args, "--ckpt_path", ckpt, "--out", str(out), *(["--tta", tta] if tta else [])]) == 0
        tables[tta] = json.loads((out / "metrics.json").read_text())["All"]
        assert ("flip TTA 'hv'" in (out / "metrics.md").read_text()) == (tta is not None)

    # The same numbers from the checkpoint, the test images and a loop over the four flips.
    task = LocalizationTask.load_from_checkpoint(ckpt, map_location="cpu").eval()
    data = IHarmony4DataModule(root=str(fake_ihd), image_size=32, batch_size=4, num_workers=0)
    data.setup("test")
    scores: dict[str, list[torch.Tensor]] = {"ap": [], "iou": []}
    with torch.no_grad():
        for batch in data.test_dataloader():
            mask = _naive_average(task.model, batch["image"], FLIPS["hv"])["mask"]
            for name, value in per_image_scores(mask, batch["mask"], metrics=("ap", "iou")).items():
                scores[name].append(value)
    for name in ("ap", "iou"):
        assert abs(float(torch.cat(scores[name]).nanmean()) - tables["hv"][name]) < 1e-6
    assert tables["hv"]["ap"] != tables[None]["ap"]

    # --tta belongs to test; elsewhere it would be silently ignored, so it is refused.
    assert main(["validate", *args, "--ckpt_path", ckpt, "--tta", "hv"]) == 2
    assert "--tta is for 'inharmony test' only" in capsys.readouterr().err


def test_cli_predict_tta_writes_the_averaged_mask(tmp_path):
    from PIL import Image

    from inharmony import models as hub
    from inharmony.cli import EXIT_OK, EXIT_USAGE, main

    torch.manual_seed(0)
    tiny = inharmony.create_model("dirl_tiny").eval()
    with torch.no_grad():  # a random network's mask is nearly flat; a steeper head makes the flips visible in 8 bits
        tiny.decoder.head.weight.mul_(30)
    folder = hub.save_pretrained(tiny, tmp_path / "w")
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "img.png")
    args = ["predict", str(tmp_path / "img.png"), "--model", "dirl_tiny", "--weights", str(folder), "--size", "32"]
    for tta in ("none", "hv"):
        extra = ["--tta", tta] if tta != "none" else []
        assert main([*args, *extra, "--no-overlay", "--out", str(tmp_path / tta)]) == EXIT_OK
    written = {t: np.asarray(Image.open(tmp_path / t / "img_mask.png"), np.float32) / 255 for t in ("none", "hv")}
    expected = Predictor(tiny, size=32, device="cpu", tta="hv")(tmp_path / "img.png")
    assert np.abs(written["hv"] - expected).max() <= 1 / 255 + 1e-6
    assert np.abs(written["none"] - expected).max() > 2 / 255  # without --tta: one pass, another mask
    assert main([*args, "--tta", "d4", "--out", str(tmp_path / "bad")]) == EXIT_USAGE
