"""``inharmony bench train``: wall time of one training step (forward, loss, backward, Adam step).

Example:
    inharmony bench train --model dirl --model rsrnet --size 224 --batch-size 8 --repeats 2
"""

from __future__ import annotations

import os
import statistics
import time

NAME = "train"
HELP = "Time one training step (forward + model's loss + backward + Adam) per model on random data."


def measure_step(name: str, size: int, batch_size: int, repeats: int, device: str = "cpu") -> dict[str, float]:
    """Seconds per training step of ``name`` with its default loss recipe (median and min of ``repeats``)."""
    import torch

    from ..losses import loss_for_model
    from ..models import create_model

    torch.manual_seed(0)
    model = create_model(name).train().to(device)
    loss_fn = loss_for_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    image = torch.randn(batch_size, 3, size, size, device=device)
    target = torch.zeros(batch_size, 1, size, size, device=device)
    target[..., size // 4 : size // 2, size // 4 : 3 * size // 4] = 1

    def step() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(image), target)["loss"].backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    step()  # warm-up: allocator, oneDNN primitive caches
    times = [step() for _ in range(repeats)]
    return {"median_s": statistics.median(times), "min_s": min(times), "times": times}


def run(
    model: list[str] | None = None,
    size: int = 224,
    batch_size: int = 8,
    repeats: int = 3,
    device: str = "cpu",
    threads: int | None = None,
) -> int:
    """Time one training step (forward + the model's loss + backward + Adam) per model on random data.

    Args:
        model: Model names (repeat ``--model``); default: dirl and rsrnet.
        size: Square input size.
        batch_size: Images per step.
        repeats: Timed steps (after one warm-up step).
        device: ``cpu``, ``cuda``, ...
        threads: ``torch.set_num_threads`` (default: torch's).

    Example:
        inharmony bench train --model dirl --model rsrnet --size 224 --batch-size 8 --repeats 2
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    names = model or ["dirl", "rsrnet"]
    load = os.getloadavg()
    print(
        f"one training step, batch {batch_size}x3x{size}x{size}, device {device}, "
        f"{torch.get_num_threads()} threads on {os.cpu_count()} CPUs, load average {load[0]:.1f} at start"
    )
    print(f"{'model':<16} {'median s/step':>14} {'min s/step':>11}   all")
    for name in names:
        r = measure_step(name, size, batch_size, repeats, device)
        steps = ", ".join(f"{t:.1f}" for t in r["times"])
        print(f"{name:<16} {r['median_s']:>14.2f} {r['min_s']:>11.2f}   [{steps}]")
    print(f"load average at end {os.getloadavg()[0]:.1f} (a busy machine inflates these times)")
    return 0
