"""``forward_outputs``: DIRL and MadisNet compute only the outputs asked for, and ``optimize(outputs=)`` uses it.

The mask never reads the finest fused level (the decoder starts at stride 2), so without the attention maps
the finest BFI block and MDA must not run, and the mask must be the one ``forward`` gives, bit for bit.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import inharmony
from inharmony.inference import optimize

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NETWORKS = {
    "dirl_resnet18": {"decoder_channels": 8},
    "madisnet": {},
    "madisnet_unet": {},
}


def _localizer(net: nn.Module) -> nn.Module:
    """The module holding ``fusion`` and ``attention`` (DIRL itself, or MadisNet's DIRL localizer)."""
    return net.localizer if hasattr(net, "localizer") else net


def _finest_calls(net: nn.Module) -> list[str]:
    """Hooks that record each call of the finest level's BFI block and MDA; returns the record."""
    calls: list[str] = []
    if not hasattr(_localizer(net), "fusion"):
        return calls
    inner = _localizer(net)
    inner.fusion.levels[0].register_forward_hook(lambda *_: calls.append("bfi0"))
    inner.attention[0].register_forward_hook(lambda *_: calls.append("mda0"))
    return calls


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def network(request):
    torch.manual_seed(0)
    net = inharmony.create_model(request.param, pretrained=False, **NETWORKS[request.param]).eval()
    with torch.no_grad():  # trained-like BatchNorm statistics, so a skipped or reordered op would show
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return request.param, net


def test_each_subset_equals_forward_bit_for_bit(network):
    name, net = network
    x = torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = net(x)
        keys = list(full)
        for key in keys:
            part = net.forward_outputs(x, (key,))
            assert list(part) == [key]
            expected, got = full[key], part[key]
            if isinstance(expected, list):
                assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
            else:
                assert torch.equal(got, expected), (name, key)
        assert list(net.forward_outputs(x, tuple(reversed(keys)))) == keys  # the network's order, not the caller's


def test_the_mask_alone_skips_the_finest_level():
    torch.manual_seed(0)
    for name in ("dirl_resnet18", "madisnet"):
        net = inharmony.create_model(name, pretrained=False, **NETWORKS[name]).eval()
        calls = _finest_calls(net)
        x = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            net(x)
            assert calls == ["bfi0", "mda0"], name
            calls.clear()
            net.forward_outputs(x, ("mask",))
            assert calls == [], name


@pytest.mark.parametrize("outputs", [("masks",), (), ("mask", "image")])
def test_unknown_or_no_keys_are_named(network, outputs):
    _, net = network
    with pytest.raises(KeyError, match=r"this network returns 'mask', 'retouched'|this network returns 'mask', 'att"):
        net.forward_outputs(torch.zeros(1, 3, 32, 32), outputs)


def test_optimize_with_outputs_runs_only_what_the_mask_needs(monkeypatch):
    torch.manual_seed(0)
    net = inharmony.create_model("dirl_resnet18", pretrained=False, **NETWORKS["dirl_resnet18"]).eval()
    x = torch.randn(2, 3, 32, 32)
    every = optimize(net, precision="fp32", backend="torch")
    mask_only = optimize(net, precision="fp32", backend="torch", outputs=("mask",))
    calls = _finest_calls(mask_only.model)
    got = mask_only(x)
    assert list(got) == ["mask"] and calls == []
    assert torch.equal(got["mask"], every(x)["mask"])  # same folded network, same mask

    seen = {}

    def fake_compile(target, **kwargs):
        seen["target"] = target
        return target

    monkeypatch.setattr(torch, "compile", fake_compile)
    compiled = optimize(net, precision="fp32", backend="torch", outputs=("mask",), compile=True)
    calls = _finest_calls(compiled.model)
    assert list(compiled(x)) == ["mask"] and calls == []
    assert seen["target"].network is compiled.model and seen["target"].keys == ("mask",)


def test_bench_counts_the_work_each_path_runs():
    """Effective GFLOP/s of the optimized paths divide the mask's FLOPs, not the whole forward's."""
    from inharmony.benchmarks._ceiling import model_gflop

    torch.manual_seed(0)
    dirl = inharmony.create_model("dirl_resnet18", pretrained=False, **NETWORKS["dirl_resnet18"]).eval()
    full, mask = model_gflop(dirl, 32), model_gflop(dirl, 32, outputs=("mask",))
    assert 0 < mask < full
    unet = inharmony.create_model("unet", pretrained=False).eval()  # no forward_outputs: the whole forward
    assert model_gflop(unet, 32, outputs=("mask",)) == model_gflop(unet, 32)
