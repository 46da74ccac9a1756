"""ONNX Runtime as a backend of ``optimize``: same outputs as eager, cached by weights, ``auto`` by CPU kind."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import inharmony
from inharmony import models as hub
from inharmony.cli import EXIT_OK, main
from inharmony.inference import OptimizedModel, Predictor, auto_backend, cpu_kind, onnx_backend, optimize, precision

pytest.importorskip("onnxruntime", reason="the 'export' extra (onnx, onnxscript, onnxruntime) is not installed")
pytest.importorskip("onnxscript")

pytestmark = pytest.mark.usefixtures("one_torch_thread", "cache")


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("inharmony-cache")


@pytest.fixture
def cache(cache_root, monkeypatch):
    """One cache for the module (each model is exported once), never the user's."""
    monkeypatch.setenv("INHARMONY_CACHE", str(cache_root))
    return cache_root / "onnx"


class Tiny(nn.Module):
    """A network with the shape of ours (conv, BatchNorm, dict of a mask and a list of maps), exported in seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> dict:
        features = torch.relu(self.bn(self.conv(x)))
        return {"mask": torch.sigmoid(self.head(features)), "side": [features[:, :1], features[:, 1:3]]}


def _tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = Tiny().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 1.5)
    return net


def _leaves(out):
    return onnx_backend._flatten(out)[0]


def _dirl_tiny() -> nn.Module:
    torch.manual_seed(0)
    return inharmony.create_model("dirl_tiny", pretrained=False).eval()


# Exporting the full-size networks takes 1-2 min each on a 2-core machine (10 min when it is busy): marked slow.
@pytest.mark.parametrize(
    "name",
    [
        "dirl_tiny",
        pytest.param("rsrnet_resnet18", marks=pytest.mark.slow),
        pytest.param("madisnet", marks=pytest.mark.slow),
    ],
)
def test_onnxruntime_equals_eager_within_1e4(name):
    net = _dirl_tiny() if name == "dirl_tiny" else inharmony.create_model(name, pretrained=False).eval()
    fast = optimize(net, backend="onnxruntime")
    assert isinstance(fast, OptimizedModel) and (fast.backend, fast.precision) == ("onnxruntime", "fp32")
    assert fast.pretrained_cfg == net.pretrained_cfg
    for batch, height, width in [(1, 32, 32), (3, 64, 48)]:
        x = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(height))
        got = fast(x)
        with torch.no_grad():
            want = net(x)
        assert got.keys() == want.keys()
        for g, w in zip(_leaves(got), _leaves(want), strict=True):
            assert g.dtype == torch.float32 and g.shape == w.shape
            assert (g - w).abs().max() <= 1e-4 + 1e-3 * w.abs().max()
        assert (got["mask"] - want["mask"]).abs().max() <= 1e-4


def test_the_graph_is_cached_by_weights(cache, monkeypatch):
    net = _tiny()
    fast = optimize(net, backend="onnxruntime")
    files = sorted(cache.glob("*.onnx"))
    assert fast.model.path in files and fast.model.path.name == f"{onnx_backend.cache_key(net, 1)}.onnx"
    mtime = fast.model.path.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    with monkeypatch.context() as patch:
        patch.setattr(onnx_backend, "_export", no_export)
        again = optimize(net, backend="onnxruntime")  # a cache hit: loaded, not exported
    assert again.model.path == fast.model.path and fast.model.path.stat().st_mtime_ns == mtime
    assert sorted(cache.glob("*.onnx")) == files
    x = torch.randn(2, 3, 16, 24)
    assert torch.equal(again(x)["mask"], fast(x)["mask"])
    assert (fast(x)["side"][1] - net(x)["side"][1]).abs().max() < 1e-5  # lists come back as lists

    other = _tiny(seed=1)  # other weights, another file
    assert onnx_backend.cache_key(other, 1) != onnx_backend.cache_key(net, 1)
    third = optimize(other, backend="onnxruntime")
    assert third.model.path != fast.model.path and len(list(cache.glob("*.onnx"))) == len(files) + 1
    with torch.no_grad():
        assert (third(x)["mask"] - other(x)["mask"]).abs().max() < 1e-5


def test_a_stale_cache_file_is_exported_again(cache):
    net = _tiny(seed=2)
    path = cache / f"{onnx_backend.cache_key(net, 1)}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a graph")
    fast = optimize(net, backend="onnxruntime")
    assert fast.model.path == path and path.stat().st_size > 100
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert (fast(x)["mask"] - net(x)["mask"]).abs().max() < 1e-5


@pytest.fixture(autouse=True)
def _auto_rule(monkeypatch):
    """conftest keeps the suite on torch (INHARMONY_AUTO_BACKEND=torch); these tests check the rule itself."""
    monkeypatch.delenv("INHARMONY_AUTO_BACKEND", raising=False)


def test_the_environment_overrides_the_auto_backend(monkeypatch):
    monkeypatch.setattr(precision, "cpu_kind", lambda: "fp32-only")
    monkeypatch.setenv("INHARMONY_AUTO_BACKEND", "torch")
    assert auto_backend("cpu") == "torch"
    assert optimize(_tiny(), precision="auto").backend == "torch"
    monkeypatch.setattr(precision, "cpu_kind", lambda: "native bf16")
    monkeypatch.setenv("INHARMONY_AUTO_BACKEND", " ONNXRuntime ")
    assert auto_backend("cpu") == "onnxruntime" and auto_backend("cuda") == "torch"
    monkeypatch.setenv("INHARMONY_AUTO_BACKEND", "tensorrt")
    with pytest.raises(ValueError, match=r"INHARMONY_AUTO_BACKEND='tensorrt': expected one of torch, onnxruntime"):
        auto_backend("cpu")


def test_without_onnxruntime(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    with pytest.raises(
        ImportError, match=r"backend='onnxruntime' needs onnxruntime.*pip install 'inharmony\[export\]'"
    ):
        optimize(_tiny(), backend="onnxruntime")
    monkeypatch.setattr(precision, "cpu_kind", lambda: "fp32-only")
    assert auto_backend("cpu") == "torch"
    fast = optimize(_tiny(), precision="auto")  # the fallback: torch fp32, BatchNorm folded
    assert (fast.backend, fast.precision) == ("torch", "fp32")


def test_backend_errors():
    with pytest.raises(ValueError, match="backend must be one of torch, onnxruntime or auto"):
        optimize(_tiny(), backend="tensorrt")
    with pytest.raises(ValueError, match="fp32 only"):
        optimize(_tiny(), precision="bf16", backend="onnxruntime")
    with pytest.raises(ValueError, match="compile=True is for backend='torch'"):
        optimize(_tiny(), backend="onnxruntime", compile=True)


@pytest.mark.parametrize(
    "kind, backend, dtype",
    [("fp32-only", "onnxruntime", "fp32"), ("native bf16", "torch", "bf16"), ("AMX", "torch", "bf16")],
)
def test_auto_follows_the_cpu_kind(monkeypatch, kind, backend, dtype):
    monkeypatch.setattr(precision, "cpu_kind", lambda: kind)
    assert auto_backend("cpu") == backend
    assert auto_backend("cuda") == "torch"
    fast = optimize(_tiny(), precision="auto")
    assert (fast.backend, fast.precision) == (backend, dtype)
    explicit = optimize(_tiny(), precision="fp32")  # a precision named keeps the torch path
    assert explicit.backend == "torch"


def test_an_export_failure_under_auto_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(precision, "cpu_kind", lambda: "fp32-only")

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_backend, "_export", broken)
    with pytest.warns(UserWarning, match="unsupported operator.*falls back to the torch backend"):
        fast = optimize(_tiny(seed=3), precision="auto")
    assert (fast.backend, fast.precision) == ("torch", "fp32")
    with pytest.raises(RuntimeError, match=r"exporting Tiny to ONNX failed.*unsupported operator"):
        optimize(_tiny(seed=3), backend="onnxruntime")


def test_cpu_kind(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    for flags, kind in [({"avx2", "fma"}, "fp32-only"), ({"avx512f", "avx512_bf16"}, "native bf16"),
                        ({"avx512_bf16", "amx_bf16", "amx_tile"}, "AMX")]:  # fmt: skip
        monkeypatch.setattr(precision, "_cpu_flags", lambda flags=flags: flags)
        assert cpu_kind() == kind
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # torch capped to AVX2: measured as an fp32-only CPU
    assert cpu_kind() == "fp32-only" and not inharmony.inference.bf16_is_fast("cpu")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert cpu_kind() == "native bf16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")
    assert cpu_kind() == "AMX"


def test_predictor_and_predict_go_through_it(monkeypatch, tmp_path, cache):
    monkeypatch.setattr(precision, "cpu_kind", lambda: "fp32-only")
    net = _dirl_tiny()  # Predictor exports the mask only: its own cache entry
    calls = []
    real = onnx_backend.onnxruntime_module
    monkeypatch.setattr(onnx_backend, "onnxruntime_module", lambda *a, **k: calls.append(1) or real(*a, **k))
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    fast = Predictor(net, size=32, device="cpu", precision="auto")
    assert (fast.backend, fast.precision) == ("onnxruntime", "fp32") and calls
    assert np.abs(fast(image) - Predictor(net, size=32, device="cpu")(image)).max() < 1e-4

    folder = hub.save_pretrained(net, tmp_path / "w")
    Image.fromarray(image).save(tmp_path / "img.png")
    calls.clear()
    args = ["predict", str(tmp_path / "img.png"), "--model", "dirl_tiny", "--weights", str(folder), "--size", "32"]
    assert main([*args, "--precision", "auto", "--device", "cpu", "--out", str(tmp_path / "o")]) == EXIT_OK
    assert calls and Image.open(tmp_path / "o" / "img_mask.png").size == (50, 40)


def test_outputs_export_and_return_only_the_keys_asked_for(cache):
    net = _tiny(seed=5)
    x = torch.randn(2, 3, 12, 10)
    with torch.no_grad():
        expected = net(x)["mask"]
    everything = optimize(net, backend="onnxruntime")
    mask_only = optimize(net, backend="onnxruntime", outputs=("mask",))
    assert [o.name for o in mask_only.model.session.get_outputs()] == ["out0"]  # the side maps are not in the graph
    assert len(everything.model.session.get_outputs()) == 3
    assert mask_only.model.path != everything.model.path  # cached apart
    got = mask_only(x)
    assert list(got) == ["mask"] and (got["mask"] - expected).abs().max() < 1e-5
    on_torch = optimize(net, precision="fp32", outputs=("mask",))
    assert list(on_torch(x)) == ["mask"] and (on_torch(x)["mask"] - expected).abs().max() < 1e-5
    with pytest.raises(KeyError, match=r"the network returns no 'image' \(it has \['mask', 'side'\]\)"):
        optimize(net, precision="fp32", outputs=("image",))(x)
