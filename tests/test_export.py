"""ONNX export: dynamic batch and size, outputs equal eager PyTorch within 1e-4 on two sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import inharmony

onnx = pytest.importorskip("onnx", reason="the 'export' extra (onnx, onnxscript, onnxruntime) is not installed")
ort = pytest.importorskip("onnxruntime")

from inharmony.inference.export import check_onnx, export_onnx  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two OpenMP threads on a shared 2-core machine are ~10x slower
    torch.manual_seed(0)
    model = inharmony.create_model("dirl_resnet18", decoder_channels=8).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "dirl18.onnx", size=32)
    yield model, path
    torch.set_num_threads(before)


def test_graph_declares_dynamic_batch_and_size(exported):
    _, path = exported
    graph = onnx.load(str(path)).graph
    (image,) = graph.input
    dims = image.type.tensor_type.shape.dim
    assert dims[1].dim_value == 3
    assert all(d.dim_param and not d.dim_value for d in (dims[0], dims[2], dims[3]))
    assert [o.name for o in graph.output] == ["mask"]


@pytest.mark.parametrize("batch, height, width", [(1, 48, 48), (3, 32, 80)])
def test_onnx_matches_eager_within_1e4(exported, batch, height, width):
    model, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(height))
    with torch.no_grad():
        expected = model(x)["mask"].numpy()
    (got,) = session.run(None, {"image": x.numpy()})
    assert got.shape == (batch, 1, height, width)
    assert np.abs(got - expected).max() <= 1e-4
    assert expected.std() > 0  # a constant output would make the comparison meaningless


def test_check_onnx_reports_and_raises(exported):
    model, path = exported
    report = check_onnx(model, path, sizes=[(32, 32), (64, 48)], batch=1)
    assert set(report) == {(32, 32), (64, 48)} and max(report.values()) <= 1e-4
    other = inharmony.create_model("dirl_resnet18", decoder_channels=8).eval()  # different random weights
    with pytest.raises(AssertionError, match="differs from eager"):
        check_onnx(other, path, sizes=[(32, 32)], batch=1)


def test_export_rejects_sizes_that_are_not_multiples_of_16(exported, tmp_path):
    with pytest.raises(ValueError, match="multiple of 16"):
        export_onnx(exported[0], tmp_path / "x.onnx", size=40)


def test_export_reads_the_size_multiple_from_the_registry(tmp_path):
    import dataclasses

    model = inharmony.create_model("dirl_resnet18", decoder_channels=8).eval()
    model.pretrained_cfg = dataclasses.replace(model.pretrained_cfg, size_multiple=32)
    with pytest.raises(ValueError, match="multiple of 32"):
        export_onnx(model, tmp_path / "x.onnx", size=48)
    assert not (tmp_path / "x.onnx").exists()


def test_export_command_reports_unusable_weights(tmp_path, capsys):
    from inharmony.cli import main

    code = main(["export", "--model", "dirl_resnet18", "--weights", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "m.onnx")])
    assert code == 2 and "weights not found" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
