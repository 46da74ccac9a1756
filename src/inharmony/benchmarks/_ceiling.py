"""How close to the machine's limit a path runs: model FLOPs, the conv ceiling, the CPU's kind and ``auto``'s choice.

The ceiling is the best of three 3×3 convolutions of the same work (batch 1, 3.7 GFLOP each): 64 → 64
channels on a 224² map, 256 → 256 on 56², 512 → 512 on 28², the layers that dominate DIRL, RSRNet and
MadisNet (wide layers run closer to the machine's peak than the full-resolution one). It is timed in the same
run as the networks, by torch (fp32, and bf16 where the CPU has it natively) and by ONNX Runtime (fp32), at
the start and again at the end of a run (:class:`Ceilings`): on a shared machine one measurement can come out
low, and a ceiling is the best the machine did. A network's effective GFLOP/s is its FLOPs per image (counted
by ``torch.utils.flop_counter``: 2 per multiply-add) over its time per image.

Example:
    >>> from torch import nn
    >>> round(model_gflop(nn.Conv2d(3, 64, 3, padding=1), 224), 3), round(CONV_GFLOP, 2)  # 2·3·64·9·224²
    (0.173, 3.7)
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONVS", "CONV_GFLOP", "Ceilings", "add_throughput", "auto_choice", "conv_ceiling", "model_gflop"]

CONVS = ((64, 64, 224), (256, 256, 56), (512, 512, 28))
"""The ceiling convolutions: in channels, out channels, side (the same FLOPs each)."""
CONV_GFLOP = 2 * CONVS[0][0] * CONVS[0][1] * 9 * CONVS[0][2] ** 2 / 1e9
CONVS_TEXT = ", ".join(f"{cin}→{cout} at {side}²" for cin, cout, side in CONVS)


def model_gflop(network: Any, size: int, *inputs: Any, outputs: tuple[str, ...] | None = None) -> float:
    """GFLOP of one forward pass of ``network`` on one ``size²`` image (or on ``inputs`` when given).

    With ``outputs``, of the work those outputs need (``network.forward_outputs`` where it has one: what the
    optimized paths run when asked for the mask only; DIRL at 224²: 187 instead of 209 GFLOP).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    args = inputs or (torch.zeros(1, 3, size, size),)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        if outputs is not None and hasattr(network, "forward_outputs"):
            network.forward_outputs(*args, outputs)
        else:
            network(*args)
    return counter.get_total_flops() / 1e9


def auto_choice(device: str = "cpu") -> dict[str, str]:
    """The CPU's kind and what ``optimize(precision="auto")`` picks there (backend, precision)."""
    from ..inference import auto_backend, auto_precision, cpu_kind

    backend = auto_backend(device)
    precision = "fp32" if backend == "onnxruntime" else auto_precision(device)
    return {"cpu_kind": cpu_kind(), "backend": backend, "precision": precision}


def _onnx_conv(weight: Any, side: int) -> Any:
    """An ONNX Runtime session of one ceiling convolution (built directly: no exporter needed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from ..inference.export import onnx_session

    cout, cin = weight.shape[:2]
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
    """GFLOP/s of the ceiling convolutions per path: ``torch fp32``, ``torch bf16``, ``onnxruntime fp32``.

    Each path's figure is its best convolution of :data:`CONVS` (and for torch fp32 the better layout), each
    the best of ``repeats`` rounds (timed interleaved) of 3 calls: a ceiling is what the machine can do, so
    the best round, not the median.
    """
    import torch

    from ._report import time_interleaved

    def torch_run(module: Any, inp: Any, dtype: Any = None) -> Any:
        def run() -> None:
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                for _ in range(3):
                    module(inp)

        return run

    contenders: dict[tuple[str, int], Any] = {}
    for index, (cin, cout, side) in enumerate(CONVS):
        conv = torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False).eval()
        x = torch.randn(1, cin, side, side)
        conv_cl = torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False).eval().to(memory_format=torch.channels_last)
        conv_cl.load_state_dict(conv.state_dict())
        x_cl = x.contiguous(memory_format=torch.channels_last)
        contenders["torch fp32", index] = torch_run(conv_cl, x_cl)
        contenders["torch fp32 NCHW", index] = torch_run(conv, x)
        if bf16:
            contenders["torch bf16", index] = torch_run(conv_cl, x_cl, torch.bfloat16)
        if onnx:
            session, array = _onnx_conv(conv.weight.detach(), side), x.numpy()
            contenders["onnxruntime fp32", index] = lambda s=session, a=array: [s.run(None, {"x": a}) for _ in range(3)]
    times = time_interleaved(contenders, max(1, repeats))
    out: dict[str, float] = {}
    for (name, _), values in times.items():
        name = "torch fp32" if name == "torch fp32 NCHW" else name  # the better layout
        out[name] = max(out.get(name, 0.0), 3 * CONV_GFLOP / min(values))
    return out


class Ceilings(dict):
    """The conv ceiling per path (GFLOP/s), and the rows that show their share of it.

    :meth:`remeasure` measures again and keeps each path's best, then updates every tracked row's
    ``of ceiling``: a bench measures at its start and its end, so one low measurement on a busy machine
    does not make a row pass 100 %.

    Example:
        >>> ceilings = Ceilings({"torch fp32": 100.0}, measure=lambda: {"torch fp32": 150.0})
        >>> row = {}
        >>> add_throughput(row, "eager fp32", 3.0, 0.025, ceilings)
        >>> row["of ceiling"], ceilings.remeasure(), row["of ceiling"]
        ('120%', None, '80%')
    """

    def __init__(self, rates: dict[str, float], measure: Any = None) -> None:
        super().__init__(rates)
        self._measure = measure
        self.rows: list[tuple[dict[str, Any], str, float, float]] = []

    def remeasure(self) -> None:
        """Measure again (when a measure was given), keep each path's best, refresh the tracked rows."""
        if self._measure is None:
            return
        for name, rate in self._measure().items():
            self[name] = max(self.get(name, 0.0), rate)
        for extra, name, gflop, seconds in self.rows:
            _share(extra, name, gflop, seconds, self)


def ceiling_for(name: str, ceilings: dict[str, float]) -> float | None:
    """The ceiling a contender is measured against: ONNX Runtime's, bf16's or torch fp32's conv."""
    lowered = name.lower()
    if "onnx" in lowered:
        return ceilings.get("onnxruntime fp32")
    if "bf16" in lowered or "fp16" in lowered:
        return ceilings.get("torch bf16")
    return ceilings.get("torch fp32")


def add_throughput(extra: dict[str, Any], name: str, gflop: float, seconds: float, ceilings: dict[str, float]) -> None:
    """Add ``GFLOP/s`` and ``of ceiling`` (the share of its path's conv ceiling) to a contender's figures.

    With :class:`Ceilings`, the row is tracked: :meth:`Ceilings.remeasure` updates its share.
    """
    if isinstance(ceilings, Ceilings):
        ceilings.rows.append((extra, name, gflop, seconds))
    _share(extra, name, gflop, seconds, ceilings)


def _share(extra: dict[str, Any], name: str, gflop: float, seconds: float, ceilings: dict[str, float]) -> None:
    rate = gflop / seconds if seconds > 0 else float("nan")
    extra["GFLOP/s"] = rate
    ceiling = ceiling_for(name, ceilings)
    extra["of ceiling"] = f"{rate / ceiling:.0%}" if ceiling else None
