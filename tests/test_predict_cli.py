"""``inharmony predict``: a folder with one corrupt file, outputs for the rest, documented exit codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import inharmony
from inharmony import models as hub
from inharmony.cli import EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, main
from inharmony.inference import Predictor

TINY = {"decoder_channels": 8}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = inharmony.create_model("dirl_resnet18", **TINY).eval()
    return hub.save_pretrained(model, tmp_path_factory.mktemp("w") / "dirl18", model_kwargs=TINY), model


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (33, 47), dtype=np.uint8)).save(folder / "b.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _listing(folder):
    """The visible files of an output folder (the predict manifest is a dotfile)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _run(args, weights_folder):
    return main(["predict", *args, "--model", "dirl_resnet18", "--weights", str(weights_folder), "--size", "32"])


def test_folder_with_corrupt_files(photos, weights, tmp_path, capsys):
    out = tmp_path / "out"
    code = _run([str(photos), "--out", str(out)], weights[0])
    err = capsys.readouterr().err
    assert code == EXIT_SKIPPED == 1
    assert _listing(out) == ["a_mask.png", "a_overlay.png", "b_mask.png", "b_overlay.png"]
    assert "broken.jpg" in err and "notes.txt" in err and "2 input(s) skipped" in err
    assert "wrote 2 of 4 images" in err
    # Masks are at each image's own size and equal the Predictor's probabilities (8-bit).
    mask = np.asarray(Image.open(out / "a_mask.png"))
    expected = Predictor(weights[1], size=32, device="cpu")(photos / "a.jpg")
    assert mask.shape == (40, 56) and mask.dtype == np.uint8
    assert np.abs(mask.astype(np.float32) - expected * 255).max() <= 0.5 + 1e-3
    assert Image.open(out / "b_overlay.png").size == (47, 33)
    assert Image.open(out / "b_overlay.png").mode == "RGB"


def test_all_good_inputs_exit_0_and_binary_masks(photos, weights, tmp_path):
    (photos / "broken.jpg").unlink()
    (photos / "notes.txt").unlink()
    out = tmp_path / "out"
    assert _run([str(photos / "a.jpg"), str(photos / "b.png"), "--out", str(out), "--binary", "--no-overlay"],
                weights[0]) == EXIT_OK == 0
    assert _listing(out) == ["a_mask.png", "b_mask.png"]
    assert set(np.unique(np.asarray(Image.open(out / "a_mask.png")))) <= {0, 255}


def test_never_overwrites_an_input(photos, weights, tmp_path, capsys):
    (photos / "broken.jpg").unlink()
    (photos / "notes.txt").unlink()
    # An input that happens to be named like an output of another input, in the output folder.
    clash = photos / "a_mask.png"
    Image.fromarray(np.full((20, 20, 3), 7, np.uint8)).save(clash)
    before = clash.read_bytes()
    code = _run([str(photos / "a.jpg"), str(clash), "--out", str(photos)], weights[0])
    assert clash.read_bytes() == before
    # Refused before anything is written (exit 2), not one image skipped: nothing new in the folder.
    assert code == 2 and "would overwrite an input" in capsys.readouterr().err
    assert _listing(photos) == ["a.jpg", "a_mask.png", "b.png"]


def test_outputs_of_an_earlier_run_are_not_inputs(photos, weights, tmp_path):
    (photos / "broken.jpg").unlink()
    (photos / "notes.txt").unlink()
    assert _run([str(photos), "--out", str(photos)], weights[0]) == 0
    assert _run([str(photos), "--out", str(photos)], weights[0]) == 0  # no a_mask_mask.png
    assert not list(photos.glob("*_mask_mask.png"))


def test_same_names_from_two_folders_do_not_collide(photos, weights, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(other / "a.jpg")
    out = tmp_path / "out"
    _run([str(photos / "a.jpg"), str(other / "a.jpg"), "--out", str(out)], weights[0])
    assert Image.open(out / "a_mask.png").size == (56, 40) and Image.open(out / "a_1_mask.png").size == (24, 24)


def test_usage_errors_exit_2(tmp_path, weights, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run([str(empty), "--out", str(tmp_path / "o")], weights[0]) == EXIT_USAGE == 2
    assert "no input images" in capsys.readouterr().err
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(img)
    out = str(tmp_path / "o")
    assert main(["predict", str(img), "--model", "dirl", "--weights", str(weights[0]), "--out", out]) == 2
    assert "holds weights of 'dirl_resnet18', not 'dirl'" in capsys.readouterr().err
    assert main(["predict", str(img), "--model", "dirl", "--out", str(tmp_path / "o")]) == 2
    assert "no published weights" in capsys.readouterr().err
    assert main(["predict", "--out", "x"]) == 2  # no inputs: argparse's usage error


def test_lightning_options_are_handed_to_lightning_cli(monkeypatch):
    seen = {}

    def fake_run_lightning(subcommand, argv):
        seen["call"] = (subcommand, argv)
        return 0

    import inharmony.cli.lightning as train

    monkeypatch.setattr(train, "run_lightning", fake_run_lightning)
    argv = ["--config", "configs/dirl.yaml", "--ckpt_path", "best.ckpt"]
    assert main(["predict", *argv]) == 0
    assert seen["call"] == ("predict", argv)
    assert main(["predict", "--data.root=/data", "--trainer.accelerator", "cpu"]) == 0
    assert seen["call"][1] == ["--data.root=/data", "--trainer.accelerator", "cpu"]


def test_predict_runs_the_fast_path_auto_picks(photos, weights, tmp_path, monkeypatch):
    """No --precision: the masks come from optimize(precision="auto") (what this CPU runs fastest)."""
    import inharmony.inference as inference

    built = []

    class Recording(Predictor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append((kwargs.get("precision"), self.precision, self.backend))

    monkeypatch.setattr(inference, "Predictor", Recording)
    assert _run([str(photos / "a.jpg"), "--out", str(tmp_path / "o")], weights[0]) == EXIT_OK
    expected = inference.auto_precision("cpu")
    assert built == [("auto", expected, "torch")]  # conftest keeps "auto" on torch (no ONNX export per test)
