"""`inharmony demo`, shortened (2 training steps, a few dozen composites): every artefact is written."""

from __future__ import annotations

import json

import cv2
import numpy as np
import yaml
from PIL import Image

from inharmony.cli import main
from inharmony.cli.demo import find_config, read_recipe, trivial_scores


def test_packaged_demo_config_is_found():
    config = find_config("demo.yaml")
    assert config.name == "demo.yaml"
    plan = read_recipe(config)
    assert plan["model"] == "dirl_tiny" and plan["image_size"] == 32
    # the one-cycle schedule follows the step budget, so it must span the config's own budget too
    assert plan["max_steps"] >= 1000 and plan["has_progress"] and plan["one_cycle"]
    assert plan["max_steps"] == yaml.safe_load(config.read_text())["model"]["lr_scheduler"]["init_args"]["total_steps"]
    assert plan["precision"] == "32-true"  # bf16-mixed is faster per step but did not keep the IoU (demo.yaml)
    assert "max_time" not in config.read_text().split("seed_everything")[1]  # no silent time cap


def test_step_budget_progress_prints_eta(capsys):
    from types import SimpleNamespace

    from inharmony.training.callbacks import StepBudgetProgress

    progress = StepBudgetProgress(every_n_steps=2)
    trainer = SimpleNamespace(global_step=0, max_steps=4, is_global_zero=True)
    progress.on_train_start(trainer, None)
    for step in range(1, 5):
        trainer.global_step = step
        progress.on_train_batch_end(trainer, None, None, None, step - 1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("step 1/4") and "clock started" in lines[0]
    assert [line.split()[1] for line in lines[1:]] == ["2/4", "4/4"]  # every 2 steps, and the last
    assert "ETA" in lines[1] and lines[-1].split("ETA ")[1].startswith("0:00")


def test_trivial_scores_match_formula():
    import torch

    masks = [torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)]
    masks[0][0, :2] = 1  # f = 0.5
    masks[1][0, 0, 0] = 1  # f = 1/16
    scores = trivial_scores(masks)
    assert np.isclose(scores["iou"], (0.5 + 1 / 16) / 2)
    assert np.isclose(scores["ap"], scores["iou"])
    assert np.isclose(scores["f1"], (2 * 0.5 / 1.5 + 2 / 16 / (1 + 1 / 16)) / 2)


def test_short_demo_writes_table_panels_and_report(tmp_path, capsys, monkeypatch):
    from inharmony import inference

    # A bf16-mixed recipe on a CPU without native bf16 (emulated, slower): the demo trains fp32 instead.
    monkeypatch.setattr(inference, "bf16_is_fast", lambda device="cpu": False)
    recipe = tmp_path / "demo_bf16.yaml"
    recipe.write_text(find_config("demo.yaml").read_text().replace("precision: 32-true", "precision: bf16-mixed"))
    out = tmp_path / "demo"
    code = main(
        [
            "demo", "--out", str(out), "--config", str(recipe), "--n", "30", "--steps", "2", "--panels", "3",
            "--", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out / "predictions") in printed and "all foreground" in printed
    # The step budget, not a time cap; progress lines with an ETA end at the budget.
    assert "2 steps (the budget: no time cap)" in printed
    assert "32-true (this CPU has no AVX512-BF16/AMX" in printed
    assert "step 2/2 (100%)" in printed and "ETA 0:00" in printed

    results = json.loads((out / "metrics.json").read_text())
    assert list(results) == ["HSynth", "All"]
    report = json.loads((out / "demo.json").read_text())
    assert report["train_steps"] == 2
    # The final weights are tested (not the best-by-validation checkpoint), and the report says which.
    assert report["tested_checkpoint"].endswith("last.ckpt") and "[3/4] testing last.ckpt" in printed
    assert report["results"]["All"]["iou"] == results["All"]["iou"]
    # The headline is flip-averaged (--tta hv, the default); the one-pass table is written beside it.
    one_pass = json.loads((out / "test-one-pass" / "metrics.json").read_text())
    assert report["tta"] == "hv" and report["results_one_pass"]["All"] == one_pass["All"]
    assert report["results"]["All"]["ap"] != one_pass["All"]["ap"]
    assert "with flip TTA hv (one pass: " in printed and "one pass per image" in (out / "metrics.md").read_text()
    assert "trivial predictor" in (out / "metrics.md").read_text()

    # Test composites come only from photos never used for training.
    synth = json.loads((out / "data" / "HSynth" / "synth.json").read_text())
    train_photos = {c["photo"] for c in synth["composites"] if c["split"] == "train"}
    test_photos = {c["photo"] for c in synth["composites"] if c["split"] == "test"}
    assert test_photos and not (test_photos & train_photos)

    # The trivial baseline equals the mean foreground fraction of the test masks (read back from disk,
    # at full size: the demo scores at network size, so allow the resize's rounding).
    test_names = (out / "data" / "HSynth" / "HSynth_test.txt").read_text().split()
    fractions = []
    for name in test_names:
        stem = name.rsplit("_", 1)[0]
        mask = cv2.imread(str(out / "data" / "HSynth" / "masks" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        fractions.append(float((mask > 127).mean()))
    assert report["trivial_all_foreground"]["images"] == len(test_names) == int(results["All"]["images"])
    assert abs(report["trivial_all_foreground"]["iou"] - np.mean(fractions)) < 0.03

    panels = sorted((out / "predictions").glob("*.png"))
    assert len(panels) == 3
    width, height = Image.open(panels[0]).size
    assert width == 3 * height and height >= 256  # image | ground truth | prediction, big enough to see
    assert report["step_budget"] == 2 and report["seconds_per_step"] > 0
    gt = np.asarray(Image.open(panels[0]))[:, height : 2 * height]
    assert set(np.unique(gt)) <= {0, 255} and gt.max() == 255
