"""``inharmony bench inference``: the fast inference path against eager PyTorch and ONNX Runtime.

For each model and batch size (default DIRL and RSRNet at 224², batch 1 and 8), side by side in one run,
timed interleaved on the same inputs, per image:

- ``eager fp32``: the model as built, ``torch.inference_mode`` (the baseline);
- ``optimized fp32``: :func:`inharmony.inference.optimize` (BatchNorm folded, channels_last, micro-batched);
- ``optimized bf16``: the same under bf16 autocast;
- ``compiled bf16`` (``--compile``): also ``torch.compile`` with freezing (compiling costs 25–90 s per model);
- ``ONNX Runtime fp32``: the model exported by :func:`inharmony.inference.export.export_onnx` (by hand, mask only);
- ``optimized onnxruntime fp32``: ``optimize(backend="onnxruntime")`` (cached export, every output);
- ``auto → <backend> <precision>``: ``optimize(precision="auto")``, the default fast path on this CPU.

The header gives the CPU's kind (fp32-only, native bf16, AMX; :func:`inharmony.inference.cpu_kind`) and
what ``auto`` picks; a first section measures the machine's ceiling, a 3×3 conv 64→64 at 224² (torch fp32,
torch bf16, ONNX Runtime fp32). Each row has the median and best time per image, the ratio to eager fp32,
the effective GFLOP/s (the model's FLOPs per image over its time) and its share of its own path's conv
ceiling, and the max and mean difference of its mask from eager fp32's. ``ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2`` measures an fp32-only CPU on a newer one for torch; ONNX Runtime picks its
kernels by CPUID and cannot be capped, so compare ONNX Runtime rows with ONNX Runtime rows there.

With ``--weights`` (trained weights) and ``--data`` (a synthetic or iHarmony4 root with a test split), every
contender also scores the test set (AP %, F1, IoU %, the official
protocol) and the change from eager fp32 is printed: what a precision costs on a trained model. Last, the
end-to-end :class:`~inharmony.inference.Predictor` latency on one 12-MP JPEG (decode, resize, network,
mask back to 12 MP), eager fp32 against ``precision="auto"``.

Example:
    inharmony bench inference --json inference.json
    inharmony bench inference --models dirl_resnet18 --weights demo/run/checkpoints/last.ckpt \\
        --data demo/data --eval-size 32
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._ceiling import CONV_GFLOP, CONVS_TEXT
from ._options import PositiveInt, parse_counts, parse_size

NAME = "inference"
_CEILING_TITLE = "machine ceiling: the best 3×3 conv of " + CONVS_TEXT + f" (batch 1, {CONV_GFLOP:.2f} GFLOP each)"
HELP = "Fast path (optimized fp32/bf16, compiled) vs eager and ONNX Runtime, per image, with mask diffs."
SMOKE_ARGS = [
    "--models", "dirl_resnet18", "--size", "32", "--batches", "1,2", "--repeats", "1",
    "--no-onnx", "--photo-size", "64x48",
]  # fmt: skip

MaskFn = Callable[[Any], Any]


def _synthetic_photo(path: Path, width: int = 4000, height: int = 3000) -> Path:
    """A smooth JPEG (gradients + noise) so JPEG decoding costs what a real photo costs."""
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 128 + 100 * np.sin(xx / 300.0)
    green = 128 + 100 * np.cos(yy / 250.0)
    blue = 128 + 60 * np.sin((xx + yy) / 500.0)
    noise = np.random.default_rng(0).normal(0, 8, (height, width, 3))
    rgb = np.clip(np.stack([red, green, blue], -1) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(path, quality=90)
    return path


def _contenders(
    network: Any, tmp: Path, size: int, threads: int, compile: bool, onnx: bool, auto: dict[str, str]
) -> dict[str, MaskFn]:
    """Name → function from a float batch to its (B, 1, H, W) float32 mask, eager fp32 first."""
    import torch

    from ..inference import optimize

    def eager(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = network(x)
        return out["mask"] if isinstance(out, dict) else out

    def wrap(model: Any) -> MaskFn:
        return lambda x: model(x)["mask"]

    mask_only = ("mask",)  # as Predictor asks: ONNX Runtime then computes only what the mask needs

    fns: dict[str, MaskFn] = {"eager fp32": eager}
    fns["optimized fp32"] = wrap(optimize(network, outputs=mask_only, precision="fp32"))
    fns["optimized bf16"] = wrap(optimize(network, outputs=mask_only, precision="bf16"))
    if compile:
        fns["compiled bf16"] = wrap(optimize(network, outputs=mask_only, precision="bf16", compile=True))
    if onnx:
        from ..inference.export import export_onnx, onnx_session

        session = onnx_session(
            export_onnx(network, tmp / f"model{len(list(tmp.iterdir()))}.onnx", size=size), threads=threads
        )
        fns["ONNX Runtime fp32"] = lambda x: torch.from_numpy(session.run(["mask"], {"image": x.numpy()})[0])
        on_ort = optimize(network, outputs=mask_only, precision="fp32", backend="onnxruntime")
        fns["optimized onnxruntime fp32"] = wrap(on_ort)
    if onnx or auto["backend"] != "onnxruntime":
        chosen = optimize(network, outputs=mask_only, precision="auto")
        fns[f"auto → {auto['backend']} {auto['precision']}"] = wrap(chosen)
    return fns


def _mask_diffs(fns: dict[str, MaskFn], x: Any) -> dict[str, dict[str, float]]:
    """Each contender's mask difference from eager fp32 and the time of its first call on ``x``.

    The first call is the warm-up: for ``compiled bf16`` it is the compilation (a new batch size
    compiles again), for the others kernel selection and allocation.
    """
    import time

    out = {}
    reference = None
    for name, fn in fns.items():  # eager fp32 first
        start = time.perf_counter()
        mask = fn(x).float()
        first = time.perf_counter() - start
        reference = mask if reference is None else reference
        diff = (mask - reference).abs()
        out[name] = {"max_diff": float(diff.max()), "mean_diff": float(diff.mean()), "first_call_s": first}
    return out


def _score_test_set(
    fns: dict[str, MaskFn], network: Any, data: str, eval_size: int, limit: int | None
) -> dict[str, dict[str, float]]:
    """AP %, F1, IoU % of every contender on ``data``'s test split, and its masks' difference from eager fp32."""
    import torch

    from ..constants import IMAGENET_MEAN, IMAGENET_STD
    from ..data import IHarmony4, eval_transform
    from ..metrics import LocalizationMetrics

    cfg = getattr(network, "pretrained_cfg", None)
    transform = eval_transform(
        eval_size, mean=getattr(cfg, "mean", IMAGENET_MEAN), std=getattr(cfg, "std", IMAGENET_STD)
    )
    dataset = IHarmony4(data, split="test", transform=transform)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    metrics = {name: LocalizationMetrics() for name in fns}
    diffs = {name: [0.0, 0.0] for name in fns}  # max, sum of per-pixel differences
    pixels = 0
    for start in range(0, count, 8):
        items = [dataset[i] for i in range(start, min(start + 8, count))]
        x = torch.stack([item["image"] for item in items])
        target = torch.stack([item["mask"] for item in items]).float()
        if target.dim() == 3:
            target = target[:, None]
        reference = fns["eager fp32"](x).float()
        pixels += reference.numel()
        for name, fn in fns.items():
            mask = reference if name == "eager fp32" else fn(x).float()
            metrics[name].update(mask, target)
            diff = (mask - reference).abs()
            diffs[name][0] = max(diffs[name][0], float(diff.max()))
            diffs[name][1] += float(diff.sum())
    scores = {}
    for name, metric in metrics.items():
        values = {key: float(value) for key, value in metric.compute().items()}
        scores[name] = {
            "images": count,
            "ap": 100 * values["ap"],
            "f1": values["f1"],
            "iou": 100 * values["iou"],
            "max_diff": diffs[name][0],
            "mean_diff": diffs[name][1] / max(1, pixels),
        }
    return scores


def run(
    models: list[str] | None = None,
    size: PositiveInt = 224,
    batches: str = "1,8",
    repeats: PositiveInt = 3,
    threads: PositiveInt | None = None,
    compile: bool = False,
    onnx: bool = True,
    weights: str | None = None,
    trust_checkpoint: bool = False,
    data: str | None = None,
    eval_size: PositiveInt | None = None,
    test_images: PositiveInt | None = None,
    photo: str | None = None,
    photo_size: str = "4000x3000",
    json: str | None = None,
) -> int:
    """The fast inference path vs eager PyTorch and ONNX Runtime, side by side, per image; Predictor end to end.

    Without ``--weights`` the models have random weights (speed and mask differences only).

    Args:
        models: Registered models (default: dirl and rsrnet); with ``--weights``, the one they belong to.
        size: Network input size of the timings.
        batches: Batch sizes, comma-separated.
        repeats: Timed rounds (median and best reported).
        threads: Torch / ONNX Runtime threads (default: torch's).
        compile: Also time ``torch.compile`` bf16 (each model compiles for 25–90 s first).
        onnx: Also time ONNX Runtime fp32 (``--no-onnx``: skip; exporting takes a while).
        weights: Trained weights for the model (see :func:`inharmony.load`).
        trust_checkpoint: Allow pickled Python objects in a ``.ckpt`` (only for files you made).
        data: A synthetic or iHarmony4 root with a test split: each contender's AP/F1/IoU on it (needs
            ``--weights`` to mean anything).
        eval_size: Network size for the test set (default: ``--size``; the demo model: 32).
        test_images: Score only the first N test images.
        photo: A photo for the Predictor figure instead of a synthetic 4000×3000 JPEG.
        photo_size: Size of the synthetic photo, WIDTHxHEIGHT.
        json: Also write the report as JSON to this path.

    Example:
        inharmony bench inference --models dirl --batches 1 --compile
    """
    import torch

    from ..inference import Predictor, resize_mask
    from ..models import create_model, load
    from ._ceiling import add_throughput, auto_choice, conv_ceiling, model_gflop
    from ._report import BenchReport, environment, time_interleaved

    sizes = parse_counts(batches, "--batches")
    parse_size(photo_size, "--photo-size")  # checked before any timing, used at the end
    names = models or ["dirl", "rsrnet"]
    if weights is not None and len(names) != 1:
        raise ValueError("--weights belong to one model: name it with --models, e.g. --models dirl_resnet18")
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    report = BenchReport(NAME, environment("cpu"))
    auto = auto_choice("cpu")
    report.results["auto"] = auto
    report.results["auto_precision"] = auto["precision"]
    report.notes.append(
        f"CPU kind: {auto['cpu_kind']}; optimize(precision='auto') picks {auto['backend']} {auto['precision']} here"
        + ("" if onnx or auto["backend"] != "onnxruntime" else " (not timed: --no-onnx)")
    )
    ceilings = _ceiling_section(report, conv_ceiling, repeats, onnx)
    first_network = None
    with tempfile.TemporaryDirectory(prefix="inharmony-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for name in names:
            torch.manual_seed(0)
            if weights is not None:
                network = load(name, weights, device="cpu", trust_checkpoint=trust_checkpoint).eval()
            else:
                network = create_model(name, pretrained=False).eval()
            first_network = first_network or network
            fns = _contenders(network, tmp, size, threads, compile, onnx, auto)
            gflop = model_gflop(network, size)
            report.results.setdefault("gflop_per_image", {})[name] = gflop
            # the optimized paths compute the mask only (eager runs the whole forward, as the authors' code)
            gflop_mask = model_gflop(network, size, outputs=("mask",))
            report.results.setdefault("gflop_per_image_mask_only", {})[name] = gflop_mask
            for b in sizes:
                x = torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(b))
                diffs = _mask_diffs(fns, x)  # also the warm-up (compiles, oneDNN kernels)
                times = time_interleaved({k: (lambda f=f, x=x: f(x)) for k, f in fns.items()}, repeats, warmup=0)
                section = report.section(f"{name} {size}² batch {b}", baseline="eager fp32", per="/img")
                for key, values in times.items():
                    row = section.add(key, [t / b for t in values], **diffs[key])
                    work = gflop if key == "eager fp32" else gflop_mask
                    add_throughput(row.extra, key, work, row.median_s, ceilings)
            if data is not None:
                scores = _score_test_set(fns, network, data, eval_size or size, test_images)
                report.results.setdefault("test_set", {})[name] = scores
                base = scores["eager fp32"]
                section = report.section(
                    f"{name} on {data} test ({base['images']} images at {eval_size or size}²): "
                    "AP %, F1, IoU % and the change from eager fp32",
                    unit="s",
                )
                section.notes += [
                    f"{key}: AP {s['ap']:.2f} ({s['ap'] - base['ap']:+.2f}), F1 {s['f1']:.4f} "
                    f"({s['f1'] - base['f1']:+.4f}), IoU {s['iou']:.2f} ({s['iou'] - base['iou']:+.2f}); "
                    f"mask diff max {s['max_diff']:.3g} mean {s['mean_diff']:.3g}"
                    for key, s in scores.items()
                ]
            del fns

        # End to end on one big photo: the first model, eager fp32 vs precision="auto".
        width, height = parse_size(photo_size, "--photo-size")
        image_path = Path(photo) if photo else _synthetic_photo(tmp / "photo.jpg", width, height)
        eager = Predictor(first_network, size=size, device="cpu", batch_size=1)
        backend = "auto" if onnx else "torch"
        fast = Predictor(first_network, size=size, device="cpu", batch_size=1, precision="auto", backend=backend)
        times = time_interleaved(
            {
                "eager fp32": lambda: eager(image_path),
                f"precision=auto ({fast.backend} {fast.precision})": lambda: fast(image_path),
            },
            repeats,
        )
        tensor, (full_h, full_w) = eager.preprocess(image_path)
        section = report.section(
            f"Predictor, one {full_w}×{full_h} photo end to end ({names[0]}, network at {size}²)",
            baseline="eager fp32",
            per="/img",
        )
        for key, values in times.items():
            section.add(key, values)
        prob = eager.forward_batch(tensor[None])[0, 0]
        parts = time_interleaved(
            {
                "decode + resize + normalise": lambda: eager.preprocess(image_path),
                "network, eager fp32": lambda: eager.forward_batch(tensor[None]),
                f"network, {fast.backend} {fast.precision} optimized": lambda: fast.forward_batch(tensor[None]),
                f"mask back to {full_w}×{full_h}": lambda: resize_mask(prob, full_h, full_w),
            },
            repeats,
        )
        section = report.section("  its parts")
        for key, values in parts.items():
            section.add(key, values)
    _final_ceiling(report, ceilings)
    return report.finish(json)


def _ceiling_section(report: Any, conv_ceiling: Callable[..., dict[str, float]], repeats: int, onnx: bool) -> Any:
    """Measure the conv ceiling and add its section; the :class:`Ceilings` (call :func:`_final_ceiling` at the end)."""
    from ._ceiling import Ceilings

    ceilings = Ceilings(
        conv_ceiling(repeats, onnx=onnx, bf16=True), measure=lambda: conv_ceiling(repeats, onnx=onnx, bf16=True)
    )
    report.results["conv_ceiling_gflops"] = dict(ceilings)
    report.section(_CEILING_TITLE, unit="ms")
    _ceiling_rows(report, ceilings)
    return ceilings


def _ceiling_rows(report: Any, ceilings: dict[str, float]) -> None:
    from ..inference import bf16_is_fast
    from ._ceiling import CONV_GFLOP

    section = next(section for section in report.sections if section.title == _CEILING_TITLE)
    section.contenders.clear()
    section.notes.clear()
    for name, rate in ceilings.items():
        section.add(f"conv {name}", [CONV_GFLOP / rate], **{"GFLOP/s": rate})
    if not bf16_is_fast("cpu"):
        section.notes.append("bf16 is emulated on this CPU (fp32-only kind): its figure is not a ceiling")


def _final_ceiling(report: Any, ceilings: Any) -> None:
    """Measure the ceiling again at the end of the run; keep each path's best (rows' shares follow)."""
    ceilings.remeasure()
    report.results["conv_ceiling_gflops"] = dict(ceilings)
    _ceiling_rows(report, ceilings)
    next(s for s in report.sections if s.title == _CEILING_TITLE).notes.append(
        "the best of two measurements, at the start and at the end of this run"
    )
