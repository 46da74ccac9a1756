"""``inharmony bench metrics``: metric throughput and streaming memory.

Times :func:`inharmony.metrics.localization_metrics` (AP, F1, IoU of the official protocol) and,
in the same run and on the same images, a per-image scikit-learn loop (the authors' way:
``average_precision_score`` per image plus NumPy F1/IoU). Then streams a whole test set's worth
of images (7,237 = iHarmony4 le50 test) through the metrics and reports the process's peak
resident memory after 1,000 images and at the end (equal figures mean constant memory); the
streaming runs first because a peak, once reached, stays.
Predictions are synthetic (blurred blobs plus noise) and generated outside the timed region.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from typing import Literal

NAME = "metrics"
HELP = "Throughput (images/s) of AP/F1/IoU vs a per-image scikit-learn loop, and streaming peak memory."


def _batch(n: int, size: int, seed: int):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.randint(size // 5, 4 * size // 5, (n, 2, 1, 1), generator=g)
    radius = torch.randint(size // 12, size // 4, (n, 1, 1), generator=g)
    target = (((yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2) <= radius**2).float().unsqueeze(1)
    blurred = F.avg_pool2d(target, 9, 1, 4)
    preds = (0.7 * blurred + 0.3 * torch.rand(n, 1, size, size, generator=g)).clamp(0, 1)
    return preds, target


def _sklearn_scores(preds, target, protocol: str) -> list[tuple[float, float, float]]:
    import numpy as np
    from sklearn.metrics import average_precision_score

    rows = []
    for p, t in zip(preds.numpy(), target.numpy(), strict=True):
        p, t = p.ravel(), t.ravel() > 0.5
        if protocol == "official":
            lo, hi = p.min(), p.max()
            p = p - lo if hi - lo < np.float32(0.01) else (p - lo) / (hi - lo)
        ap = average_precision_score(t, p)
        b = p > 0.5
        tp = float(np.count_nonzero(b & t))
        prec, rec = tp / (b.sum() + 1e-6), tp / (t.sum() + 1e-6)
        rows.append((ap, 2 * prec * rec / (prec + rec + 1e-6), tp / (b.sum() + t.sum() - tp + 1e-6)))
    return rows


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run(
    size: int = 224,
    batch_size: int = 32,
    compare_images: int = 256,
    stream_images: int = 7237,
    repeats: int = 3,
    threads: int | None = None,
    protocol: Literal["official", "raw"] = "official",
) -> int:
    """Throughput (images/s) of AP/F1/IoU vs a per-image scikit-learn loop, and streaming peak memory.

    Predictions are synthetic (blurred blobs plus noise), generated outside the timed region. The
    streaming part reports the process's peak resident memory after 1,000 images and at the end
    (equal figures mean constant memory).

    Args:
        size: Mask side in pixels.
        batch_size: Images per metric update.
        compare_images: Images timed for both implementations (inharmony and scikit-learn).
        stream_images: Images streamed through the metrics for the memory figure (7,237 = le50 test).
        repeats: Timing repeats; the median is reported.
        threads: Torch intra-op threads (default: torch's).
        protocol: ``official`` (each prediction min-max normalised, as the official code scores) or ``raw``.

    Example:
        inharmony bench metrics --threads 1
    """
    import numpy as np
    import torch

    from ..metrics import PerImageAveragePrecision, localization_metrics

    try:
        import sklearn  # noqa: F401  (the reference implementation)
    except ImportError:
        print("inharmony bench metrics compares against scikit-learn: pip install scikit-learn")
        return 2
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    bs = batch_size
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"inharmony bench metrics: {size}x{size} masks, batch {bs}, protocol={protocol}")
    print(f"  CPU cores (nproc): {os.cpu_count()}, torch threads: {threads}, load average (1 min): {load:.2f}")

    # ---------------------------------------------------------------- streaming memory
    total = stream_images
    metrics = localization_metrics(protocol)
    preds, target = _batch(bs, size, seed=0)
    metrics.update(preds, target)  # allocator warmed with one batch
    metrics.reset()
    before = _peak_rss_mib()
    checkpoints: list[tuple[int, float]] = []  # (images seen, peak RSS) at 1000, 2000, 4000, ...
    next_mark = 1000
    seen, busy = 0, 0.0
    while seen < total:
        preds, target = _batch(min(bs, total - seen), size, seed=10_000 + seen)
        start = time.perf_counter()
        metrics.update(preds, target)
        busy += time.perf_counter() - start
        seen += preds.shape[0]
        if seen >= next_mark:
            checkpoints.append((seen, _peak_rss_mib()))
            next_mark *= 2
    values = {k: float(v) for k, v in metrics.compute().items()}
    end = _peak_rss_mib()
    state_bytes = sum(state.element_size() * state.numel() for state in metrics.metric_state.values())
    print(f"\nStreaming {seen} images of {size}x{size} in batches of {bs}:")
    print(f"  metric update time {busy:.1f} s ({seen / busy:.1f} images/s)")
    marks = ", ".join(f"{rss:.0f} MiB after {n}" for n, rss in [*checkpoints, (seen, end)])
    print(f"  process peak RSS: {before:.0f} MiB after imports and one warm-up batch; {marks} images")
    print(
        f"  metric state: {state_bytes} bytes; images scored {int(metrics.images)}, "
        f"empty ground truth {int(metrics.empty_target)}"
    )
    print("  means: " + ", ".join(f"{k}={v:.6f}" for k, v in values.items()))

    # ---------------------------------------------------------------- same images, both ways
    n = compare_images
    batches = [_batch(min(bs, n - i), size, seed=i) for i in range(0, n, bs)]

    def ours_all() -> dict[str, float]:
        metrics = localization_metrics(protocol)
        for preds, target in batches:
            metrics.update(preds, target)
        return {k: float(v) for k, v in metrics.compute().items()}

    def ours_ap() -> float:
        metric = PerImageAveragePrecision(protocol)
        for preds, target in batches:
            metric.update(preds, target)
        return float(metric.compute())

    def sklearn_loop() -> dict[str, float]:
        rows = [r for preds, target in batches for r in _sklearn_scores(preds, target, protocol)]
        return dict(zip(("ap", "f1", "iou"), np.mean(rows, axis=0).tolist(), strict=True))

    timings: dict[str, list[float]] = {"ours_all": [], "ours_ap": [], "sklearn": []}
    results = {}
    ours_all()  # warm-up (allocator, lazy imports)
    for _ in range(max(1, repeats)):  # interleaved so that load changes hit all three alike
        for name, fn in (("ours_all", ours_all), ("ours_ap", ours_ap), ("sklearn", sklearn_loop)):
            start = time.perf_counter()
            results[name] = fn()
            timings[name].append(time.perf_counter() - start)
    diff = max(abs(results["ours_all"][k] - results["sklearn"][k]) for k in ("ap", "f1", "iou"))
    print(f"\nThroughput on the same {n} images (median of {len(timings['sklearn'])} interleaved repeats):")
    rate = {k: n / statistics.median(v) for k, v in timings.items()}
    print(f"  inharmony AP+F1+IoU (one Metric):         {rate['ours_all']:8.1f} images/s")
    print(f"  inharmony AP only:                        {rate['ours_ap']:8.1f} images/s")
    print(f"  scikit-learn per-image loop (AP+F1+IoU):  {rate['sklearn']:8.1f} images/s")
    print(f"  speed-up (all three): {rate['ours_all'] / rate['sklearn']:.2f}x")
    print(f"  max |difference| of the means, inharmony vs scikit-learn: {diff:.2e}")
    print("  means: " + ", ".join(f"{k}={v:.6f}" for k, v in results["ours_all"].items()))

    return 0
