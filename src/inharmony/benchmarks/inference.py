"""``inharmony bench inference``: Predictor latency on a 12-megapixel photo; ONNX Runtime vs eager.

Two figures:

1. End-to-end :class:`~inharmony.inference.Predictor` latency for one 4000×3000 JPEG (decode with
   DCT downscaling, resize, network at ``--size``, mask resized back to 12 MP), median of
   ``--repeats`` runs after a warm-up, with the split between network and the rest.
2. The network alone at ``--size`` (batch 1): eager PyTorch vs ONNX Runtime, median latency and
   the speed ratio (eager time / ONNX Runtime time, > 1 means ONNX Runtime is faster).

Timings depend on the machine's load; the command prints ``nproc``, the thread count and the
1-minute load average next to the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

NAME = "inference"
HELP = "Predictor latency on a 12-MP photo, and ONNX Runtime vs eager PyTorch speed."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="dirl", help="registered model (random weights; speed only)")
    parser.add_argument("--size", type=int, default=224, help="network input size (default 224)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch / ONNX Runtime threads (default: torch's)")
    parser.add_argument("--photo", default=None, help="a photo to use instead of a synthetic 4000×3000 JPEG")
    parser.add_argument("--skip-onnx", action="store_true", help="only the Predictor figure")


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, oneDNN kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def run(args: argparse.Namespace) -> int:
    import torch

    from ..inference import Predictor
    from ..models import create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: nproc={os.cpu_count()}, torch threads={threads}, load average (1 min) {load:.1f}; "
          f"model={args.model} (random weights), network size {args.size}")
    model = create_model(args.model).eval()
    predictor = Predictor(model, size=args.size, device="cpu")

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(args.photo) if args.photo else _synthetic_photo(Path(tmp) / "photo_12mp.jpg")
        total = _median_seconds(lambda: predictor(photo), args.repeats)
        batch, _ = predictor.preprocess(photo)
        pre = _median_seconds(lambda: predictor.preprocess(photo), args.repeats)
        net = _median_seconds(lambda: predictor.forward_batch(batch[None]), args.repeats)
        from PIL import Image

        with Image.open(photo) as image:
            megapixels = image.width * image.height / 1e6
        print(f"Predictor, one {megapixels:.1f}-MP JPEG: {total * 1000:.0f} ms median of {args.repeats} "
              f"(decode+resize {pre * 1000:.0f} ms, network {net * 1000:.0f} ms, "
              f"mask back to full size + rest {max(total - pre - net, 0) * 1000:.0f} ms)")

        if args.skip_onnx:
            return 0
        from ..export import MaskOnly, export_onnx, onnx_session

        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", size=args.size)
        session = onnx_session(onnx_path, threads=threads)
        x = torch.randn(1, 3, args.size, args.size)
        wrapped = MaskOnly(model).eval()

        def eager() -> None:
            with torch.inference_mode():
                wrapped(x)

        feed = {"image": x.numpy()}
        eager_s = _median_seconds(eager, args.repeats)
        ort_s = _median_seconds(lambda: session.run(["mask"], feed), args.repeats)
        print(f"network alone, batch 1 at {args.size}×{args.size}: eager PyTorch {eager_s * 1000:.0f} ms, "
              f"ONNX Runtime {ort_s * 1000:.0f} ms; speed ratio eager/ORT = {eager_s / ort_s:.2f}×")
    return 0
