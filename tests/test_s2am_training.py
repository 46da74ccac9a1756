"""S2AM training: the paper's losses, the harmonization task, and `inharmony fit/test` on synthetic composites."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from inharmony.cli import main
from inharmony.data import IHarmony4DataModule
from inharmony.data.synth import synthesize
from inharmony.losses.s2am import S2AMLoss, S2AMMaskFreeLoss, attention_targets
from inharmony.training.harmonization import HarmonizationTask, is_harmonizer, wants_harmonization

TINY = '{"num_downs": 5}'  # a 32-multiple UNet: the same blocks, fewer levels (seconds on a CPU)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("s2am") / "data"
    synthesize(root, n=10, seed=0, size=40, progress=False)
    return root


def test_losses_follow_the_paper():
    g = torch.Generator().manual_seed(0)
    real, pred = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:12, 2:10] = 1
    maps = [torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 1, 4, 4, generator=g)]
    out = S2AMLoss()({"image": pred}, {"real": real, "mask": mask})
    assert out["loss"].item() == pytest.approx(F.mse_loss(pred, real).item())
    losses = S2AMMaskFreeLoss()({"image": pred, "attention": maps}, {"real": real, "mask": mask})
    # Eq. 5: beta = 100 on the pixel term (L1 in the authors' code), alpha = 90 on each attention level
    coarse = [F.avg_pool2d(mask, 2), F.avg_pool2d(mask, 4)]  # the mask's foreground share per cell
    want = 100 * F.l1_loss(pred, real) + 90 * sum(F.mse_loss(m, t) for m, t in zip(maps, coarse, strict=True))
    assert losses["loss"].item() == pytest.approx(want.item(), rel=1e-6)
    assert all(torch.equal(t, c) for t, c in zip(attention_targets(mask, maps), coarse, strict=True))
    assert S2AMMaskFreeLoss(pixel_loss="mse").pixel(pred, real).item() == pytest.approx(F.mse_loss(pred, real).item())
    assert S2AMLoss().discriminator is None  # the adversarial term is off by default
    with pytest.raises(KeyError, match="real"):
        S2AMLoss()({"image": pred}, mask)


def test_config_picks_the_harmonization_task():
    assert is_harmonizer("s2am") and is_harmonizer("s2am_maskfree") and not is_harmonizer("dirl")
    assert wants_harmonization(["fit", "--config", "configs/s2am.yaml"])
    assert wants_harmonization(["fit", "--config", "configs/s2am_maskfree.yaml"])
    assert not wants_harmonization(["fit", "--config", "configs/dirl.yaml"])
    assert wants_harmonization(["fit", "--config", "configs/dirl.yaml", "--model.model=s2am"])
    assert not wants_harmonization(["fit", "--config", "configs/s2am.yaml", "--model.model", "dirl"])  # last wins
    assert not wants_harmonization(["fit", "--config", "missing.yaml"])  # LightningCLI reports the missing file


@pytest.mark.parametrize("model", ["s2am", "s2am_maskfree"])
def test_fit_then_test_through_the_cli(model, synth_root, tmp_path, capsys):
    common = [
        "--model.model", model, "--model.model_kwargs", TINY, "--data.root", str(synth_root),
        "--data.image_size", "32", "--data.batch_size", "2", "--data.num_workers", "0", "--data.le50", "false",
        "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    # the recipe's config first, then overrides that make it tiny (LightningCLI applies them in order)
    fit = ["fit", "--config", f"configs/{model}.yaml", *common, "--data.val_fraction", "0.3",
           "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
           "--trainer.default_root_dir", str(tmp_path / "run")]  # fmt: skip
    assert main(fit) == 0
    last = next((tmp_path / "run").rglob("last.ckpt"))
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
    assert "val/psnr" in json.dumps(list(state["callbacks"]))  # monitored: the best epoch by validation PSNR
    out = tmp_path / "results"
    test = ["test", "--config", f"configs/{model}.yaml", *common, "--ckpt_path", str(last), "--out", str(out),
            "--trainer.default_root_dir", str(tmp_path / "test_run")]  # fmt: skip
    assert main(test) == 0
    table = json.loads((out / "metrics.json").read_text())
    assert list(table) == ["HSynth", "All"]
    row = table["All"]
    assert row["images"] == 2 and all(row[k] >= 0 for k in ("mse", "fmse", "psnr"))
    assert ("ap" in row) == (model == "s2am_maskfree")  # the mask-free model is scored as a localizer too
    md = (out / "metrics.md").read_text()
    assert "| MSE | fMSE | PSNR (dB) |" in md
    # The harmonization task tests its plain network: --tta and --precision are refused, not ignored.
    capsys.readouterr()
    for option, value in (("--tta", "hv"), ("--precision", "bf16")):
        assert main([*test, option, value]) == 2
        assert f"{option} is for the localization models' test" in capsys.readouterr().err


def test_pasting_keeps_the_background_and_gan_trains(synth_root):
    task = HarmonizationTask("s2am", model_kwargs={"num_downs": 5}, loss=S2AMLoss(adversarial_weight=1.0))
    assert not task.automatic_optimization  # generator and discriminator, each with its own optimizer
    dm = IHarmony4DataModule(str(synth_root), image_size=32, batch_size=2, num_workers=0, le50=False)
    trainer = L.Trainer(accelerator="cpu", fast_dev_run=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)  # fmt: skip
    before = [p.clone() for p in task.loss.discriminator.parameters()]
    trainer.fit(task, dm)
    assert any(not torch.equal(a, b) for a, b in zip(before, task.loss.discriminator.parameters(), strict=True))
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    task.eval()
    task.trainer = None  # the step on its own, outside a loop
    with torch.no_grad():
        result = task.test_step(batch, 0)
    outside = batch["mask"].expand_as(result["image"]) == 0
    composite = task.composite(batch["image"])
    assert torch.allclose(result["image"][outside], composite[outside], atol=1e-6)  # the paper's post-processing
