"""``inharmony bench batch``: does a bigger batch pay? Time per image against batch size.

For each model and precision, the optimized network (:func:`inharmony.inference.optimize`: BatchNorm folded,
channels_last) runs batches of 1, 2, 4 and 8 images at ``--size``, both as one forward pass and micro-batched
(``micro_batch="auto"``: the chunk size :func:`~inharmony.inference.auto_micro_batch` picks for the device),
all timed interleaved in one process. Each row is the time per image, with its ratio to batch 1 (> 1: the
batch costs less per image than batch 1). On a CPU a single pass of a big batch at full resolution spills
the last-level cache and costs more per image; the micro-batched rows show what the Predictor pays.

Example:
    inharmony bench batch --models dirl --models rsrnet --json batch.json
"""

from __future__ import annotations

from typing import Any

NAME = "batch"
HELP = "Time per image against batch size (1/2/4/8), one pass vs micro-batched, fp32 and bf16."
SMOKE_ARGS = ["--models", "dirl_resnet18", "--size", "32", "--batches", "1,2", "--repeats", "1", "--micro-batch", "1"]


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"{option} must be positive integers separated by commas, e.g. 1,2,4,8; got {text!r}")
    return values


def run(
    models: list[str] | None = None,
    size: int = 224,
    batches: str = "1,2,4,8",
    precisions: str = "fp32,bf16",
    repeats: int = 3,
    threads: int | None = None,
    micro_batch: int | None = None,
    json: str | None = None,
) -> int:
    """Time per image against batch size, one pass vs micro-batched, for each model and precision.

    The models have random weights (speed only); the micro-batched outputs are checked against the
    one-pass outputs (max difference printed).

    Args:
        models: Registered models (default: dirl and rsrnet).
        size: Network input size.
        batches: Batch sizes, comma-separated.
        precisions: :func:`~inharmony.inference.optimize` precisions, comma-separated (fp32, bf16, fp16).
        repeats: Timed rounds (median and best reported).
        threads: Torch threads (default: torch's).
        micro_batch: Chunk size of the micro-batched rows (default: what ``micro_batch="auto"`` picks here).
        json: Also write the report as JSON to this path.

    Example:
        inharmony bench batch --models dirl --precisions bf16 --repeats 5
    """
    import torch

    from ..inference import PRECISIONS, auto_micro_batch, optimize
    from ..models import create_model
    from ._report import BenchReport, environment, time_interleaved

    sizes = _ints(batches, "--batches")
    chosen = [p.strip() for p in precisions.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PRECISIONS]
    if unknown or not chosen:
        raise ValueError(f"--precisions must name some of {', '.join(PRECISIONS)}; got {precisions!r}")
    if threads:
        torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = BenchReport(NAME, environment(device))
    sync = torch.cuda.synchronize if device == "cuda" else None
    chunk = micro_batch or auto_micro_batch(device, size, size)
    report.results["micro_batch"] = chunk
    for name in models or ["dirl", "rsrnet"]:
        torch.manual_seed(0)
        network = create_model(name, pretrained=False).eval()
        for precision in chosen:
            if precision == "fp16" and device != "cuda":
                continue
            one_pass = optimize(network, precision=precision, device=device, micro_batch=None)
            chunked = optimize(network, precision=precision, device=device, micro_batch=chunk)
            inputs = {
                b: torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(b)).to(device) for b in sizes
            }
            contenders: dict[str, Any] = {}
            per_image: dict[str, int] = {}
            diffs: dict[str, float] = {}
            for b in sizes:
                contenders[f"batch {b}"] = lambda b=b, f=one_pass, x=inputs: f(x[b])
                per_image[f"batch {b}"] = b
                if chunk is not None and chunk < b:
                    label = f"batch {b}, chunks of {chunk}"
                    contenders[label] = lambda b=b, f=chunked, x=inputs: f(x[b])
                    per_image[label] = b
                    got, want = chunked(inputs[b])["mask"], one_pass(inputs[b])["mask"]
                    diffs[label] = float((got - want).abs().max())
            times = time_interleaved(contenders, repeats, sync=sync)
            base = f"batch {min(sizes)}"
            section = report.section(
                f"{name} {size}² optimized {precision}: time per image vs batch size", baseline=base, per="/img"
            )
            for label, values in times.items():
                n = per_image[label]
                section.add(label, [t / n for t in values], max_diff_vs_one_pass=diffs.get(label))
    return report.finish(json)
