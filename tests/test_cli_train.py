"""`inharmony fit / validate / test` (LightningCLI): help, config errors, table files, resume, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning.pytorch  # noqa: F401  (see below)
import pytest
import torch

from inharmony.cli import main
from inharmony.metrics import SUBSET_ORDER

# Lightning is imported above, at collection, on purpose: its log handler binds the stderr of the moment, and
# imported first inside a test it would bind that test's capsys stream, closed before the next test logs
# ("Seed set to 0"), so the error checks below would find a "--- Logging error ---" traceback.

# Small and quick: 32-px crops of the fake tree, the lightest registered DIRL variant.
TINY = [
    "--model.model",
    "dirl_resnet18",
    "--data.image_size",
    "32",
    "--data.batch_size",
    "4",
    "--data.num_workers",
    "0",
    "--trainer.accelerator",
    "cpu",
    "--trainer.devices",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.num_sanity_val_steps",
    "0",
    "--samples.every_n_steps",
    "0",
]


def _fit_args(root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [*TINY, "--data.root", str(root), "--trainer.default_root_dir", str(run_dir), *extra]


@pytest.mark.parametrize("command", ["fit", "validate", "test"])
def test_help_lists_options_and_example(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert f"inharmony {command}" in text
    assert "Example: inharmony" in text
    for option in ("--config", "--trainer.max_epochs", "--model.model", "--data.root", "--ckpt_path"):
        assert option in text, option


def test_bad_config_key_is_named(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  model: dirl\n  no_such_option: 3\n")
    code = main(["fit", "--config", str(config), "--data.root", str(tmp_path)])
    assert code != 0
    err = capsys.readouterr().err
    assert "no_such_option" in err


def test_bad_command_line_key_is_named(tmp_path, capsys):
    code = main(["fit", "--data.root", str(tmp_path), "--trainer.no_such_flag", "3"])
    assert code != 0
    assert "no_such_flag" in capsys.readouterr().err


def test_data_root_without_dataset(tmp_path, capsys):
    code = main(["fit", *_fit_args(tmp_path / "empty", tmp_path / "run")])
    assert code == 2
    # The last line is our message (earlier lines may be Lightning's log output).
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("inharmony: error:") and "empty" in last and "not a directory" in last


def test_missing_and_corrupt_checkpoints(fake_ihd, tmp_path, capsys):
    code = main(["test", *_fit_args(fake_ihd, tmp_path / "run"), "--ckpt_path", str(tmp_path / "nope.ckpt")])
    assert code == 2
    assert "checkpoint not found" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    code = main(["test", *_fit_args(fake_ihd, tmp_path / "run"), "--ckpt_path", str(corrupt)])
    assert code == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and str(corrupt) in err
    code = main(["fit", *_fit_args(fake_ihd, tmp_path / "elsewhere"), "--ckpt_path", "last"])
    assert code == 2
    assert "no intact checkpoint" in capsys.readouterr().err


@pytest.fixture(scope="module")
def fitted(fake_ihd, tmp_path_factory):
    """One short fit on the fake tree; returns (run dir, last checkpoint)."""
    run_dir = tmp_path_factory.mktemp("fit")
    assert main(["fit", *_fit_args(fake_ihd, run_dir), "--trainer.max_epochs", "1"]) == 0
    last = sorted(run_dir.rglob("last.ckpt"))
    assert len(last) == 1
    return run_dir, last[0]


def test_fit_writes_best_and_last(fitted):
    _, last = fitted
    best = [p for p in last.parent.glob("best-*.ckpt")]
    assert len(best) == 1
    checkpoint = torch.load(best[0], map_location="cpu", weights_only=True)
    assert checkpoint["callbacks"]  # the ModelCheckpoint state (monitor val/iou)
    assert any("val/iou" in str(k) for k in checkpoint["callbacks"])
    assert (last.parent.parent / "config.yaml").is_file()  # LightningCLI saved the full config


def test_test_writes_five_row_table(fake_ihd, fitted, tmp_path, capsys):
    run_dir, last = fitted
    out = tmp_path / "table"
    assert main(["test", *_fit_args(fake_ihd, run_dir), "--ckpt_path", str(last), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "metrics.json").read_text())
    assert list(results) == [*SUBSET_ORDER, "All"]
    for row in results.values():
        assert 0.0 <= row["ap"] <= 1.0 and 0.0 <= row["f1"] <= 1.0 and 0.0 <= row["iou"] <= 1.0
    # le50 test split of the fixture: HCOCO 2, HAdobe5k 1, HFlickr 2, Hday2night 1 (each image once).
    assert [int(r["images"]) for r in results.values()] == [2, 1, 2, 1, 6]
    md = (out / "metrics.md").read_text()
    body = [line for line in md.splitlines() if line.startswith("| ") and "Subset" not in line]
    assert [line.split("|")[1].strip() for line in body] == [*SUBSET_ORDER, "All"]
    # The markdown and console show AP and IoU in %, F1 as a fraction.
    all_row = body[-1].split("|")
    assert all_row[3].strip() == f"{100 * results['All']['ap']:.2f}"
    assert all_row[4].strip() == f"{results['All']['f1']:.4f}"
    assert "Hday2night" in printed


def test_default_table_location_is_beside_checkpoint(fake_ihd, fitted, tmp_path):
    _, last = fitted
    copy = tmp_path / "ckpt" / "model.ckpt"
    copy.parent.mkdir()
    copy.write_bytes(last.read_bytes())
    assert main(["test", *_fit_args(fake_ihd, tmp_path / "run"), "--ckpt_path", str(copy)]) == 0
    assert (copy.parent / "metrics.json").is_file() and (copy.parent / "metrics.md").is_file()


def test_checkpoint_of_another_architecture(fake_ihd, fitted, tmp_path, capsys):
    _, last = fitted  # trained as dirl_resnet18
    args = _fit_args(fake_ihd, tmp_path / "run")
    args[args.index("dirl_resnet18")] = "dirl"
    code = main(["test", *args, "--ckpt_path", str(last)])
    assert code == 2
    err = capsys.readouterr().err
    assert "'dirl_resnet18'" in err and "does not fit the model 'dirl'" in err


def _params(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


def test_resume_matches_uninterrupted_run(fake_ihd, tmp_path, monkeypatch):
    # Shuffling and augmentation both draw from torch's RNG (the transform seeds albumentations
    # from it): the resumed run must draw the same order and the same crops as the straight one.
    fixed: list[str] = []
    straight = tmp_path / "straight"
    assert main(["fit", *_fit_args(fake_ihd, straight, *fixed), "--trainer.max_epochs", "2"]) == 0
    split = tmp_path / "split"
    assert main(["fit", *_fit_args(fake_ihd, split, *fixed), "--trainer.max_epochs", "1"]) == 0
    first_last = next(split.rglob("last.ckpt"))
    first_params = _params(first_last)
    resume = ["--trainer.max_epochs", "2", "--ckpt_path", "last"]
    assert main(["fit", *_fit_args(fake_ihd, split, *fixed), *resume]) == 0
    resumed_last = max(split.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    assert resumed_last != first_last
    resumed = torch.load(resumed_last, map_location="cpu", weights_only=True)
    reference = torch.load(next(straight.rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert resumed["epoch"] == reference["epoch"] == 1
    assert resumed["global_step"] == reference["global_step"]
    changed = 0
    for key, value in reference["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
        changed += int(not torch.equal(first_params[key], value))
    assert changed > 0  # the second epoch did train
    # Optimizer moments continue too.
    ref_state = reference["optimizer_states"][0]["state"]
    res_state = resumed["optimizer_states"][0]["state"]
    for idx in list(ref_state)[:5]:
        torch.testing.assert_close(res_state[idx]["exp_avg"], ref_state[idx]["exp_avg"], rtol=1e-5, atol=1e-7)


def test_predict_with_config_writes_masks(fake_ihd, fitted, tmp_path):
    from PIL import Image

    from inharmony.cli.lightning import run_lightning

    _, last = fitted
    out = tmp_path / "masks"
    args = [*_fit_args(fake_ihd, tmp_path / "run"), "--ckpt_path", str(last), "--out", str(out)]
    assert run_lightning("predict", args) == 0
    masks = sorted(out.rglob("*.png"))
    assert len(masks) == 6  # the le50 test split, one mask per composite, paths mirrored
    assert {m.parent.parent.name for m in masks} == {"HCOCO", "HAdobe5k", "HFlickr", "Hday2night"}
    assert Image.open(masks[0]).size == (32, 32) and Image.open(masks[0]).mode == "L"


# ------------------------------------------------------- fit arguments are checked before anything is built
@pytest.fixture
def nothing_is_built(monkeypatch):
    """Fail the test if a model gets built: the checks must come first."""
    from inharmony.training import _base

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the arguments were checked")

    monkeypatch.setattr(_base, "create_model", refuse)


def _short_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and len(lines) <= 2, err
    assert lines[0].startswith("inharmony: error:"), err
    return " ".join(lines)


def _malicious_checkpoint(path: Path, marker: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": {}, "epoch": 0, "payload": Payload()}, path)


@pytest.mark.parametrize(
    "change, option, words",
    [
        (("--data.root", None), "--data.root", ("--data.streaming",)),
        (("--data.image_size", "40"), "--data.image_size", ("16", "32", "48")),
        (("--data.batch_size", "0"), "--data.batch_size", ("at least 1",)),
        (("--model.model", "dirll"), "--model.model", ("'dirl'",)),
        (("--model.model", "rsrnett_resnet18"), "--model.model", ("rsrnet_resnet18",)),
    ],
)
def test_fit_arguments_are_checked_before_building(fake_ihd, tmp_path, capsys, nothing_is_built, change, option,
                                                   words):  # fmt: skip
    args = _fit_args(fake_ihd, tmp_path / "run")
    key, value = change
    at = args.index(key)
    if value is None:
        del args[at : at + 2]
    else:
        args[at + 1] = value
    assert main(["fit", *args]) == 2
    message = _short_error(capsys)
    assert option in message, message
    for word in words:
        assert word in message, message


def test_malicious_checkpoint_is_refused_before_building(fake_ihd, tmp_path, capsys, nothing_is_built):
    evil, marker = tmp_path / "evil.ckpt", tmp_path / "pwned"
    _malicious_checkpoint(evil, marker)
    assert main(["fit", *_fit_args(fake_ihd, tmp_path / "run"), "--ckpt_path", str(evil)]) == 2
    message = _short_error(capsys)
    assert "--ckpt_path" in message and str(evil) in message
    assert "weights_only=False" not in message and "trust" not in message  # fit cannot load it unsafely anyway
    assert not marker.exists()


def test_non_checkpoint_file_as_ckpt_path(fake_ihd, tmp_path, capsys, nothing_is_built):
    page = tmp_path / "model.ckpt"
    page.write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    assert main(["fit", *_fit_args(fake_ihd, tmp_path / "run"), "--ckpt_path", str(page)]) == 2
    message = _short_error(capsys)
    assert "--ckpt_path" in message and str(page) in message
