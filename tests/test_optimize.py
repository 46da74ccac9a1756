"""``inharmony.inference.optimize``: BatchNorm folded, channels_last, bf16 autocast, same outputs, caller untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import inharmony
from inharmony import models as hub
from inharmony.cli import EXIT_OK, EXIT_USAGE, main
from inharmony.inference import OptimizedModel, Predictor, optimize

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"decoder_channels": 8}


def _count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for key in sorted(out) for t in _tensors(out[key])]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _tensors(item)]
    return []


def _randomize_batchnorm(model: nn.Module) -> None:
    """Trained-like BatchNorm: random affine parameters, statistics measured on random batches.

    With the default statistics (mean 0, variance 1) folding is near the identity and would prove little.
    """
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=generator) * 0.3)
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over the calibration batches
        model.train()
        for _ in range(2):
            model(torch.randn(4, 3, 32, 32, generator=generator))
        model.eval()


@pytest.fixture(scope="module", params=["dirl_resnet18", "rsrnet_resnet18"])
def model(request):
    torch.manual_seed(0)
    kwargs = TINY if request.param == "dirl_resnet18" else {}
    net = inharmony.create_model(request.param, pretrained=False, **kwargs).eval()
    _randomize_batchnorm(net)
    return net


@pytest.fixture(scope="module")
def batch():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_fp32_equals_eager_and_batchnorm_is_folded(model, batch):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    convs = _count(model, nn.Conv2d)
    fast = optimize(model)
    assert isinstance(fast, OptimizedModel) and not fast.training
    with torch.no_grad():
        expected = model(batch)
    got = fast(batch)
    assert set(got) == set(expected)
    assert (got["mask"] - expected["mask"]).abs().max() < 1e-5
    for g, e in zip(_tensors(got), _tensors(expected), strict=True):
        assert g.dtype == torch.float32 and g.shape == e.shape and g.is_contiguous()
        assert (g - e).abs().max() < 1e-5
    assert _count(fast, nn.BatchNorm2d) == 0 < _count(model, nn.BatchNorm2d)
    assert _count(fast, nn.Conv2d) == convs
    # The caller's model is untouched: same modules, same values, still BatchNorm, contiguous weights.
    assert _count(model, nn.Conv2d) == convs and not model.training
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
    assert all(p.is_contiguous() for p in model.parameters())


def test_channels_last_weights(model):
    fast = optimize(model)
    four_d = [p for p in fast.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert four_d and all(p.is_contiguous(memory_format=torch.channels_last) for p in four_d)
    plain = optimize(model, channels_last=False)
    assert all(p.is_contiguous() for p in plain.parameters())


def test_bf16_is_float32_and_close(model, batch):
    fast = optimize(model, precision="bf16")
    with torch.no_grad():
        expected = model(batch)["mask"]
    got = fast(batch)["mask"]
    assert got.dtype == torch.float32
    assert (got - expected).abs().mean() < 0.05


def test_bf16_logits_run_in_float32(model, batch):
    """The mask-logit convolutions run in fp32: the bf16 mask is not stuck on bf16's few values (ties cost AP)."""
    fast = optimize(model, precision="bf16")
    coarse = optimize(model, precision="bf16", fp32_logits=False)
    full = [name for name, m in fast.model.named_modules() if isinstance(m, nn.Conv2d) and type(m) is not nn.Conv2d]
    assert full and all(fast.model.get_submodule(name).out_channels == 1 for name in full[:-1])
    assert not any(type(m) is not nn.Conv2d for m in coarse.model.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        expected = model(batch)["mask"]
    got, rough = fast(batch)["mask"], coarse(batch)["mask"]
    # A bf16 value has 8 significant bits: the fp32-logit mask is not on that grid, and has more distinct values.
    assert not torch.equal(got, got.bfloat16().float())
    assert got.unique().numel() > rough.unique().numel()
    assert (got - expected).abs().mean() < 0.05


def test_a_conv_output_used_twice_is_not_folded():
    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.block = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))

        def forward(self, x):
            y = self.conv(x)
            return {"mask": torch.sigmoid(self.block(self.bn(y)) + y)}  # y is also used after the BatchNorm

    net = Reuse().eval()
    _randomize_batchnorm(net)
    x = torch.randn(1, 3, 8, 8)
    with pytest.warns(UserWarning, match="left unfolded"):
        fast = optimize(net)
    assert (fast(x)["mask"] - net(x)["mask"]).abs().max() < 1e-5


def test_a_trained_scale_network_is_folded_without_a_false_alarm(recwarn):
    # Trained weights rely on their own statistics: big convolution weights tamed by big running variances.
    # The folding check once replaced the statistics by random ones of unit scale, which overflowed such a
    # network to inf/NaN and refused to fold a trained DIRL ("changed the outputs on a check run").
    torch.manual_seed(0)
    x = torch.randn(1, 3, 16, 16)
    layers, h = [], x
    for i in range(12):
        conv, bn = nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1), nn.BatchNorm2d(4)
        with torch.no_grad():
            conv.weight.mul_(1e5)
            y = conv(h)  # statistics as training would leave them: the BatchNorm brings y back to unit scale
            bn.running_mean.copy_(y.mean((0, 2, 3)))
            bn.running_var.copy_(y.var((0, 2, 3)))
            h = bn.eval()(y)
        layers += [conv, bn]
    net = nn.Sequential(*layers, nn.Conv2d(4, 1, 1), nn.Sigmoid()).eval()
    with torch.no_grad():
        assert torch.isfinite(net(x)).all() and net(x).std() > 1e-3  # in range, not saturated
    fast = optimize(net)
    assert not [w for w in recwarn if "left unfolded" in str(w.message)]
    assert _count(fast, nn.BatchNorm2d) == 0
    assert (fast(x) - net(x)).abs().max() < 1e-4


def test_a_batchnorm_on_something_else_is_not_folded():
    class Diff(nn.Module):  # iHDRNet's central-difference convolution: BatchNorm of conv(x) − conv1×1(x)
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            out = self.conv(x) - 0.7 * nn.functional.conv2d(x, self.conv.weight.sum((2, 3), keepdim=True))
            return self.bn(out)

    net = Diff().eval()
    _randomize_batchnorm(net)
    x = torch.randn(1, 3, 8, 8)
    fast = optimize(net)
    assert _count(fast, nn.BatchNorm2d) == 1
    assert (fast(x) - net(x)).abs().max() < 1e-5


def test_precision_errors(model):
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        optimize(model, precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="use precision='bf16' on CPU"):
            optimize(model, precision="fp16")


def test_compile_is_wired(monkeypatch, model, batch):
    """compile=True hands the folded network to torch.compile with freezing (without compiling here)."""
    seen = {}

    def fake_compile(network, **kwargs):
        seen.update(kwargs, network=network)
        return network

    monkeypatch.setattr(torch, "compile", fake_compile)
    fast = optimize(model, compile=True)
    assert seen["options"] == {"freezing": True} and seen["network"] is fast.model
    assert (fast(batch)["mask"] - model(batch)["mask"]).abs().max() < 1e-5

    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("no C++ compiler")

    failing = OptimizedModel(fast.model, "fp32", True, compiled=Broken())
    with pytest.raises(RuntimeError, match=r"torch.compile failed.*no C\+\+ compiler.*compile=False"):
        failing(batch)


def test_predictor_precision(model):
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    eager = Predictor(model, size=32, device="cpu")(image)
    assert Predictor(model, size=32, device="cpu").model is model
    fp32 = Predictor(model, size=32, device="cpu", precision="fp32")
    assert isinstance(fp32.model, OptimizedModel) and fp32.model.model is not model
    assert np.abs(fp32(image) - eager).max() < 1e-5
    bf16 = Predictor(model, size=32, device="cpu", precision="bf16")(image)
    assert bf16.dtype == np.float32 and bf16.shape == (40, 50) and np.abs(bf16 - eager).mean() < 0.05


def test_cli_precision(tmp_path):
    torch.manual_seed(0)
    net = inharmony.create_model("dirl_resnet18", **TINY).eval()
    folder = hub.save_pretrained(net, tmp_path / "w", model_kwargs=TINY)
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(image)
    args = ["predict", str(image), "--model", "dirl_resnet18", "--weights", str(folder), "--size", "32"]
    assert main([*args, "--precision", "bf16", "--out", str(tmp_path / "o")]) == EXIT_OK
    assert Image.open(tmp_path / "o" / "img_mask.png").size == (40, 30)
    assert main([*args, "--precision", "int8", "--out", str(tmp_path / "o2")]) == EXIT_USAGE
    if not torch.cuda.is_available():
        assert main([*args, "--precision", "fp16", "--device", "cpu", "--out", str(tmp_path / "o3")]) == EXIT_USAGE
