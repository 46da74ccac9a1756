"""Scoring any output of a network (RSRNet's Table 3): one per-subset table per output key."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch

from inharmony.cli import main
from inharmony.cli.lightning import results_title
from inharmony.data import IHarmony4DataModule
from inharmony.errors import TrainingCommandError
from inharmony.training.callbacks import LocalizationMetricsCallback
from inharmony.training.localization import LocalizationTask

OUTPUTS = ["mask", "mask_dec", "mask_rsr"]
SMALL = {"iterations": 2, "feature_dim": 32, "hidden_dim": 16, "embed_dim": 16, "decoder_channels": [32, 16, 16, 8]}
TINY = [
    "--model.model", "rsrnet_resnet18",
    "--model.model_kwargs", json.dumps(SMALL),
    "--data.image_size", "32",
    "--data.batch_size", "4",
    "--data.num_workers", "0",
    "--trainer.accelerator", "cpu",
    "--trainer.devices", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.logger", "false",
    "--samples.every_n_steps", "0",
    "--seed_everything", "0",
]  # fmt: skip


def _test(task: LocalizationTask, data: IHarmony4DataModule, tmp_path) -> LocalizationMetricsCallback:
    callback = LocalizationMetricsCallback()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, callbacks=[callback],
    )  # fmt: skip
    trainer.test(task, datamodule=data, verbose=False)
    callback.logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return callback


@pytest.fixture(scope="module")
def weights():
    torch.manual_seed(0)
    return LocalizationTask("rsrnet_resnet18", model_kwargs=SMALL).state_dict()


def _task(weights, **kwargs) -> LocalizationTask:
    task = LocalizationTask("rsrnet_resnet18", model_kwargs=SMALL, **kwargs)
    task.load_state_dict(weights)
    return task


def test_one_table_per_output_and_the_first_is_the_default(fake_ihd, tmp_path, weights):
    data = IHarmony4DataModule(str(fake_ihd), batch_size=4, num_workers=0, image_size=32)
    default = _test(_task(weights), data, tmp_path)
    three = _test(_task(weights, eval_outputs=OUTPUTS), data, tmp_path)
    assert list(default.results_by_output) == ["mask"]
    assert list(three.results_by_output) == OUTPUTS
    assert three.results_by_output["mask"] == default.results_by_output["mask"] == default.test_results
    assert three.test_results == default.test_results  # the first output is "the" table
    assert three.results_by_output["mask_dec"] != three.results_by_output["mask"]
    for name in OUTPUTS:
        assert list(three.results_by_output[name])[-1] == "All" and len(three.results_by_output[name]) == 5
        assert three.tables[name].count("|") > 20
    # Logged: test/ap for the first, test/<output>/ap for the others (per subset too).
    assert math.isclose(three.logged["test/ap"], three.results_by_output["mask"]["All"]["ap"], abs_tol=1e-6)
    for name in OUTPUTS[1:]:
        assert math.isclose(three.logged[f"test/{name}/ap"], three.results_by_output[name]["All"]["ap"], abs_tol=1e-6)
        assert f"test/{name}/HCOCO/iou" in three.logged
    assert "test/mask/ap" not in three.logged


def test_unknown_output_names_the_available_keys(fake_ihd, tmp_path, weights):
    data = IHarmony4DataModule(str(fake_ihd), batch_size=4, num_workers=0, image_size=32)
    with pytest.raises(TrainingCommandError, match=r"--model.eval_outputs: 'mask_fnl'") as info:
        _test(_task(weights, eval_outputs=["mask", "mask_fnl"]), data, tmp_path)
    available = str(info.value).rpartition(":")[2]
    assert sorted(available.replace(",", " ").split()) == sorted(OUTPUTS)  # rsr_masks is a list, not a map


def test_eval_outputs_argument_is_checked():
    with pytest.raises(ValueError, match="eval_outputs"):
        LocalizationTask("dirl_resnet18", eval_outputs=[])
    with pytest.raises(ValueError, match="eval_outputs"):
        LocalizationTask("dirl_resnet18", eval_outputs=["mask", "mask"])


def test_validation_scores_the_first_output(fake_ihd, tmp_path, weights):
    data = IHarmony4DataModule(str(fake_ihd), batch_size=4, num_workers=0, image_size=32)
    callback = LocalizationMetricsCallback()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, callbacks=[callback],
                        enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.validate(_task(weights, eval_outputs=["mask_dec", "mask"]), datamodule=data, verbose=False)
    first = dict(trainer.callback_metrics)
    trainer.validate(_task(weights, eval_outputs=["mask_dec"]), datamodule=data, verbose=False)
    assert float(first["val/iou"]) == float(trainer.callback_metrics["val/iou"])
    assert not any(k.startswith("val/mask") for k in first)


def test_cli_writes_a_table_per_output(fake_ihd, tmp_path, capsys):
    out = tmp_path / "tables"
    args = [*TINY, "--data.root", str(fake_ihd), "--trainer.default_root_dir", str(tmp_path / "run")]
    code = main(["test", *args, "--model.eval_outputs", "[mask, mask_dec, mask_rsr]", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert json.loads((out / "metrics.json").read_text())["All"]["images"] == 6  # the first output, as before
    for name in OUTPUTS[1:]:
        assert json.loads((out / f"metrics-{name}.json").read_text())["All"]["images"] == 6
    md = (out / "metrics.md").read_text()
    assert [line for line in md.splitlines() if line.startswith("### ")] == [
        f"### rsrnet_resnet18 — output '{name}'" for name in OUTPUTS
    ]
    for name in OUTPUTS:
        assert f"output '{name}'" in printed
    assert "fast evaluation pixels" not in md


def test_cli_unknown_output_is_a_short_error(fake_ihd, tmp_path, capsys):
    args = [*TINY, "--data.root", str(fake_ihd), "--trainer.default_root_dir", str(tmp_path / "run")]
    assert main(["test", *args, "--model.eval_outputs", "[mask, nope]", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "'nope'" in err and "mask_dec" in err


class _Stub:
    def __init__(self, **hparams) -> None:
        self.hparams = hparams


def test_title_says_when_fast_pixels_were_used():
    fast = results_title("rsrnet", _Stub(eval_pixels="fast"), "runs/x/best.ckpt", output=None)
    assert fast == "rsrnet — best.ckpt — fast evaluation pixels (not the authors')"
    assert "fast" not in results_title("rsrnet", _Stub(eval_pixels="official"), None, output=None)
    assert "fast" not in results_title("rsrnet", None, None, output=None)
    assert results_title("rsrnet", _Stub(), None, output="mask_dec") == "rsrnet — output 'mask_dec'"


class FastPixelsData(IHarmony4DataModule):
    """The data module with ``hparams.eval_pixels == "fast"`` (until it has the argument itself)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hparams["eval_pixels"] = "fast"


def test_cli_table_says_fast_pixels(fake_ihd, tmp_path, capsys):
    out = tmp_path / "tables"
    data = {"class_path": "test_eval_outputs.FastPixelsData",
            "init_args": {"root": str(fake_ihd), "image_size": 32, "batch_size": 4, "num_workers": 0}}  # fmt: skip
    args = [*TINY[:4], *TINY[10:], "--data", json.dumps(data), "--trainer.default_root_dir", str(tmp_path / "run")]
    assert main(["test", *args, "--out", str(out)]) == 0
    assert "fast evaluation pixels (not the authors')" in (out / "metrics.md").read_text()
    assert "fast evaluation pixels" in capsys.readouterr().out
