"""Hostile files and options: refused fast, with the file, field or option named, and never half-written.

Before these fixes a hub folder's ``config.json`` with a width of 10⁹ failed in the allocator, a depth of 10⁶
hung, a std of 0 blamed the photo; a checkpoint calling ``os.system`` was "corrupt or truncated"; another
network's weights given to a converter were "another network of the S2AM code"; ``push --dry-run --out``
replaced the user's README; a full disk during ``convert`` left a partial file and a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import inharmony
from inharmony.cli import main
from inharmony.errors import CheckpointError, HubConfigError, OfficialCheckpointError
from inharmony.models import (
    check_model_args,
    from_pretrained,
    get_entrypoint,
    get_pretrained_cfg,
    list_models,
    read_state_dict,
)
from inharmony.models._bounds import constructor_hints
from inharmony.models._registry import get_arg_bounds

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {
    "dirl_tiny": {"decoder_channels": 8},
    "pctnet": {"embed_dim": 8, "depth": 1, "num_heads": 1, "lowres_size": 32},
    "s2am": {"num_downs": 5, "base_channels": 8},
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Hub folders written by save_pretrained, one per architecture the cases edit."""
    root = tmp_path_factory.mktemp("hub")
    torch.manual_seed(0)
    return {name: inharmony.create_model(name, **kw).save_pretrained(root / name) for name, kw in SMALL.items()}


def _edited(folder: Path, tmp_path: Path, section: str | None, field: str, value: object) -> Path:
    copy = tmp_path / f"edited_{folder.name}"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    (config[section] if section else config)[field] = value
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def _peak_rss_mb() -> float:
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


# --------------------------------------------------------------------------- §3 config.json is input

CONFIG_CASES = [
    ("dirl_tiny", "model_args", "decoder_channels", 10**9, "at most 1024"),
    ("dirl_tiny", "model_args", "encoder_widths", [10**9, 32, 64, 128], "item 0 must be at most 4096"),
    ("dirl_tiny", "model_args", "encoder_widths", [16, 32], "must hold 4 items"),
    ("dirl_tiny", "model_args", "decoder_channels", -8, "at least 1"),
    ("dirl_tiny", "model_args", "decoder_channels", float("nan"), "must be an integer"),
    ("dirl_tiny", "model_args", "decoder_channels", True, "must be an integer"),
    ("dirl_tiny", "model_args", "decoder_channels", "8", "must be an integer"),
    ("dirl_tiny", "model_args", "decoder_channels", 8.5, "must be an integer"),
    ("dirl_tiny", "model_args", "backbone", "resnet152", "must be one of 'resnet18', 'resnet34'"),
    ("dirl_tiny", "model_args", "no_such_argument", 1, "takes no argument 'no_such_argument'"),
    ("pctnet", "model_args", "depth", 10**6, "'depth' must be at most 64"),
    ("pctnet", "model_args", "embed_dim", 10**9, "'embed_dim' must be at most 4096"),
    ("pctnet", "model_args", "num_heads", 0, "'num_heads' must be at least 1"),
    ("pctnet", "model_args", "patch_size", 0, "'patch_size' must be at least 1"),
    ("pctnet", "model_args", "dropout", 2.0, "'dropout' must be at most 1"),
    ("pctnet", "model_args", "band_pixels", 0, "'band_pixels' must be at least 1"),
    ("s2am", "model_args", "num_downs", 10**6, "'num_downs' must be at most 10"),
    ("s2am", "model_args", "base_channels", 10**9, "'base_channels' must be at most 512"),
    ("dirl_tiny", "pretrained_cfg", "input_size", [3, 60000, 60000], "'input_size' must hold integers in [1, 4096]"),
    ("dirl_tiny", "pretrained_cfg", "input_size", [3, 224], "'input_size' must be a list of 3"),
    ("dirl_tiny", "pretrained_cfg", "input_size", "big", "'input_size' must be a list of 3"),
    ("dirl_tiny", "pretrained_cfg", "size_multiple", 0, "'size_multiple' must be an integer from 1 to 1024"),
    ("dirl_tiny", "pretrained_cfg", "size_multiple", 16.5, "'size_multiple' must be an integer"),
    ("dirl_tiny", "pretrained_cfg", "std", [0, 0, 0], "'std' must hold numbers in [0.001, 100]"),
    ("dirl_tiny", "pretrained_cfg", "std", [1.0, 1.0], "'std' must be a list of 3 numbers"),
    ("dirl_tiny", "pretrained_cfg", "mean", [float("nan"), 0.4, 0.4], "'mean' must hold numbers only"),
    ("dirl_tiny", "pretrained_cfg", "mean", [True, 0.4, 0.4], "'mean' must hold numbers only"),
    ("dirl_tiny", "pretrained_cfg", "task", "mine", "'task' must be one of"),
    ("dirl_tiny", "pretrained_cfg", "metrics", {"ap": "high"}, "'metrics' must map score names to finite numbers"),
    ("dirl_tiny", None, "pretrained_cfg", [1, 2], "'pretrained_cfg' must be an object"),
]


@pytest.mark.parametrize(("arch", "section", "field", "value", "expected"), CONFIG_CASES)
def test_absurd_config_values_are_refused_fast(folders, tmp_path, arch, section, field, value, expected):
    folder = _edited(folders[arch], tmp_path, section, field, value)
    inharmony.load(arch, weights=folders[arch])  # warm: imports and the converters' table
    before = _peak_rss_mb()
    for attempt in (lambda: inharmony.load(arch, weights=folder), lambda: from_pretrained(folder)):
        start = time.perf_counter()
        with pytest.raises(HubConfigError) as info:
            attempt()
        assert time.perf_counter() - start < 1.0
        message = str(info.value)
        assert str(folder / "config.json") in message and expected in message, message
        assert isinstance(info.value, CheckpointError) and isinstance(info.value, ValueError)
    assert _peak_rss_mb() - before < 300  # nothing large was allocated


def test_arguments_within_bounds_that_together_dwarf_the_weights_are_refused(folders, tmp_path):
    folder = _edited(folders["pctnet"], tmp_path, "model_args", "embed_dim", 4096)
    start = time.perf_counter()
    with pytest.raises(HubConfigError, match=r"config\.json: model_args .* do not belong together"):
        inharmony.load("pctnet", weights=folder)
    assert time.perf_counter() - start < 1.0


def test_huge_or_deeply_nested_config_is_refused(folders, tmp_path):
    folder = _edited(folders["dirl_tiny"], tmp_path, None, "notes", "x" * (2 << 20))
    with pytest.raises(HubConfigError, match=r"bytes; a config\.json written by save_pretrained is a few kB"):
        from_pretrained(folder)
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(HubConfigError, match="is not valid JSON"):
        from_pretrained(folder)
    digits = "1" + "0" * 5000  # Python refuses to parse an integer of over 4300 digits
    (folder / "config.json").write_text(f'{{"architecture": "dirl_tiny", "model_args": {{"width": {digits}}}}}')
    with pytest.raises(HubConfigError, match="is not valid JSON"):
        from_pretrained(folder)


def test_cli_predict_names_the_file_and_the_field(folders, tmp_path, capsys):
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    for field, value in (("decoder_channels", 10**9), ("encoder_widths", [1, 2, 3])):
        folder = _edited(folders["dirl_tiny"], tmp_path / field, "model_args", field, value)
        argv = ["predict", str(image), "--model", "dirl_tiny", "--weights", str(folder), "--out", str(tmp_path / "o")]
        code = main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("inharmony: error: "), err
        assert "config.json" in lines[0] and field in lines[0] and "Traceback" not in err
    folder = _edited(folders["dirl_tiny"], tmp_path / "std", "pretrained_cfg", "std", [0.0, 0.0, 0.0])
    code = main(["predict", str(image), "--model", "dirl_tiny", "--weights", str(folder), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "'std'" in err and "NaN" not in err and "photo" not in err


def test_every_constructor_argument_of_every_model_is_bounded():
    for name in list_models():
        hints = constructor_hints(get_entrypoint(name))
        assert hints is not None, f"{name}: the entry function must annotate its return type with the model class"
        bounds = get_arg_bounds(name)
        downloads = set(get_pretrained_cfg(name).download_args)
        unbounded = [arg for arg, hint in hints.items() if hint is not bool and arg not in downloads | set(bounds)]
        assert not unbounded, f"{name}: no Bound for {unbounded}"
        for arg, bound in bounds.items():  # each bound refuses what is past it, naming the argument
            if bound.choices:
                bad = "no-such-choice"
            elif bound.length is not None:
                bad = [bound.low] * (bound.length[1] + 1)
            else:
                bad = bound.high + 1 if isinstance(bound.high, int) else bound.high + 0.5
            with pytest.raises(ValueError, match=f"'{arg}'"):
                check_model_args(name, {arg: bad})


def test_the_api_and_lightning_checkpoints_are_checked_too(tmp_path):
    with pytest.raises(ValueError, match="'depth' must be at most 64"):
        inharmony.create_model("pctnet", depth=10**6)
    with pytest.raises(ValueError, match="'std' must hold numbers in"):
        inharmony.models.PretrainedCfg("x", std=(0.0, 0.0, 0.0))
    ckpt = tmp_path / "hostile.ckpt"
    hparams = {"model": "dirl_tiny", "model_kwargs": {"decoder_channels": 10**9}}
    torch.save({"state_dict": {}, "hyper_parameters": hparams}, ckpt)
    with pytest.raises(CheckpointError, match=r"hostile\.ckpt: hyper-parameters: .*'decoder_channels' must be at most"):
        inharmony.load("dirl_tiny", weights=ckpt)


# --------------------------------------------------------------------------- §4 files that ask to run code


class _Calls:
    """Pickles as a call of ``function(*args)``: pickling it runs nothing, unpickling it would."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _hostile_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files that would create ``folder/pwned`` if unpickled: ``{case: (path, the object named)}``."""
    sentinel = folder / "pwned"
    shell = f"touch {sentinel}"
    files = {}
    files["zip_os_system"] = (folder / "a.pth", "posix.system" if os.name == "posix" else "nt.system")
    torch.save({"weight": torch.zeros(1), "x": _Calls(os.system, shell)}, files["zip_os_system"][0])
    files["zip_exec"] = (folder / "b.pth", "builtins.exec")
    torch.save({"weight": torch.zeros(1), "x": _Calls(exec, f"open({str(sentinel)!r}, 'w')")}, files["zip_exec"][0])
    files["protocol4"] = (folder / "c.pth", files["zip_os_system"][1])
    files["protocol4"][0].write_bytes(pickle.dumps({"x": _Calls(os.system, shell)}, protocol=4))
    files["inst"] = (folder / "d.pth", "os.system")  # protocol 0's INST opcode, written by hand
    files["inst"][0].write_bytes(b"\x80\x02(S'" + shell.encode() + b"'\nios\nsystem\n.")
    files["legacy_global"] = (folder / "e.pth", "subprocess.Popen")  # GLOBAL + REDUCE, by hand
    files["legacy_global"][0].write_bytes(b"\x80\x02csubprocess\nPopen\nX\x04\x00\x00\x00true\x85R.")
    return files


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("case", ["zip_os_system", "zip_exec", "protocol4", "inst", "legacy_global"])
def test_a_file_that_asks_to_run_code_is_named_so_and_never_run(tmp_path, case):
    path, name = _hostile_files(tmp_path)[case]
    for trust in (False, True):  # trusting a file's objects is not trusting os.system
        with pytest.raises(CheckpointError) as info:
            read_state_dict(path, trust=trust, trust_option="--trust-checkpoint")
        message = str(info.value)
        assert "asks to run code" in message and name in message, message
        assert not any(word in message for word in ("corrupt", "truncated", "trust", "weights_only=False")), message
    assert not (tmp_path / "pwned").exists()


def test_code_in_every_reader_and_on_the_command_line(tmp_path, capsys):
    path, name = _hostile_files(tmp_path)["zip_os_system"]
    with pytest.raises(CheckpointError, match=f"asks to run code.*{name}"):
        inharmony.load("dirl_tiny", weights=path, trust_checkpoint=True)
    ckpt = tmp_path / "evil.ckpt"
    shutil.copy(path, ckpt)
    with pytest.raises(CheckpointError, match=f"asks to run code.*{name}"):
        inharmony.load("dirl_tiny", weights=ckpt, trust_checkpoint=True)
    authors = tmp_path / "authors"
    authors.mkdir()
    for file in ("encoder_epochbest.pth", "decoder_epochbest.pth"):
        shutil.copy(path, authors / file)
    with pytest.raises(OfficialCheckpointError, match=f"asks to run code.*{name}"):
        inharmony.load("dirl", weights=authors)
    libcom = tmp_path / "libcom"
    libcom.mkdir()
    shutil.copy(path, libcom / "Inharmonious_G.pth")
    with pytest.raises(OfficialCheckpointError, match=f"asks to run code.*{name}"):
        inharmony.load("madisnet", weights=libcom)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    code = main(["predict", str(image), "--model", "dirl_tiny", "--weights", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("inharmony: error:") == 1 and "asks to run code" in err and "trust" not in err
    assert not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------- §4 foreign files named for what they are


def test_another_networks_weights_are_named(folders, tmp_path, capsys):
    pct = folders["pctnet"] / "model.safetensors"
    code = main(["convert", "s2am-official", "--file", str(pct), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "is not a checkpoint of the S2AM authors' code" in err and "'pctnet'" in err, err
    assert "another network of the S2AM code" not in err
    with pytest.raises(CheckpointError, match=r"inharmony's 'pctnet' .*not the weights of 'dirl_tiny'"):
        inharmony.load("dirl_tiny", weights=pct)
    tiny = folders["dirl_tiny"] / "model.safetensors"
    code = main(["convert", "harmony-libcom", "--file", str(tiny), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "is not libcom's PCTNet.pth or BargainNet.pth" in err and "'dirl_tiny'" in err, err


def test_the_authors_files_given_to_the_wrong_loader_are_named(folders, tmp_path):
    from inharmony.models.converters.official_dirl import dirl_to_official_state_dicts

    encoder, decoder = dirl_to_official_state_dicts(inharmony.create_model("dirl_tiny"))
    torch.save({"state_dict": encoder}, tmp_path / "encoder_epochbest.pth")
    with pytest.raises(CheckpointError, match="holds an encoder file of the DIRL authors' checkpoints"):
        inharmony.load("pctnet", weights=tmp_path / "encoder_epochbest.pth")
    libcom = tmp_path / "libcom"
    libcom.mkdir()
    torch.save({"state_dict": decoder}, libcom / "Inharmonious_G.pth")
    with pytest.raises(OfficialCheckpointError, match=r"is not the localizer .* it holds a decoder file of the DIRL"):
        inharmony.load("madisnet", weights=libcom)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(folders["pctnet"] / "model.safetensors", wrong / "encoder_epochbest.pth")
    torch.save({"state_dict": decoder}, wrong / "decoder_epochbest.pth")
    with pytest.raises(OfficialCheckpointError, match=r"is not the encoder file .* inharmony's 'pctnet'"):
        inharmony.load("dirl", weights=wrong)


def test_a_folder_of_another_format_is_named(tmp_path, capsys):
    madis, dirl = tmp_path / "madis", tmp_path / "dirl"
    for folder, names in ((madis, ("g_epochbest.pth", "ihdrnet_epochbest.pth")), (dirl, ("encoder_epochbest.pth",))):
        folder.mkdir()
        for name in names:
            (folder / name).write_bytes(b"")
    code = main(["convert", "dirl-official", "--dir", str(madis), "--out", str(tmp_path / "o")])
    assert code == 2 and "holds the MadisNet authors'" in capsys.readouterr().err
    code = main(["convert", "madisnet-libcom", "--dir", str(dirl), "--out", str(tmp_path / "o")])
    assert code == 2 and "holds the DIRL authors'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x1f\x8b\x08\x00" + bytes(64), "a gzip archive"),
        (b"\x08\x07\x12\x07pytorch\x1a\x032.0" + bytes(64), "an ONNX model"),
        (b"\x89HDF\r\n\x1a\n" + bytes(64), "an HDF5 file"),
    ],
)
def test_other_file_kinds_are_named(tmp_path, data, expected):
    path = tmp_path / "weights.pth"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=expected):
        read_state_dict(path)


def test_a_zip_that_is_not_a_checkpoint_and_a_folder_are_named(tmp_path):
    import zipfile

    path = tmp_path / "dirl.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("dirl/encoder_epochbest.pth", b"x")
    with pytest.raises(CheckpointError, match=r"is a zip archive, not a PyTorch checkpoint .*dirl/encoder_epochbest"):
        read_state_dict(path)
    with pytest.raises(CheckpointError, match="is a folder, not a weights file"):
        read_state_dict(tmp_path)


# --------------------------------------------------------------------------- §2 nothing the user made is replaced


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_push_dry_run_never_replaces_the_users_folder(folders, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "README.md").write_text("my own notes")
    (out / "config.json").write_text('{"mine": true}')
    before = _snapshot(out)
    code = main(["push", str(folders["dirl_tiny"]), "--repo-id", "me/tiny", "--out", str(out), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("inharmony: error:") == 1 and str(out) in err and "--force" in err, err
    assert _snapshot(out) == before
    (out / "notes.txt").write_text("keep me")
    code = main(["push", str(folders["dirl_tiny"]), "--repo-id", "me/tiny", "--out", str(out), "--dry-run", "--force"])
    assert code == 0, capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me" and "me/tiny" in (out / "README.md").read_text()


def _s2am_authors_file(folder: Path) -> Path:
    from inharmony.models.converters.s2am import to_official_state_dict

    path = folder / "rascv2.pth.tar"
    state = to_official_state_dict(inharmony.create_model("s2am", **SMALL["s2am"]))
    torch.save({"arch": "rascv2", "state_dict": state}, path)
    return path


def _full_disk(kind: str):
    from safetensors import SafetensorError

    def writer(model, filename, *args, **kwargs):
        Path(filename).write_bytes(b"\x00" * 100)  # what was written before the disk filled up
        if kind == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    return writer


@pytest.mark.parametrize("kind", ["oserror", "safetensors"])
def test_a_full_disk_during_convert_leaves_nothing_partial(tmp_path, monkeypatch, capsys, kind):
    import safetensors.torch

    source = _s2am_authors_file(tmp_path)
    monkeypatch.setattr(safetensors.torch, "save_model", _full_disk(kind))
    out = tmp_path / "new" / "hub"
    code = main(["convert", "s2am-official", "--file", str(source), "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("inharmony: error: "), err
    assert "no space left" in lines[0] and str(out) in lines[0] and "Traceback" not in err
    assert not out.exists() and not list(out.parent.iterdir())  # no partial file, no temporary folder
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    before = _snapshot(mine)
    code = main(["convert", "s2am-official", "--file", str(source), "--out", str(mine), "--force"])
    assert code == 2 and "no space left" in capsys.readouterr().err
    assert _snapshot(mine) == before and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --------------------------------------------------------------------------- every option validated where parsed

EXPORT = ["export", "--out", "x.onnx", "--random-weights", "--model", "dirl_tiny"]
OPTION_CASES = [
    ([*EXPORT, "--size", "0"], "--size"),
    ([*EXPORT, "--size", "100"], "--size"),
    ([*EXPORT, "--size", "99999"], "--size"),
    ([*EXPORT, "--size", "abc"], "--size"),
    ([*EXPORT, "--opset", "999"], "--opset"),
    ([*EXPORT, "--atol", "-1"], "--atol"),
    ([*EXPORT, "--atol", "inf"], "--atol"),
    ([*EXPORT, "--check-sizes", "abc"], "--check-sizes"),
    ([*EXPORT, "--check-sizes", "0x0"], "--check-sizes"),
    ([*EXPORT, "--check-sizes", "99999x99999"], "--check-sizes"),
    (["export", "--out", "x.onnx", "--random-weights", "--format", "tflite"], "--format"),
    (["push", "c.ckpt", "--repo-id", "no-slash"], "--repo-id"),
    (["push", "c.ckpt", "--repo-id", "a b/c"], "--repo-id"),
    (["push", "c.ckpt", "--repo-id", "../../etc"], "--repo-id"),
    (["push", "c.ckpt", "--repo-id", "a" * 200 + "/b"], "--repo-id"),
    (["push", "c.ckpt", "--repo-id", "a/b", "--branch", "x y"], "--branch"),
    (["push", "c.ckpt", "--repo-id", "a/b", "--commit-message", " "], "--commit-message"),
    (["convert", "dirl-official", "--dir", "d", "--out", "o", "--epoch", "../../x"], "--epoch"),
    (["convert", "dirl-official", "--dir", "d", "--out", "o", "--epoch", "-1"], "--epoch"),
    (["convert", "madisnet-libcom", "--dir", "d", "--out", "o", "--epoch", "1.5"], "--epoch"),
    (["convert", "madisnet-libcom", "--dir", "d", "--out", "o", "--model", "dirl"], "--model"),
    (["convert", "s2am-official", "--file", "f", "--out", "o", "--model", "bogus"], "--model"),
    (["convert", "harmony-libcom", "--file", "f", "--out", "o", "--model", "dirl"], "--model"),
]


@pytest.mark.parametrize(("argv", "option"), OPTION_CASES, ids=[" ".join(a[:1] + a[-2:])[:50] for a, _ in OPTION_CASES])
def test_hostile_option_values_get_one_line_naming_the_option(tmp_path, monkeypatch, capsys, argv, option):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    code = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("inharmony: error:")]
    assert code == 2 and len(errors) == 1 and option in errors[0] and "Traceback" not in err, err
    assert time.perf_counter() - start < 20 and not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("converter", ["dirl-official", "madisnet-libcom", "harmony-libcom"])
def test_convert_out_that_is_a_file_is_named(tmp_path, capsys, converter):
    out = tmp_path / "out"
    out.write_text("mine")
    source = ["--file", str(tmp_path / "f.pth")] if converter == "harmony-libcom" else ["--dir", str(tmp_path)]
    code = main(["convert", converter, *source, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"--out {out} is a file" in err and out.read_text() == "mine", err
