"""The training commands' console: inharmony's lines only by default, Lightning's chatter with --verbose."""

from __future__ import annotations

import logging
import warnings

import pytest

from inharmony.cli.quiet import QUIET_WARNINGS, quiet_lightning, split_verbose

NOISE = (
    "GPU available",
    "TPU available",
    "Tip:",
    "weights_only` was not set",
    "Seed set to",
    "Total FLOPs",
    "Test metric",
    "dirpath has changed",
    "LeafSpec",
    "tensorboardX",
)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["fit", "--verbose"], (["fit"], True)),
        (["test", "--verbose", "false", "--x", "1"], (["test", "--x", "1"], False)),
        (["fit", "--verbose=true", "--y"], (["fit", "--y"], True)),
        (["fit", "--verbose", "--trainer.max_steps", "3"], (["fit", "--trainer.max_steps", "3"], True)),
        (["fit", "--x"], (["fit", "--x"], False)),
    ],
)
def test_split_verbose(argv, expected):
    assert split_verbose(argv) == expected


def test_quiet_mode_hides_lightning_info_and_known_warnings_only():
    quiet_lightning(False)
    assert logging.getLogger("lightning.pytorch").getEffectiveLevel() == logging.WARNING
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning(False)  # the filters go in front of "always"
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", DeprecationWarning, stacklevel=1)
        warnings.warn("loss is NaN at step 3", UserWarning, stacklevel=1)  # about the run: never hidden
    assert [str(w.message) for w in caught] == ["loss is NaN at step 3"]
    quiet_lightning(True)
    assert logging.getLogger("lightning.pytorch").getEffectiveLevel() == logging.INFO
    assert len(QUIET_WARNINGS) >= 3


def _run(cli_args: list[str], capfd) -> str:
    from inharmony.cli import main

    assert main(cli_args) == 0
    out, err = capfd.readouterr()
    return out + err


def test_fit_and_test_print_no_lightning_chatter_unless_verbose(tiny_cli_args, tmp_path, capfd):
    args = tiny_cli_args("dirl_tiny")
    cut = args.index("--trainer.enable_model_summary")
    args = args[:cut] + args[cut + 2 :]  # the default decides
    fit = ["fit", *args, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1"]
    quiet = _run(fit, capfd)
    assert not [n for n in NOISE if n in quiet], quiet
    ckpt = next((tmp_path / "run").rglob("last.ckpt"))
    tested = _run(["test", *args, "--ckpt_path", str(ckpt), "--out", str(tmp_path / "t1")], capfd)
    assert "IoU (%)" in tested and not [n for n in NOISE if n in tested], tested
    loud = _run(["test", *args, "--ckpt_path", str(ckpt), "--out", str(tmp_path / "t2"), "--verbose"], capfd)
    assert "Test metric" in loud and "IoU (%)" in loud  # Lightning's raw table is back, beside ours
    quiet_lightning(False)
