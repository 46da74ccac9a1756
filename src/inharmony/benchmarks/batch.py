"""``inharmony bench batch``: does a bigger batch pay? Time per image against batch size.

For each model and precision, the optimized network (:func:`inharmony.inference.optimize`: BatchNorm folded,
channels_last) runs batches of 1, 2, 4 and 8 images at ``--size``, both as one forward pass and micro-batched
(``micro_batch="auto"``: the chunk size :func:`~inharmony.inference.auto_micro_batch` picks for the device),
all timed interleaved in one process; with ``--onnx`` (default) also the ONNX Runtime backend
(``optimize(backend="onnxruntime")``, fp32). Each row is the time per image, with its ratio to batch 1 (> 1:
the batch costs less per image than batch 1), the effective GFLOP/s and its share of the path's conv
ceiling (measured first, see :mod:`inharmony.benchmarks._ceiling`). On a CPU a single pass of a big batch at
full resolution spills the last-level cache and costs more per image; the micro-batched rows show what the
Predictor pays. PCTNet (``forward(image, mask)``, not an :func:`~inharmony.inference.optimize` network) runs
eager fp32, as the harmonizer runs it, on images and masks at ``--size``.

Example:
    inharmony bench batch --models dirl --models rsrnet --json batch.json
"""

from __future__ import annotations

from typing import Any

from ._options import PositiveInt, parse_counts

NAME = "batch"
HELP = "Time per image against batch size (1/2/4/8), one pass vs micro-batched, fp32 and bf16."
SMOKE_ARGS = [
    "--models", "dirl_resnet18", "--size", "32", "--batches", "1,2", "--repeats", "1", "--micro-batch", "1",
    "--no-onnx",
]  # fmt: skip


def _takes_mask(network: Any) -> bool:
    import inspect

    return "mask" in inspect.signature(network.forward).parameters


def _paths(network: Any, precisions: list[str], device: str, onnx: bool) -> list[tuple[str, str]]:
    """``(backend, precision)`` pairs timed for ``network``."""
    if _takes_mask(network):
        return [("eager", "fp32")]
    paths = [("torch", p) for p in precisions if p != "fp16" or device == "cuda"]
    if onnx and device == "cpu":
        paths.append(("onnxruntime", "fp32"))
    return paths


def _builders(network: Any, backend: str, precision: str, device: str, chunk: int | None) -> tuple[Any, Any]:
    """The one-pass and the micro-batched callables (batch → output) of a path."""
    import torch

    from ..inference import optimize

    if backend != "eager":
        kwargs = {"precision": precision, "device": device, "backend": backend, "outputs": ("mask",)}  # as Predictor
        return optimize(network, micro_batch=None, **kwargs), optimize(network, micro_batch=chunk, **kwargs)
    network = network.to(device).eval()

    def one_pass(*x: Any) -> Any:
        with torch.inference_mode():
            return network(*x)

    def chunked(*x: Any) -> Any:
        with torch.inference_mode():
            parts = [network(*part) for part in zip(*(t.split(chunk or len(x[0])) for t in x), strict=True)]
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}

    return one_pass, chunked


def run(
    models: list[str] | None = None,
    size: PositiveInt = 224,
    batches: str = "1,2,4,8",
    precisions: str = "fp32,bf16",
    repeats: PositiveInt = 3,
    threads: PositiveInt | None = None,
    micro_batch: PositiveInt | None = None,
    onnx: bool = True,
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
        onnx: Also time the ONNX Runtime backend, fp32 (``--no-onnx``: skip; the first export takes a while).
        json: Also write the report as JSON to this path.

    Example:
        inharmony bench batch --models dirl --precisions bf16 --repeats 5
    """
    import torch

    from ..inference import PRECISIONS, auto_micro_batch
    from ..models import create_model
    from ._ceiling import CONVS_TEXT, Ceilings, add_throughput, auto_choice, conv_ceiling, model_gflop
    from ._report import BenchReport, environment, time_interleaved

    sizes = parse_counts(batches, "--batches")
    chosen = [p.strip() for p in precisions.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PRECISIONS]
    if unknown or not chosen:
        raise ValueError(f"--precisions must name some of {', '.join(PRECISIONS)}; got {precisions!r}")
    if threads:
        torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = BenchReport(NAME, environment(device))
    sync = torch.cuda.synchronize if device == "cuda" else None
    report.results["auto"] = auto = auto_choice(device)
    report.notes.append(
        f"CPU kind: {auto['cpu_kind']}; optimize(precision='auto') picks {auto['backend']} {auto['precision']} here"
    )
    measure = (lambda: conv_ceiling(repeats, onnx=onnx and device == "cpu")) if device == "cpu" else dict
    ceilings = Ceilings(measure(), measure=measure)
    chunks = {key: micro_batch or auto_micro_batch(device, size, size, key) for key in ("torch", "onnxruntime")}
    chunks["eager"] = micro_batch or auto_micro_batch(device, size, size)
    report.results["micro_batch"] = chunks["torch"]
    report.results["micro_batch_onnxruntime"] = chunks["onnxruntime"]
    for name in models or ["dirl", "rsrnet"]:
        torch.manual_seed(0)
        network = create_model(name, pretrained=False).eval()
        masked = _takes_mask(network)
        inputs = {}
        for b in sizes:
            generator = torch.Generator().manual_seed(b)
            image = (
                torch.rand(b, 3, size, size, generator=generator)
                if masked
                else torch.randn(b, 3, size, size, generator=generator)
            )
            mask = (torch.rand(b, 1, size, size, generator=generator) > 0.5).float()
            inputs[b] = tuple(t.to(device) for t in ((image, mask) if masked else (image,)))
        one = tuple(t[:1] for t in inputs[min(sizes)])
        gflop = model_gflop(network, size, *one)
        report.results.setdefault("gflop_per_image", {})[name] = gflop
        gflop_mask = model_gflop(network, size, *one, outputs=("mask",))  # what the optimized paths compute
        report.results.setdefault("gflop_per_image_mask_only", {})[name] = gflop_mask
        output = "image" if masked else "mask"
        for backend, precision in _paths(network, chosen, device, onnx):
            chunk = chunks[backend]
            one_pass, chunked = _builders(network, backend, precision, device, chunk)
            contenders: dict[str, Any] = {}
            per_image: dict[str, int] = {}
            diffs: dict[str, float] = {}
            for b in sizes:
                contenders[f"batch {b}"] = lambda b=b, f=one_pass, x=inputs: f(*x[b])
                per_image[f"batch {b}"] = b
                if chunk is not None and chunk < b:
                    label = f"batch {b}, chunks of {chunk}"
                    contenders[label] = lambda b=b, f=chunked, x=inputs: f(*x[b])
                    per_image[label] = b
                    got, want = contenders[label]()[output], contenders[f"batch {b}"]()[output]
                    diffs[label] = float((got - want).abs().max())
            times = time_interleaved(contenders, repeats, sync=sync)
            base = f"batch {min(sizes)}"
            where = "eager" if backend == "eager" else f"optimized {backend}"
            section = report.section(
                f"{name} {size}² {where} {precision}: time per image vs batch size", baseline=base, per="/img"
            )
            for label, values in times.items():
                n = per_image[label]
                row = section.add(label, [t / n for t in values], max_diff_vs_one_pass=diffs.get(label))
                work = gflop if backend == "eager" else gflop_mask
                add_throughput(row.extra, f"{backend} {precision}", work, row.median_s, ceilings)
    ceilings.remeasure()  # the best of the start and the end of the run
    report.results["conv_ceiling_gflops"] = dict(ceilings)
    report.notes += [
        f"conv ceiling (the best 3×3 conv of {CONVS_TEXT}; measured at the start and the end), {name}: "
        f"{rate:.1f} GFLOP/s"
        for name, rate in ceilings.items()
    ]
    return report.finish(json)
