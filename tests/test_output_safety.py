"""Outputs never overwrite what the command did not write: predict, export and synth (issue 12, "Lost or overwritten").

Each test here failed on the code before the fix: ``predict DIR --out DIR`` replaced the user's
``car_mask.png``, a second run with the same file stem replaced the first run's mask, a full disk
left a 0-byte mask and a traceback, ``export --weights mine.pth --out mine.pth`` went on to replace
the weights, and ``synth --subset HCOCO`` into an existing dataset rewrote its split lists.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import inharmony
from inharmony import errors
from inharmony.cli import main
from inharmony.data.synth import synthesize
from inharmony.inference.export import export_onnx

# Looked up when used, so that every test runs (and fails for its own reason) on code without them.
MANIFEST_NAME = ".inharmony-predict.json"
OutputExistsError = getattr(errors, "OutputExistsError", FileExistsError)

TINY = {"decoder_channels": 8}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = inharmony.create_model("dirl_resnet18", **TINY).eval()
    return model.save_pretrained(tmp_path_factory.mktemp("w") / "dirl18", model_kwargs=TINY)


def _photo(path: Path, size=(40, 56), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _predict(args, weights_folder):
    return main(["predict", *map(str, args), "--model", "dirl_resnet18", "--weights", str(weights_folder),
                 "--size", "32", "--device", "cpu"])  # fmt: skip


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# --------------------------------------------------------------------------- predict


def test_users_mask_in_the_input_folder_is_never_overwritten(weights, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "car.jpg")
    users = _photo(photos / "car_mask.png", size=(40, 56), seed=1)  # the user's own mask, named like an output
    before = users.read_bytes()
    code = _predict([photos, "--out", photos], weights)
    err = capsys.readouterr().err
    assert users.read_bytes() == before
    assert code == 2 and "would overwrite" in err and "car_mask.png" in err
    assert _visible(photos) == ["car.jpg", "car_mask.png"]  # refused before anything was written


def test_users_file_in_out_folder_is_never_overwritten(weights, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    users = out / "car_overlay.png"
    users.write_bytes(b"my own picture")
    code = _predict([_photo(tmp_path / "car.jpg"), "--out", out], weights)
    assert users.read_bytes() == b"my own picture"
    assert code == 2 and "did not write" in capsys.readouterr().err
    assert _visible(out) == ["car_overlay.png"]


def test_rerun_replaces_its_own_outputs_but_not_an_edited_one(weights, tmp_path, capsys):
    photo = _photo(tmp_path / "car.jpg")
    out = tmp_path / "out"
    assert _predict([photo, "--out", out], weights) == 0
    assert _predict([photo, "--out", out], weights) == 0  # same input again: its own outputs are replaced
    assert _visible(out) == ["car_mask.png", "car_overlay.png"]
    recorded = json.loads((out / MANIFEST_NAME).read_text())["outputs"]
    assert set(recorded) == {"car_mask.png", "car_overlay.png"}
    # The user edits our mask: from then on it is theirs.
    (out / "car_mask.png").write_bytes(b"edited by hand")
    capsys.readouterr()
    assert _predict([photo, "--out", out], weights) == 2
    assert (out / "car_mask.png").read_bytes() == b"edited by hand"


def test_same_stem_in_two_runs_keeps_both_results(weights, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _photo(first / "car.jpg", size=(40, 56))
    _photo(second / "car.jpg", size=(24, 36), seed=2)
    out = tmp_path / "out"
    assert _predict([first / "car.jpg", "--out", out], weights) == 0
    assert _predict([second / "car.jpg", "--out", out], weights) == 0
    assert Image.open(out / "car_mask.png").size == (56, 40)  # the first run's result is kept
    assert Image.open(out / "car_1_mask.png").size == (36, 24)
    assert _predict([first / "car.jpg", "--out", out], weights) == 0  # and a re-run finds its own name again
    assert _visible(out) == ["car_1_mask.png", "car_1_overlay.png", "car_mask.png", "car_overlay.png"]


def test_out_is_a_file_or_under_a_file(weights, tmp_path, capsys):
    photo = _photo(tmp_path / "car.jpg")
    assert _predict([photo, "--out", photo], weights) == 2
    assert "--out" in capsys.readouterr().err
    assert _predict([photo, "--out", photo / "sub"], weights) == 2
    err = capsys.readouterr().err
    assert err.startswith("inharmony: error:") and "Traceback" not in err


def _full_disk(monkeypatch, folder: Path, allowed: int = 0) -> None:
    """Every write of a mask or overlay under ``folder`` fails with ENOSPC, after ``allowed`` such files."""
    state = {"left": allowed}
    real_open, real_fdopen = builtins.open, os.fdopen

    class Full:
        def __init__(self, fh):
            self._fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

    def guarded(fh, name: str):
        if str(folder) in name and name.rsplit("/", 1)[-1].split(".png")[0].endswith(("_mask", "_overlay")):
            if state["left"] <= 0:
                return Full(fh)
            if name.endswith("_overlay.png") or "_overlay.png." in name:
                state["left"] -= 1
        return fh

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        return guarded(fh, os.fspath(file)) if isinstance(file, (str, os.PathLike)) and "w" in mode else fh

    def fake_fdopen(fd, mode="r", *args, **kwargs):
        fh = real_fdopen(fd, mode, *args, **kwargs)
        return guarded(fh, os.readlink(f"/proc/self/fd/{fd}")) if "w" in mode else fh

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "fdopen", fake_fdopen)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name an open file")
def test_disk_full_leaves_no_partial_mask_and_says_so(weights, tmp_path, monkeypatch, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "a.jpg")
    _photo(photos / "b.jpg", seed=3)
    out = tmp_path / "out"
    _full_disk(monkeypatch, out)
    code = _predict([photos, "--out", out], weights)
    err = capsys.readouterr().err
    assert not [p for p in out.iterdir() if p.name.endswith(".png")]  # no 0-byte (or partial) mask or overlay
    assert code == 2, err  # nothing could be written
    assert "No space left on device" in err and "--out" in err and "Traceback" not in err

    monkeypatch.undo()
    _full_disk(monkeypatch, out, allowed=1)  # room for one image: the run is partial
    code = _predict([photos, "--out", out], weights)
    err = capsys.readouterr().err
    assert code == 1 and "stopped after 1 image" in err
    assert _visible(out) == ["a_mask.png", "a_overlay.png"]
    assert Image.open(out / "a_mask.png").size == (56, 40)


def test_threshold_out_of_range_is_a_usage_error(weights, tmp_path, capsys):
    photo = _photo(tmp_path / "car.jpg")
    for bad in ("1.5", "1", "0", "-0.2"):
        code = _predict([photo, "--out", tmp_path / "o", "--binary", "--threshold", bad], weights)
        assert code == 2 and "--threshold must be strictly between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- export


def test_export_never_replaces_the_weights(tmp_path, capsys):
    mine = tmp_path / "mine.pth"
    torch.save(inharmony.create_model("dirl_resnet18", **TINY).state_dict(), mine)
    before = mine.read_bytes()
    code = main(["export", "--model", "dirl_resnet18", "--weights", str(mine), "--out", str(mine), "--overwrite"])
    assert code == 2 and "--weights" in capsys.readouterr().err
    assert mine.read_bytes() == before
    hub = inharmony.create_model("dirl_resnet18", **TINY).save_pretrained(tmp_path / "hub", model_kwargs=TINY)
    code = main(["export", "--model", "dirl_resnet18", "--weights", str(hub), "--out", str(hub / "model.safetensors")])
    assert code == 2 and "inside the --weights folder" in capsys.readouterr().err


def test_export_refuses_to_replace_a_file_it_did_not_write(tmp_path):
    other = tmp_path / "graph.onnx"
    other.write_bytes(b"someone else's file")
    model = inharmony.create_model("dirl_resnet18", **TINY).eval()
    with pytest.raises(OutputExistsError, match=r"not an ONNX file written by inharmony export.*--overwrite"):
        export_onnx(model, other, size=32)
    assert other.read_bytes() == b"someone else's file"
    with pytest.raises(OutputExistsError, match="is a folder"):
        export_onnx(model, tmp_path, size=32)
    # An earlier export (it carries the marker) is not refused.
    from inharmony.inference.export import EXPORT_MARKER, is_inharmony_export

    earlier = tmp_path / "earlier.onnx"
    earlier.write_bytes(b"\x08\x09" + b"\x00" * 64 + EXPORT_MARKER.encode() + b"\x12\x050.1.0")
    assert is_inharmony_export(earlier) and not is_inharmony_export(other)


# --------------------------------------------------------------------------- synth


def _dataset_copy(fake_ihd: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root, ignore=shutil.ignore_patterns(".inharmony"))
    return root


def test_synth_into_an_existing_subset_of_someone_else_is_refused(fake_ihd, tmp_path, capsys):
    root = _dataset_copy(fake_ihd, tmp_path)
    lists = {p: p.read_bytes() for p in root.rglob("*.txt")}
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    with pytest.raises(OutputExistsError, match="'HCOCO' subset that inharmony synth did not write"):
        synthesize(root, n=3, seed=0, size=32, subset="HCOCO", progress=False)
    assert main(["synth", "--out", str(root), "--n", "3", "--size", "32", "--subset", "HCOCO"]) == 2
    assert "Choose another --subset" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in root.rglob("*.txt")} == lists
    assert sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file()) == files
    # A new subset beside the real ones is fine: the root lists are merged, the other subsets' entries kept.
    hcoco = [ln for ln in (root / "IHD_train.txt").read_text().splitlines() if ln.startswith("HCOCO/")]
    synthesize(root, n=3, seed=0, size=32, subset="HSynth", progress=False, test_fraction=0)
    merged = (root / "IHD_train.txt").read_text().splitlines()
    assert [ln for ln in merged if ln.startswith("HCOCO/")] == hcoco
    assert len([ln for ln in merged if ln.startswith("HSynth/")]) == 3


def test_synth_subset_named_in_root_lists_only_is_refused(tmp_path):
    (tmp_path / "IHD_train.txt").write_text("HCOCO/composite_images/c1_1_1.jpg\n")
    with pytest.raises(OutputExistsError, match=r"entries of HCOCO in IHD_train\.txt"):
        synthesize(tmp_path, n=2, seed=0, size=32, subset="HCOCO", progress=False)
    assert (tmp_path / "IHD_train.txt").read_text() == "HCOCO/composite_images/c1_1_1.jpg\n"


def test_synth_rerun_replaces_its_own_subset(tmp_path):
    synthesize(tmp_path, n=6, seed=0, size=32, progress=False, test_fraction=0)
    synthesize(tmp_path, n=3, seed=1, size=32, progress=False, test_fraction=0)
    base = tmp_path / "HSynth"
    assert len(list((base / "composite_images").iterdir())) == 3  # nothing left over from the first run
    assert len((base / "HSynth_train.txt").read_text().splitlines()) == 3
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".inharmony-partial-")]


def test_lightning_prediction_writer_never_replaces_a_file_it_did_not_write(tmp_path):
    """``inharmony predict --config ... --out DIR``: an existing mask (an input, an earlier run's) is refused."""
    import torch

    from inharmony.errors import OutputExistsError
    from inharmony.training.callbacks.predictions import PredictionMaskWriter

    theirs = tmp_path / "HCOCO" / "composite_images" / "c1_1_1.png"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"the user's own file")
    prediction = {
        "mask": torch.rand(2, 1, 8, 8),
        "path": ["HCOCO/composite_images/c1_1_1.jpg", "HCOCO/composite_images/c2_1_1.jpg"],
    }
    writer = PredictionMaskWriter(tmp_path)
    with pytest.raises(OutputExistsError, match=r"c1_1_1\.png exists and was not written by this run"):
        writer.write_on_batch_end(None, None, prediction, None, None, 0)
    assert theirs.read_bytes() == b"the user's own file"

    theirs.unlink()
    writer = PredictionMaskWriter(tmp_path)
    writer.write_on_batch_end(None, None, prediction, None, None, 0)
    assert theirs.read_bytes().startswith(b"\x89PNG")
    # the same name again in this run, for another input: a collision, not a silent replacement
    clash = {"mask": torch.rand(1, 1, 8, 8), "path": ["HCOCO/composite_images/c1_1_1.jpeg"]}
    with pytest.raises(OutputExistsError, match="both map to"):
        writer.write_on_batch_end(None, None, clash, None, None, 1)
    # overwrite=True replaces an earlier run's mask
    PredictionMaskWriter(tmp_path, overwrite=True).write_on_batch_end(None, None, prediction, None, None, 0)
