"""Batches that pay: micro-batching is exact, Predictor batches of mixed sizes, ``--batch-size``, auto precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import inharmony
from inharmony import inference
from inharmony import models as hub
from inharmony.cli import EXIT_OK, main
from inharmony.inference import OptimizedModel, Predictor, auto_micro_batch, auto_precision, optimize

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"decoder_channels": 8}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return inharmony.create_model("dirl_resnet18", pretrained=False, **TINY).eval()


@pytest.fixture(scope="module")
def rsrnet():
    torch.manual_seed(0)
    return inharmony.create_model("rsrnet_resnet18", pretrained=False).eval()


def _leaves(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for key in sorted(out) for t in _leaves(out[key])]
    return [t for item in out for t in _leaves(item)]


@pytest.mark.parametrize("net", ["model", "rsrnet"])
def test_micro_batches_equal_each_chunk_alone_and_one_pass(net, request):
    network = request.getfixturevalue(net)
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    chunked = optimize(network, micro_batch=2)
    whole = optimize(network, micro_batch=None)
    assert chunked.chunk_size(x) == 2 and whole.chunk_size(x) == 5
    got = chunked(x)
    # Exact: every image gets what a pass of its own chunk gives (chunks 2, 2, 1), bit for bit ...
    pieces = [whole(part) for part in x.split(2)]
    for key in got:
        for g, *parts in zip(_leaves(got[key]), *[_leaves(p[key]) for p in pieces], strict=True):
            assert g.shape[0] == 5
            assert torch.equal(g, torch.cat(parts))
    # ... and what one pass of the whole batch gives, to float rounding; and eager's.
    one_pass = whole(x)
    with torch.no_grad():
        eager = network(x)
    for g, w, e in zip(_leaves(got), _leaves(one_pass), _leaves(eager), strict=True):
        assert (g - w).abs().max() < 1e-5
        assert (g - e).abs().max() < 1e-5


def test_micro_batch_counts_forward_passes(model):
    fast = optimize(model, micro_batch=3)
    calls = []
    fast.model.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    fast(torch.zeros(7, 3, 32, 32))
    assert calls == [3, 3, 1]


def test_auto_micro_batch_depends_on_device_and_size(model):
    assert auto_micro_batch("cpu", 224, 224) == 2
    assert auto_micro_batch("cpu", 448, 448) == 1
    assert auto_micro_batch("cpu", 1024, 1024) == 1
    assert auto_micro_batch("cpu", 32, 32) == 98  # small inputs still share a pass
    assert auto_micro_batch("cuda", 224, 224) is None
    assert auto_micro_batch("cpu", 224, 224, backend="onnxruntime") is None  # ONNX Runtime: one pass paid best
    fast = optimize(model)  # the default
    assert fast.micro_batch == "auto"
    assert fast.chunk_size(torch.zeros(8, 3, 224, 224)) == 2
    assert fast.chunk_size(torch.zeros(8, 3, 32, 32)) == 8


@pytest.mark.parametrize("bad", [0, -1, 1.5, "big", True])
def test_bad_micro_batch_is_refused(model, bad):
    with pytest.raises(ValueError, match="micro_batch"):
        optimize(model, micro_batch=bad)


def test_predictor_batches_mixed_sizes_like_batch_1(model):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(40, 56, 3), (33, 47, 3), (64, 20, 3)]]
    images.append(rng.integers(0, 256, (50, 50), dtype=np.uint8))  # grey
    one = Predictor(model, size=32, device="cpu", batch_size=1)
    calls = []
    batched = Predictor(model, size=32, device="cpu", batch_size=3)
    handle = batched.model.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    expected = one(images)
    try:
        calls.clear()
        got = batched(images)
    finally:
        handle.remove()
    assert calls == [3, 1]
    for image, e, g in zip(images, expected, got, strict=True):
        assert g.shape == image.shape[:2] == e.shape
        assert np.abs(g - e).max() < 1e-5
    # The same through the optimized path (chunked at the device's size) against eager batch 1.
    fast = Predictor(model, size=32, device="cpu", batch_size=4, precision="fp32")
    for e, g in zip(expected, fast(images), strict=True):
        assert np.abs(g - e).max() < 1e-4


def _cpu_flags(monkeypatch, flags):
    monkeypatch.setattr(inference.precision, "_cpu_flags", lambda: set(flags))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),  # Cooper Lake, Zen 4 (this CI machine)
        ({"avx2", "avx512f", "amx_bf16", "amx_tile"}, "bf16"),  # Sapphire Rapids
        ({"avx2", "avx512f", "avx512_vnni"}, "fp32"),  # Skylake/Cascade Lake: bf16 emulated, slower
        ({"avx2"}, "fp32"),
    ],
)
def test_auto_precision_on_cpus(monkeypatch, model, flags, expected):
    _cpu_flags(monkeypatch, flags)
    # The torch path's choice; ONNX Runtime's (fp32-only CPUs) is tested in test_onnx_backend.py.
    monkeypatch.setattr(inference.precision, "onnxruntime_available", lambda: False)
    assert auto_precision("cpu") == expected
    fast = optimize(model, precision="auto", device="cpu")
    assert isinstance(fast, OptimizedModel) and fast.precision == expected
    assert Predictor(model, size=32, device="cpu", precision="auto").precision == expected


def test_auto_precision_without_cpuinfo_asks_torch(monkeypatch):
    _cpu_flags(monkeypatch, set())
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512_AMX")
    assert auto_precision("cpu") == "bf16"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert auto_precision("cpu") == "fp32"


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_gpus(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert auto_precision("cuda") == expected
    assert auto_precision("mps") == "fp32"


def test_cli_batch_size_is_honoured(tmp_path, model, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i, shape in enumerate([(40, 56, 3), (33, 47, 3), (48, 32, 3), (36, 36, 3), (41, 29, 3)]):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"p{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # skipped, the batch goes on
    weights = hub.save_pretrained(model, tmp_path / "w", model_kwargs=TINY)
    calls = []
    original = Predictor.forward_batch

    def counting(self, batch):
        calls.append(batch.shape[0])
        return original(self, batch)

    monkeypatch.setattr(Predictor, "forward_batch", counting)
    masks = {}
    for batch_size in (1, 4):
        out = tmp_path / f"out{batch_size}"
        code = main([
            "predict", str(folder), "--out", str(out), "--model", "dirl_resnet18", "--weights", str(weights),
            "--size", "32", "--batch-size", str(batch_size),
        ])  # fmt: skip
        assert code != EXIT_OK  # one broken file: exit 1, the others written
        masks[batch_size] = {p.name: np.asarray(Image.open(p)) for p in sorted(out.glob("*_mask.png"))}
    assert calls == [1] * 5 + [3, 2]  # batch 4: broken.jpg, p0, p1, p2 (one skipped), then p3, p4
    assert sorted(masks[1]) == sorted(masks[4]) == [f"p{i}_mask.png" for i in range(5)]
    for name, mask in masks[4].items():
        assert mask.shape == masks[1][name].shape
        assert np.abs(mask.astype(int) - masks[1][name].astype(int)).max() <= 1
