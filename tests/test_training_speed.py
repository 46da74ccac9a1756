"""Training speed options: activation checkpointing, channels_last, torch.compile, bf16-mixed, test --precision."""

from __future__ import annotations

import copy
import json

import lightning as L
import pytest
import torch

import inharmony
from inharmony.data import IHarmony4DataModule
from inharmony.models.encoders import checkpointed
from inharmony.training.callbacks import LocalizationMetricsCallback
from inharmony.training.localization import LocalizationTask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(size: int = 32, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.randn(n, 3, size, size, generator=g)
    target = torch.zeros(n, 1, size, size)
    target[:, :, size // 4 : size // 2, size // 8 : size // 2] = 1
    return image, target


def _step(model: torch.nn.Module, name: str, image: torch.Tensor, target: torch.Tensor) -> dict:
    """One forward + backward in train mode; returns outputs, gradients and BatchNorm buffers."""
    from inharmony.losses import loss_for_model

    model.train()
    out = model(image)
    loss = loss_for_model(name)(out, target)["loss"]
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    return {"out": out, "grads": grads, "buffers": buffers, "loss": loss.detach()}


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("dirl_resnet18", {}), ("rsrnet_resnet18", {"iterations": 2}), ("unet", {})],
)
def test_grad_checkpointing_equals_plain_path(name, kwargs):
    torch.manual_seed(0)
    plain = inharmony.create_model(name, **kwargs)
    ckpt = copy.deepcopy(plain)
    parts = [m for m in ckpt.modules() if hasattr(m, "set_grad_checkpointing")]
    for part in parts:
        part.set_grad_checkpointing(True)
    assert ckpt.encoder.grad_checkpointing
    image, target = _batch()
    calls = []
    real = torch.utils.checkpoint.checkpoint

    def spy(*args, **kw):
        calls.append(args[0])
        return real(*args, **kw)

    a = _step(plain, name, image, target)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.utils.checkpoint, "checkpoint", spy)
        b = _step(ckpt, name, image, target)
    assert calls, "checkpointing was not used"
    torch.testing.assert_close(b["loss"], a["loss"], rtol=0, atol=1e-6)
    torch.testing.assert_close(b["out"]["mask"], a["out"]["mask"], rtol=0, atol=1e-6)
    assert a["grads"].keys() == b["grads"].keys() and len(a["grads"]) > 10
    for key, grad in a["grads"].items():
        torch.testing.assert_close(b["grads"][key], grad, rtol=1e-5, atol=1e-6, msg=key)
    # BatchNorm statistics are updated once, as without checkpointing (the recomputation is undone).
    for key, value in a["buffers"].items():
        torch.testing.assert_close(b["buffers"][key], value, rtol=0, atol=1e-6, msg=key)
    # Evaluation is a plain call.
    plain.eval(), ckpt.eval()
    with torch.no_grad():
        torch.testing.assert_close(ckpt(image)["mask"], plain(image)["mask"], rtol=0, atol=1e-6)


def test_checkpointed_restores_batchnorm_statistics():
    torch.manual_seed(0)
    block = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    twin = copy.deepcopy(block)
    x = torch.randn(2, 3, 8, 8)
    block(x).sum().backward()
    checkpointed(twin, x, modules=[twin]).sum().backward()
    assert int(twin[1].num_batches_tracked) == 1
    torch.testing.assert_close(twin[1].running_mean, block[1].running_mean, rtol=0, atol=0)
    torch.testing.assert_close(twin[0].weight.grad, block[0].weight.grad)


def test_task_options_channels_last_compile_and_checkpointing():
    torch.manual_seed(0)
    plain = LocalizationTask("dirl_resnet18")
    fast = LocalizationTask("dirl_resnet18", channels_last=True, compile={"backend": "eager"}, grad_checkpointing=True)
    fast.load_state_dict(plain.state_dict())
    assert fast.hparams["channels_last"] and fast.hparams["grad_checkpointing"]
    assert fast.model.encoder.stem_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.model.encoder.grad_checkpointing and not plain.model.encoder.grad_checkpointing
    assert set(fast.state_dict()) == set(plain.state_dict())  # compile adds no "_orig_mod" keys
    image, _ = _batch()
    plain.eval(), fast.eval()
    with torch.no_grad():
        expected = plain(image)["mask"]
        got = fast(image)["mask"]
    assert fast._compiled is not None and fast._compiled is not fast.model  # the compiled network ran
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="compile"):
        LocalizationTask("dirl_resnet18", compile="yes")


def test_compile_option_trains_through_torch_compile(monkeypatch):
    seen = {}
    real = torch.compile

    def spy(module, **kwargs):
        seen["module"], seen["kwargs"] = module, kwargs
        return real(module, **kwargs)

    monkeypatch.setattr(torch, "compile", spy)
    task = LocalizationTask("dirl_resnet18", compile={"backend": "eager"})
    image, target = _batch()
    loss = task.training_step({"image": image, "mask": target}, 0)
    loss.backward()
    assert seen["module"] is task.model and seen["kwargs"] == {"backend": "eager"}
    assert task.model.encoder.stem_conv.weight.grad is not None


def test_bf16_mixed_fit_on_cpu(fake_ihd, tmp_path):
    L.seed_everything(0)
    task = LocalizationTask("dirl_resnet18", channels_last=True)
    data = IHarmony4DataModule(str(fake_ihd), batch_size=2, num_workers=0, image_size=32)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, precision="bf16-mixed", max_steps=3, limit_val_batches=2,
        logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
        callbacks=[LocalizationMetricsCallback()], enable_checkpointing=False,
    )  # fmt: skip
    before = task.model.encoder.stem_conv.weight.detach().clone()
    trainer.fit(task, datamodule=data)
    assert trainer.global_step == 3
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    trainer.validate(task, datamodule=data, verbose=False)  # evaluation under bf16 autocast too
    assert 0.0 <= float(trainer.callback_metrics["val/iou"]) <= 1.0
    weight = task.model.encoder.stem_conv.weight
    assert weight.dtype == torch.float32 and not torch.equal(weight.detach(), before)  # fp32 master weights


def test_bf16_autocast_loss_is_float32_and_close():
    torch.manual_seed(0)
    task = LocalizationTask("dirl_resnet18")
    image, target = _batch()
    fp32 = task.training_step({"image": image, "mask": target}, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = task.training_step({"image": image, "mask": target}, 0)
    assert bf16.dtype == torch.float32
    assert abs(float(bf16) - float(fp32)) < 0.05 * float(fp32)


def test_test_precision_goes_through_optimize(tiny_cli_args, tmp_path, monkeypatch, capsys):
    from inharmony import inference
    from inharmony.cli import main

    tiny = tiny_cli_args("dirl_resnet18")
    assert main(["fit", *tiny, "--trainer.max_steps", "2"]) == 0
    ckpt = str(next((tmp_path / "run").rglob("last.ckpt")))
    calls = []
    real = inference.optimize

    def spy(model, precision="fp32", **kwargs):
        calls.append(precision)
        return real(model, precision=precision, **kwargs)

    monkeypatch.setattr(inference, "optimize", spy)
    results = {}
    for precision in (None, "fp32", "bf16"):
        out = tmp_path / f"table-{precision}"
        extra = [] if precision is None else ["--precision", precision]
        assert main(["test", *tiny, "--ckpt_path", ckpt, "--out", str(out), *extra]) == 0
        results[precision] = json.loads((out / "metrics.json").read_text())["All"]
        title = (out / "metrics.md").read_text()
        assert (f"{precision} (inharmony.inference.optimize)" in title) == (precision is not None)
    assert calls == ["fp32", "bf16"]
    # The optimized fp32 path scores like the plain network; bf16 is close.
    assert abs(results["fp32"]["ap"] - results[None]["ap"]) < 1e-4
    assert abs(results["bf16"]["ap"] - results[None]["ap"]) < 0.05
    # --precision belongs to test; elsewhere it would be silently ignored, so it is refused.
    assert main(["validate", *tiny, "--ckpt_path", ckpt, "--precision", "bf16"]) == 2
    assert "--precision is for 'inharmony test' only" in capsys.readouterr().err
