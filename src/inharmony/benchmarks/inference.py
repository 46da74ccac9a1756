"""``inharmony bench inference``: Predictor latency on a 12-megapixel photo; ONNX Runtime vs eager.

Two figures:

1. End-to-end :class:`~inharmony.inference.Predictor` latency for one 4000×3000 JPEG (the evaluation
   preprocessing of :mod:`inharmony.preprocessing`: decode, with DCT downscaling where it allows it,
   resize and normalise; network at ``--size``; mask resized back to 12 MP), median of
   ``--repeats`` runs after a warm-up, with the split between network and the rest.
2. The network alone at ``--size`` (batch 1): eager PyTorch vs ONNX Runtime, median latency and
   the speed ratio (eager time / ONNX Runtime time, > 1 means ONNX Runtime is faster).

Timings depend on the machine's load; the command prints ``nproc``, the thread count and the
1-minute load average next to the numbers.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

NAME = "inference"
HELP = "Predictor latency on a 12-MP photo, and ONNX Runtime vs eager PyTorch speed."


class _Timing:
    """Median and best of repeated runs: on a shared machine the best is the closer to the idle cost."""

    def __init__(self, times: list[float]) -> None:
        self.median = statistics.median(times)
        self.best = min(times)

    def __str__(self) -> str:
        return f"{self.median * 1000:.0f} ms median / {self.best * 1000:.0f} ms best"


def _time(fn, repeats: int) -> _Timing:
    fn()  # warm-up (allocations, oneDNN kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return _Timing(times)


def _synthetic_photo(path: Path, width: int = 4000, height: int = 3000) -> Path:
    """A smooth 12-MP JPEG (gradients + shapes) so JPEG decoding costs what a real photo costs."""
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


def run(
    model: str = "dirl",
    size: int = 224,
    repeats: int = 5,
    threads: int | None = None,
    photo: str | None = None,
    skip_onnx: bool = False,
) -> int:
    """Predictor latency on a 12-MP photo, and ONNX Runtime vs eager PyTorch speed.

    First the end-to-end :class:`~inharmony.inference.Predictor` latency for one 4000×3000 JPEG, split
    into preprocessing, network and mask resizing; then the network alone (batch 1) in eager PyTorch
    and in ONNX Runtime. The model has random weights: only the speed is measured.

    Args:
        model: Registered model (random weights; speed only).
        size: Network input size.
        repeats: Timed runs per figure (median reported).
        threads: Torch / ONNX Runtime threads (default: torch's).
        photo: A photo to use instead of a synthetic 4000×3000 JPEG.
        skip_onnx: Only the Predictor figure.

    Example:
        inharmony bench inference --threads 1
    """
    import torch

    from ..inference import Predictor, resize_mask
    from ..models import create_model

    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: nproc={os.cpu_count()}, torch threads={threads}, load average (1 min) {load:.1f}; "
          f"model={model} (random weights), network size {size}")
    network = create_model(model).eval()
    predictor = Predictor(network, size=size, device="cpu")

    with tempfile.TemporaryDirectory() as tmp:
        image_path = Path(photo) if photo else _synthetic_photo(Path(tmp) / "photo_12mp.jpg")
        total = _time(lambda: predictor(image_path), repeats)
        batch, _ = predictor.preprocess(image_path)
        pre = _time(lambda: predictor.preprocess(image_path), repeats)
        net = _time(lambda: predictor.forward_batch(batch[None]), repeats)
        mask = predictor.forward_batch(batch[None])[0, 0].cpu()
        height, width = predictor(image_path).shape
        post = _time(lambda: resize_mask(mask, height, width), repeats)
        from PIL import Image

        with Image.open(image_path) as image:
            megapixels = image.width * image.height / 1e6
        print(f"Predictor, one {megapixels:.1f}-MP JPEG, {repeats} runs: {total}")
        print(f"  parts: decode+resize+normalise {pre}; network {net}; mask back to {width}x{height} {post}")

        if skip_onnx:
            return 0
        from ..export import MaskOnly, export_onnx, onnx_session

        onnx_path = export_onnx(network, Path(tmp) / "model.onnx", size=size)
        session = onnx_session(onnx_path, threads=threads)
        x = torch.randn(1, 3, size, size)
        wrapped = MaskOnly(network).eval()

        def eager() -> None:
            with torch.inference_mode():
                wrapped(x)

        feed = {"image": x.numpy()}
        # Interleaved, so that load changes on a shared machine hit both sides alike.
        eager_times, ort_times = [], []
        eager()
        session.run(["mask"], feed)
        for _ in range(repeats):
            start = time.perf_counter()
            eager()
            eager_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            session.run(["mask"], feed)
            ort_times.append(time.perf_counter() - start)
        eager_t, ort_t = _Timing(eager_times), _Timing(ort_times)
        print(f"network alone, batch 1 at {size}x{size}: eager PyTorch {eager_t}; ONNX Runtime {ort_t}")
        print(f"  speed ratio eager/ORT: {eager_t.median / ort_t.median:.2f}x (medians), "
              f"{eager_t.best / ort_t.best:.2f}x (best runs)")
    return 0
