"""``inharmony bench model``: parameters, FLOPs and eager CPU/GPU latency of registered models."""

from __future__ import annotations

import statistics
import time

NAME = "model"
HELP = "Parameter count, FLOPs (torch.utils.flop_counter) and eager inference latency per model."


def measure(name: str, size: int, batch_size: int, repeats: int, device: str) -> dict[str, float]:
    """Figures for one model: parameters, GFLOPs per image, median/min latency in ms per batch."""
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
    }


def run(
    model: list[str] | None = None,
    size: int = 224,
    batch_size: int = 1,
    repeats: int = 10,
    device: str = "cpu",
    threads: int | None = None,
) -> int:
    """Parameter count, FLOPs (torch.utils.flop_counter) and eager inference latency per model.

    Args:
        model: Model names (repeat ``--model``); default: every registered model.
        size: Square input size.
        batch_size: Images per forward pass.
        repeats: Timed forward passes (after 2 warm-up passes).
        device: ``cpu``, ``cuda``, ...
        threads: ``torch.set_num_threads`` (default: torch's).

    Example:
        inharmony bench model --model dirl --size 224 --threads 2
    """
    import torch

    from ..models import list_models

    if threads:
        torch.set_num_threads(threads)
    names = model or list_models()
    print(
        f"input {batch_size}x3x{size}x{size}, device {device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print("FLOPs as torch.utils.flop_counter counts them (2 per multiply-add); MACs = FLOPs / 2.")
    print(f"{'model':<16} {'params':>12} {'GFLOPs/img':>11} {'median ms':>10} {'min ms':>9}")
    for name in names:
        r = measure(name, size, batch_size, repeats, device)
        print(f"{name:<16} {r['params']:>12,} {r['gflops']:>11.1f} {r['median_ms']:>10.1f} {r['min_ms']:>9.1f}")
    return 0
