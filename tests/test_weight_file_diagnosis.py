"""Weight files that are not checkpoints are named for what they are; hub-folder arguments are never ignored.

Before the fix, random bytes, a Git LFS pointer or an HTML page named ``.pth``/``.ckpt`` were reported as
"holds Python objects ... pass --trust-checkpoint" or with torch's "weights_only=False will likely
succeed": advice to load unsafely a file that is no checkpoint at all. ``format_version: 2`` said
"written by 0.1.0, newer than the installed 0.1.0", and ``load(..., weights=<hub folder>, iterations=3)``
silently ran 12 iterations.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

import inharmony
from inharmony.cli import main
from inharmony.errors import CheckpointError, HubConfigError
from inharmony.models import read_state_dict
from inharmony.models.converters.lightning import read_lightning_checkpoint

LFS = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 212345678\n"
)
KINDS = {
    "random": (np.random.default_rng(0).bytes(4096), "is not a PyTorch (torch.save) or safetensors file"),
    "lfs": (LFS, "is a Git LFS pointer"),
    "html": (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>x</body></html>\n", "is an HTML page"),
    "empty": (b"", "is empty (0 bytes)"),
}
UNSAFE_ADVICE = ("trust", "weights_only=False", "Python objects")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("suffix", [".pth", ".ckpt", ".safetensors"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_non_checkpoints_are_diagnosed(tmp_path, kind, suffix):
    data, expected = KINDS[kind]
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as info:
        inharmony.load("dirl_resnet18", weights=path)
    message = str(info.value)
    assert expected in message and str(path) in message
    assert not any(advice in message for advice in UNSAFE_ADVICE), message
    if suffix == ".ckpt":  # the Lightning reader (also behind `fit/test --ckpt_path`) says the same
        with pytest.raises(CheckpointError, match=expected.split(" (")[0]):
            read_lightning_checkpoint(path, trust=False)


def test_cli_predict_names_the_problem(tmp_path, capsys):
    image = tmp_path / "x.jpg"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(LFS)
    out = str(tmp_path / "o")
    code = main(["predict", str(image), "--model", "dirl_resnet18", "--weights", str(bad), "--out", out])
    err = capsys.readouterr().err
    assert code == 2 and "git lfs pull" in err and "trust" not in err
    html = tmp_path / "bad.ckpt"
    html.write_bytes(KINDS["html"][0])
    code = main(["predict", str(image), "--model", "dirl_resnet18", "--weights", str(html), "--out", out])
    err = capsys.readouterr().err
    assert code == 2 and "the download saved a web page" in err and "trust" not in err


def test_real_pickles_with_objects_keep_the_trust_advice(tmp_path):
    ckpt = tmp_path / "mine.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": argparse.Namespace(model="dirl")}, ckpt)
    with pytest.raises(CheckpointError, match=r"holds Python objects .*argparse\.Namespace.*--trust-checkpoint"):
        read_lightning_checkpoint(ckpt)
    pth = tmp_path / "mine.pth"
    torch.save({"weight": torch.zeros(1), "opt": argparse.Namespace(lr=1)}, pth)
    with pytest.raises(CheckpointError, match="holds Python objects"):
        read_state_dict(pth)


def test_truncated_checkpoint_is_corrupt_not_unsafe(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(inharmony.create_model("dirl_resnet18", decoder_channels=8).state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        read_state_dict(path)
    assert not any(advice in str(info.value) for advice in UNSAFE_ADVICE)


def test_safetensors_content_is_read_whatever_the_name(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "weights.pth"  # a safetensors file under a .pth name
    save_file({"a": torch.ones(2)}, path)
    assert torch.equal(read_state_dict(path)["a"], torch.ones(2))


# --------------------------------------------------------------------------- hub folders


@pytest.fixture(scope="module")
def rsr_folder(tmp_path_factory):
    torch.manual_seed(0)
    small = {"feature_dim": 32, "hidden_dim": 16, "embed_dim": 16, "decoder_channels": [32, 16, 16, 8]}
    model = inharmony.create_model("rsrnet_resnet18", **small).eval()
    return model.save_pretrained(tmp_path_factory.mktemp("rsr") / "rsr18")


def test_constructor_arguments_apply_to_a_hub_folder(rsr_folder):
    model = inharmony.load("rsrnet_resnet18", weights=rsr_folder, iterations=3)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32))
    assert len(out["rsr_masks"]) == 3  # not the 12 recorded in config.json
    reference = inharmony.load("rsrnet_resnet18", weights=rsr_folder)
    pairs = zip(model.state_dict().values(), reference.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_constructor_arguments_that_do_not_fit_are_refused(rsr_folder):
    with pytest.raises(CheckpointError, match=r"saved with backbone='resnet18'; backbone='resnet34'"):
        inharmony.load("rsrnet_resnet18", weights=rsr_folder, backbone="resnet34")
    with pytest.raises(ValueError, match="does not take no_such_argument"):
        inharmony.load("rsrnet_resnet18", weights=rsr_folder, no_such_argument=1)


def test_newer_config_format_names_both_versions(rsr_folder, tmp_path):
    folder = tmp_path / "newer"
    folder.mkdir()
    config = json.loads((rsr_folder / "config.json").read_text())
    config["format_version"] = 2
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((rsr_folder / "model.safetensors").read_bytes())
    with pytest.raises(HubConfigError) as info:
        inharmony.load("rsrnet_resnet18", weights=folder)
    message = str(info.value)
    version = inharmony.__version__
    assert f"config format 2, newer than the format 1 that the installed inharmony {version} reads" in message
    assert f"newer than the installed {version}" not in message  # the old, self-contradicting wording
    config["format_version"] = "two"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(HubConfigError, match="'format_version' must be a positive integer"):
        inharmony.load("rsrnet_resnet18", weights=folder)
