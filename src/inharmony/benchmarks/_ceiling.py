"""How close to the machine's limit a path runs: model FLOPs, the conv ceiling, the CPU's kind and ``auto``'s choice.

The ceiling is one 3×3 convolution, 64 → 64 channels, on a 224² map (batch 1, 3.7 GFLOP): the layer that
dominates the full-resolution stage of DIRL, RSRNet and MadisNet, timed in the same run as the networks,
by torch (fp32, and bf16 where the CPU has it natively) and by ONNX Runtime (fp32). A network's effective
GFLOP/s is its FLOPs per image (counted by ``torch.utils.flop_counter``: 2 per multiply-add) over its time
per image.

Example:
    >>> from torch import nn
    >>> round(model_gflop(nn.Conv2d(3, 64, 3, padding=1), 224), 3), round(CONV_GFLOP, 2)  # 2·3·64·9·224²
    (0.173, 3.7)
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONV_GFLOP", "add_throughput", "auto_choice", "conv_ceiling", "model_gflop"]

_CONV = (64, 64, 224)  # in channels, out channels, side
CONV_GFLOP = 2 * _CONV[0] * _CONV[1] * 9 * _CONV[2] * _CONV[2] / 1e9


def model_gflop(network: Any, size: int, *inputs: Any) -> float:
    """GFLOP of one forward pass of ``network`` on one ``size²`` image (or on ``inputs`` when given)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    args = inputs or (torch.zeros(1, 3, size, size),)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        network(*args)
    return counter.get_total_flops() / 1e9


def auto_choice(device: str = "cpu") -> dict[str, str]:
    """The CPU's kind and what ``optimize(precision="auto")`` picks there (backend, precision)."""
    from ..inference import auto_backend, auto_precision, cpu_kind

    backend = auto_backend(device)
    precision = "fp32" if backend == "onnxruntime" else auto_precision(device)
    return {"cpu_kind": cpu_kind(), "backend": backend, "precision": precision}


def _onnx_conv(weight: Any) -> Any:
    """An ONNX Runtime session of the one ceiling convolution (built directly: no exporter needed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from ..inference.export import onnx_session

    cin, cout, side = _CONV
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, side, side])],
        [numpy_helper.from_array(weight.numpy(), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    import tempfile
    from pathlib import Path

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "conv.onnx"
        onnx.save(model, str(path))
        return onnx_session(path, threads=torch.get_num_threads())


def conv_ceiling(repeats: int, onnx: bool = True, bf16: bool = True) -> dict[str, float]:
    """GFLOP/s of the ceiling convolution per path: ``torch fp32``, ``torch bf16``, ``onnxruntime fp32``.

    Each is the best of ``repeats`` rounds (timed interleaved) of 3 calls: a ceiling is what the machine
    can do, so the best round, not the median.
    """
    import torch

    from ._report import time_interleaved

    cin, cout, side = _CONV
    conv = torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False).eval()
    x = torch.randn(1, cin, side, side)
    conv_cl = torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False).eval().to(memory_format=torch.channels_last)
    conv_cl.load_state_dict(conv.state_dict())
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def torch_run(module: Any, inp: Any, dtype: Any = None) -> Any:
        def run() -> None:
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                for _ in range(3):
                    module(inp)

        return run

    contenders = {
        "torch fp32": torch_run(conv_cl, x_cl),
        "torch fp32 NCHW": torch_run(conv, x),
    }
    if bf16:
        contenders["torch bf16"] = torch_run(conv_cl, x_cl, torch.bfloat16)
    if onnx:
        session, array = _onnx_conv(conv.weight.detach()), x.numpy()
        contenders["onnxruntime fp32"] = lambda: [session.run(None, {"x": array}) for _ in range(3)]
    times = time_interleaved(contenders, max(1, repeats))
    out = {name: 3 * CONV_GFLOP / min(values) for name, values in times.items()}
    out["torch fp32"] = max(out.pop("torch fp32"), out.pop("torch fp32 NCHW"))  # the better layout
    return out


def ceiling_for(name: str, ceilings: dict[str, float]) -> float | None:
    """The ceiling a contender is measured against: ONNX Runtime's, bf16's or torch fp32's conv."""
    lowered = name.lower()
    if "onnx" in lowered:
        return ceilings.get("onnxruntime fp32")
    if "bf16" in lowered or "fp16" in lowered:
        return ceilings.get("torch bf16")
    return ceilings.get("torch fp32")


def add_throughput(extra: dict[str, Any], name: str, gflop: float, seconds: float, ceilings: dict[str, float]) -> None:
    """Add ``GFLOP/s`` and ``of ceiling`` (the share of its path's conv ceiling) to a contender's figures."""
    rate = gflop / seconds if seconds > 0 else float("nan")
    extra["GFLOP/s"] = rate
    ceiling = ceiling_for(name, ceilings)
    extra["of ceiling"] = f"{rate / ceiling:.0%}" if ceiling else None
