"""``inharmony bench model``: parameters, FLOPs and eager CPU/GPU latency of registered models."""

from __future__ import annotations

import statistics
import time
from typing import Any

from ._options import PositiveInt

NAME = "model"
HELP = "Parameter count, FLOPs (torch.utils.flop_counter) and eager inference latency per model."
SMOKE_ARGS = ["--model", "unet", "--size", "32", "--repeats", "1"]
QUICK_ARGS = ["--model", "dirl", "--model", "rsrnet", "--repeats", "3"]


def measure(name: str, size: int, batch_size: int, repeats: int, device: str) -> dict[str, Any]:
    """Figures for one model: parameters, GFLOPs per image, median/min latency in ms per batch, the times in s."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..models import create_model

    model = create_model(name).eval().to(device)
    x = torch.randn(batch_size, 3, size, size, device=device)
    params = sum(p.numel() for p in model.parameters())
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        flops = counter.get_total_flops() / batch_size
        for _ in range(2):
            model(x)
        times = []
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return {
        "params": params,
        "gflops": flops / 1e9,
        "median_ms": statistics.median(times) * 1e3,
        "min_ms": min(times) * 1e3,
        "times": times,
    }


def run(
    model: list[str] | None = None,
    size: PositiveInt = 224,
    batch_size: PositiveInt = 1,
    repeats: PositiveInt = 10,
    device: str = "cpu",
    threads: PositiveInt | None = None,
    json: str | None = None,
) -> int:
    """Parameter count, FLOPs (torch.utils.flop_counter) and eager inference latency per model.

    One section, one row per model (eager fp32, random weights); the models are not alternatives to
    each other, so there is no baseline and no ratio. FLOPs as torch.utils.flop_counter counts them
    (2 per multiply-add; MACs = FLOPs / 2).

    Args:
        model: Model names (repeat ``--model``); default: every registered model.
        size: Square input size.
        batch_size: Images per forward pass.
        repeats: Timed forward passes (after 2 warm-up passes).
        device: ``cpu``, ``cuda``, ...
        threads: ``torch.set_num_threads`` (default: torch's).
        json: Also write the report as JSON to this path.

    Example:
        inharmony bench model --model dirl --size 224 --threads 2
    """
    import torch

    from ..models import list_models
    from ._report import BenchReport, environment

    if threads:
        torch.set_num_threads(threads)
    names = model or list_models()
    report = BenchReport(NAME, environment(device))
    section = report.section(f"eager fp32, input {batch_size}x3x{size}x{size}", unit="ms", per="/batch")
    section.notes.append("FLOPs as torch.utils.flop_counter counts them (2 per multiply-add); MACs = FLOPs / 2.")
    for name in names:
        r = measure(name, size, batch_size, repeats, device)
        section.add(name, r["times"], params=f"{r['params']:,}", **{"GFLOPs/img": round(r["gflops"], 2)})
    return report.finish(json)
