"""Every registered model: build, forward, backward, export, configuration. One tester for all."""

from __future__ import annotations

import pytest
import torch

import inharmony
from inharmony.models import get_pretrained_cfg, list_models

MODELS = list_models(task="localization")  # S2AM (harmonizers): tests/test_s2am_model.py


def _maps(output: object) -> list[torch.Tensor]:
    """Every tensor in a model's output dict (values may be tensors or lists of tensors)."""
    found: list[torch.Tensor] = []
    values = output.values() if isinstance(output, dict) else output
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        else:
            found.extend(_maps(value))
    return found


@pytest.fixture(scope="module", params=MODELS)
def model_and_name(request: pytest.FixtureRequest) -> tuple[torch.nn.Module, str]:
    torch.manual_seed(0)
    return inharmony.create_model(request.param), request.param


def test_at_least_dirl_is_registered() -> None:
    assert "dirl" in MODELS


@pytest.mark.parametrize("batch,height,width", [(2, 64, 64), (1, 48, 80)])
def test_forward_backward(model_and_name: tuple[torch.nn.Module, str], batch: int, height: int, width: int) -> None:
    model, name = model_and_name
    model.train()
    x = torch.randn(batch, 3, height, width)
    out = model(x)
    assert isinstance(out, dict) and "mask" in out
    assert out["mask"].shape == (batch, 1, height, width), name
    # every predicted map (masks, attention, MadisNet's retouched RGB image) is at the input's size in [0, 1];
    # "composite" is MadisNet's input handed to its loss in training mode, not a prediction
    maps = _maps({key: value for key, value in out.items() if key != "composite"})
    for value in maps:
        assert value.shape[0] == batch and value.shape[1] in (1, 3) and value.shape[2:] == (height, width), name
        assert torch.isfinite(value).all()
        assert value.min() >= 0 and value.max() <= 1
    # A loss that touches every output reaches every parameter with finite gradients.
    sum(m.mean() for m in maps).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), f"{name}: a parameter got no gradient"
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.zero_grad(set_to_none=True)


def test_pretrained_cfg_is_populated(model_and_name: tuple[torch.nn.Module, str]) -> None:
    model, name = model_and_name
    cfg = model.pretrained_cfg
    assert cfg is get_pretrained_cfg(name)
    assert cfg.architecture == name
    channels, height, width = cfg.input_size
    assert channels == 3 and height == width and height in (224, 256)  # the papers' sizes (MadisNet: 256)
    assert height % cfg.size_multiple == 0
    assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)
    assert cfg.paper and cfg.paper_url.startswith("https://") and cfg.license


def test_torch_export_matches_eager(model_and_name: tuple[torch.nn.Module, str]) -> None:
    """torch.export (not torch.jit.trace, which refuses dict outputs holding lists, and is the
    path the ONNX exporter takes) captures the whole graph and reproduces eager outputs."""
    model, _ = model_and_name
    model.eval()
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        exported = torch.export.export(model, (x,))
        eager = _maps(model(x))
        captured = _maps(exported.module()(x))
    assert len(eager) == len(captured)
    for a, b in zip(eager, captured, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 60, 64), (1, 3, 64, 70)])
def test_sizes_not_multiple_of_16_are_refused(model_and_name: tuple[torch.nn.Module, str], shape: tuple) -> None:
    model, _ = model_and_name
    with pytest.raises(ValueError, match=rf"{shape[2]}×{shape[3]}.*multiples of 16"):
        model(torch.randn(*shape))


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 4, 64, 64), (1, 1, 64, 64)])
def test_wrong_layout_is_refused(model_and_name: tuple[torch.nn.Module, str], shape: tuple) -> None:
    model, _ = model_and_name
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(*shape))


def test_eval_mode_is_deterministic(model_and_name: tuple[torch.nn.Module, str]) -> None:
    model, _ = model_and_name
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        first, second = _maps(model(x)), _maps(model(x))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
