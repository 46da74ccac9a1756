"""``inharmony bench metrics``: official-protocol metrics vs the authors' per-image loop, and streaming memory.

One section per update size (images per ``Metric.update``, e.g. 1, 25 and 200) and thread count,
all on the same synthetic 224² predictions (blurred blobs plus noise, generated outside the timed
region), timed interleaved in one process:

* ``authors' loop (scikit-learn per image)``, the baseline: the DIRL authors' evaluation
  (``evaluation/metrics.py`` + ``dirl_test.py`` of bcmi/DIRL-Inharmonious-Region-Localization) restated
  with NumPy: per image, min-max normalisation, scikit-learn's ``average_precision_score``, F1 and IoU
  at 0.5 with eps 1e-6;
* ``inharmony AP+F1+IoU``: :func:`inharmony.metrics.localization_metrics`, updated batch by batch;
* ``inharmony AP only``: :class:`inharmony.metrics.PerImageAveragePrecision`.

Times are per image; the ``max |Δ mean|`` column is the largest difference of the three means from
the baseline's (identical values up to float64 rounding). Then a whole test set's worth of images
(7,237 = iHarmony4 le50 test) streams through the metrics, and the process's peak resident memory
after 1,000 images and at the end goes into ``results`` (equal figures mean constant memory); the
streaming runs first because a peak, once reached, stays.
"""

from __future__ import annotations

import resource
import time
from typing import Any, Literal

from ._options import NonNegativeInt, PositiveInt, parse_counts
from ._report import BenchReport, environment, time_interleaved

NAME = "metrics"
HELP = "Official-protocol AP/F1/IoU vs the authors' per-image scikit-learn loop (1/25/200-image updates), memory."
SMOKE_ARGS = ["--size", "32", "--update-sizes", "1,4", "--images", "8", "--stream-images", "20", "--repeats", "1"]
QUICK_ARGS = ["--repeats", "3", "--stream-images", "1000"]
FULL_ARGS = ["--threads", "1,2"]

BASELINE = "authors' loop (scikit-learn per image)"
ALL_THREE = "inharmony AP+F1+IoU"
AP_ONLY = "inharmony AP only"


def _batch(n: int, size: int, seed: int):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.randint(size // 5, 4 * size // 5, (n, 2, 1, 1), generator=g)
    radius = torch.randint(max(1, size // 12), max(2, size // 4), (n, 1, 1), generator=g)
    target = (((yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2) <= radius**2).float().unsqueeze(1)
    blurred = F.avg_pool2d(target, 9, 1, 4)
    preds = (0.7 * blurred + 0.3 * torch.rand(n, 1, size, size, generator=g)).clamp(0, 1)
    return preds, target


def _sklearn_scores(preds, target, protocol: str) -> list[tuple[float, float, float]]:
    """The authors' per-image loop: normalise, ``average_precision_score``, F1 and IoU at 0.5 (eps 1e-6)."""
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


def _stream(size: int, batch_size: int, total: int, protocol: str) -> dict[str, Any]:
    """Stream ``total`` images through the metrics; peak RSS along the way, update time, state size."""
    from ..metrics import localization_metrics

    metrics = localization_metrics(protocol)
    preds, target = _batch(batch_size, size, seed=0)
    metrics.update(preds, target)  # allocator warmed with one batch
    metrics.reset()
    before = _peak_rss_mib()
    checkpoints: list[tuple[int, float]] = []  # (images seen, peak RSS) at 1000, 2000, 4000, ...
    next_mark, seen, busy = 1000, 0, 0.0
    while seen < total:
        preds, target = _batch(min(batch_size, total - seen), size, seed=10_000 + seen)
        start = time.perf_counter()
        metrics.update(preds, target)
        busy += time.perf_counter() - start
        seen += preds.shape[0]
        if seen >= next_mark:
            checkpoints.append((seen, _peak_rss_mib()))
            next_mark *= 2
    means = {k: float(v) for k, v in metrics.compute().items()}
    return {
        "images": seen,
        "size": size,
        "batch_size": batch_size,
        "update_s": busy,
        "images_per_s": seen / busy if busy else None,
        "peak_rss_mib_after_warmup": before,
        "peak_rss_mib": {str(n): rss for n, rss in [*checkpoints, (seen, _peak_rss_mib())]},
        "state_bytes": sum(s.element_size() * s.numel() for s in metrics.metric_state.values()),
        "images_scored": int(metrics.images),
        "empty_target": int(metrics.empty_target),
        "means": means,
    }


def run(
    size: PositiveInt = 224,
    update_sizes: str = "1,25,200",
    images: PositiveInt = 200,
    threads: str = "1",
    repeats: PositiveInt = 5,
    stream_images: NonNegativeInt = 7237,
    stream_batch_size: PositiveInt = 32,
    protocol: Literal["official", "raw"] = "official",
    json: str | None = None,
) -> int:
    """Official-protocol AP/F1/IoU vs the authors' per-image scikit-learn loop (1/25/200-image updates), memory.

    Every section scores the same ``--images`` synthetic predictions, split into updates of one of
    ``--update-sizes`` images, with one of ``--threads``; contenders are timed interleaved and their
    times are per image. Then ``--stream-images`` images stream through the metrics for the memory
    figure (in the JSON's ``results``).

    Args:
        size: Mask side in pixels.
        update_sizes: Images per metric update, comma-separated (one section each).
        images: Images scored per timed repeat (the same for every contender).
        threads: Torch intra-op thread counts, comma-separated (one section each).
        repeats: Interleaved timing repeats; the median is reported.
        stream_images: Images streamed through the metrics for the memory figure (7,237 = le50 test; 0 = skip).
        stream_batch_size: Images per update while streaming.
        protocol: ``official`` (each prediction min-max normalised, as the official code scores) or ``raw``.
        json: Also write the report as JSON to this path.

    Example:
        inharmony bench metrics --update-sizes 1,25,200 --threads 1,2 --json metrics.json
    """
    import numpy as np
    import torch

    from ..metrics import PerImageAveragePrecision, localization_metrics

    try:
        import sklearn  # noqa: F401  (the reference implementation)
    except ImportError:
        print("inharmony bench metrics compares against scikit-learn: pip install scikit-learn")
        return 2
    thread_counts = parse_counts(threads, "--threads") if str(threads).strip() else [torch.get_num_threads()]
    torch.set_num_threads(thread_counts[0])
    report = BenchReport(NAME, environment("cpu"))
    report.env["threads"] = thread_counts[0] if len(thread_counts) == 1 else ",".join(map(str, thread_counts))

    if stream_images:
        report.results["streaming"] = _stream(size, stream_batch_size, stream_images, protocol)

    preds, target = _batch(images, size, seed=1)
    for n_threads in thread_counts:
        torch.set_num_threads(n_threads)
        for update in parse_counts(update_sizes, "--update-sizes"):
            batches = [(preds[i : i + update], target[i : i + update]) for i in range(0, images, update)]
            results: dict[str, dict[str, float]] = {}

            def ours_all(batches=batches, results=results) -> None:
                metrics = localization_metrics(protocol)
                for p, t in batches:
                    metrics.update(p, t)
                results[ALL_THREE] = {k: float(v) for k, v in metrics.compute().items()}

            def ours_ap(batches=batches, results=results) -> None:
                metric = PerImageAveragePrecision(protocol)
                for p, t in batches:
                    metric.update(p, t)
                results[AP_ONLY] = {"ap": float(metric.compute())}

            def authors(batches=batches, results=results) -> None:
                rows = [r for p, t in batches for r in _sklearn_scores(p, t, protocol)]
                results[BASELINE] = dict(zip(("ap", "f1", "iou"), np.mean(rows, axis=0).tolist(), strict=True))

            times = time_interleaved({BASELINE: authors, ALL_THREE: ours_all, AP_ONLY: ours_ap}, repeats)
            plural = "s" if update > 1 else ""
            section = report.section(
                f"{size}² masks, updates of {update} image{plural}, {n_threads} thread{'s' if n_threads > 1 else ''}",
                unit="ms",
                baseline=BASELINE,
                per="/img",
            )
            reference = results[BASELINE]
            for name, seconds in times.items():
                diff = max(abs(v - reference[k]) for k, v in results[name].items())
                section.add(name, [s / images for s in seconds], **{"max |Δ mean|": diff})
            means = ", ".join(f"{k}={v:.6f}" for k, v in reference.items())
            section.notes.append(f"{images} images, {protocol} protocol; means {means}")
    if stream_images:
        s = report.results["streaming"]
        marks = ", ".join(f"{rss:.0f} MiB after {n}" for n, rss in s["peak_rss_mib"].items())
        report.notes.append(
            f"streaming {s['images']} images of {size}x{size} in updates of {s['batch_size']}: "
            f"{s['images_per_s']:.1f} images/s; peak RSS {s['peak_rss_mib_after_warmup']:.0f} MiB after warm-up, "
            f"{marks} images; metric state {s['state_bytes']} bytes"
        )
    return report.finish(json)
