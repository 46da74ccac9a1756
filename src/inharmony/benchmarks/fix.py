"""``inharmony bench fix``: one photo through ``inharmony fix`` (find, fix, score), stage by stage, and its memory.

A synthetic 12-MP JPEG (4000×3000 by default) goes through the pipeline of ``inharmony fix`` with random
weights (speed and memory do not depend on them): decode (photo and region mask), localize (MadisNet at
256², its mask back at the photo's size, the soft mask), harmonize (PCTNet: the ViT at 256², the colour
transform at full resolution), score before and after (BargainNet, one batch of two) and encode (the fixed
photo, the mask and the panel as PNG). Random weights find no meaningful region, so the region harmonized
and scored is the synthetic one (a third of the photo, soft edge), read from its mask file.

The measurement runs in a fresh process (``multiprocessing`` spawn), so its peak resident memory
(``getrusage`` ``ru_maxrss``, which counts torch's allocations that ``tracemalloc`` does not see) is the
pipeline's own: reported as the peak of the whole process and as the rise above the process with its models
loaded and warmed up. The goal on a 2-core CPU: ≤ 6 s and ≤ 2 GB for a 12-MP photo.

Example:
    inharmony bench fix --repeats 3 --json fix.json
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from ._options import PositiveInt, parse_size

NAME = "fix"
HELP = "One photo through `inharmony fix` (decode, localize, harmonize, score, encode): time per stage, peak memory."
SMOKE_ARGS = ["--photo-size", "96x64", "--repeats", "1"]
STAGES = ("decode", "localize", "harmonize", "score before/after", "encode", "total")


def _peak_rss_mib() -> float:
    """The process's peak resident memory: ``VmHWM`` (resettable, see :func:`_reset_peak`), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _reset_peak() -> bool:
    """Reset the peak to the current resident memory (Linux ≥ 4.0: ``5`` into ``clear_refs``); False if not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _region(path: Path, width: int, height: int) -> Path:
    """The synthetic region: the middle third of the photo, with a soft 8-px edge, as an 8-bit PNG."""
    import cv2
    import numpy as np

    from ..imageio import write_png

    mask = np.zeros((height, width), np.float32)
    mask[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3] = 1.0
    edge = max(1, min(width, height) // 375) * 2 + 1
    mask = cv2.blur(mask, (edge, edge))
    write_png(path, np.rint(mask * 255).astype(np.uint8))
    return path


def _child(
    photo: str, mask: str, out: str, repeats: int, threads: int | None, precision: str, queue: Any
) -> None:
    """The measured process: models built and warmed up, then ``repeats`` runs of the pipeline, timed per stage."""
    import numpy as np
    import torch

    from ..imageio import load_image_array, load_mask_array, write_png
    from ..inference import Predictor
    from ..inference.harmonizer import Harmonizer, iter_regions
    from ..inference.scorer import HarmonyScorer
    from ..models import create_model

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    fast = None if precision == "eager" else precision
    localizer = Predictor(create_model("madisnet", pretrained=False).eval(), device="cpu", batch_size=1, precision=fast)
    harmonizer = Harmonizer(create_model("pctnet", pretrained=False), device="cpu", localizer=None)
    scorer = HarmonyScorer(create_model("bargainnet", pretrained=False), device="cpu", localizer=None)

    def once(photo_source: Any, mask_source: Any, folder: Path) -> dict[str, float]:
        times: dict[str, float] = {}
        start = clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            times[stage] = now - clock
            clock = now

        image = load_image_array(photo_source)
        region = load_mask_array(mask_source, image.shape[:2])
        lap("decode")
        (found,) = iter_regions([image], None, localizer)  # the localizer's region (random: thrown away)
        del found
        lap("localize")
        result = harmonizer(image, region)
        lap("harmonize")
        result.score_before, result.score_after = scorer.scores([(image, result.mask), (result.image, result.mask)])
        lap("score before/after")
        write_png(folder / "photo_fixed.png", result.image)
        write_png(folder / "photo_mask.png", result.mask_uint8())
        write_png(folder / "photo_panel.png", result.panel())
        lap("encode")
        times["total"] = time.perf_counter() - start
        return times

    small = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    small_mask = np.zeros((96, 128), np.float32)
    small_mask[32:64, 40:90] = 1.0
    with tempfile.TemporaryDirectory(prefix="inharmony-bench-warmup-") as warm:
        once(small, small_mask, Path(warm))  # first-call allocations and kernel choices
    warm_peak = _peak_rss_mib()
    loaded = _rss_mib()
    reset = _reset_peak()  # the warm-up's own peak (oneDNN scratch of the first calls) is not the pipeline's
    runs = [once(photo, mask, Path(out)) for _ in range(repeats)]
    peak = _peak_rss_mib() if reset else max(warm_peak, _peak_rss_mib())
    queue.put({"runs": runs, "loaded_mib": loaded, "peak_mib": peak, "warmup_peak_mib": warm_peak,
               "threads": torch.get_num_threads(),
               "localizer": f"{localizer.backend} {localizer.precision or 'fp32 eager'}"})  # fmt: skip


def run(
    photo_size: str = "4000x3000",
    photo: str | None = None,
    repeats: PositiveInt = 1,
    threads: PositiveInt | None = None,
    precision: Literal["auto", "fp32", "bf16", "eager"] = "auto",
    json: str | None = None,
) -> int:
    """One photo through ``inharmony fix`` on random weights: the time of each stage and the peak memory.

    Args:
        photo_size: Size of the synthetic JPEG, WIDTHxHEIGHT (default 12 MP).
        photo: A photo of your own instead (its region: the middle third).
        repeats: Runs of the whole pipeline (median and best reported).
        threads: Torch threads in the measured process (default: torch's).
        precision: The localizer's path: ``auto`` (what ``inharmony fix`` runs by default), ``fp32``, ``bf16``
            or ``eager`` (the plain network).
        json: Also write the report as JSON to this path.

    Example:
        inharmony bench fix --photo-size 4000x3000 --repeats 3
    """
    from ..imageio import image_header
    from ._report import BenchReport, environment
    from .inference import _synthetic_photo

    width, height = parse_size(photo_size, "--photo-size")
    report = BenchReport(NAME, environment("cpu"))
    with tempfile.TemporaryDirectory(prefix="inharmony-bench-fix-") as tmp_name:
        tmp = Path(tmp_name)
        if photo is None:
            path = _synthetic_photo(tmp / "photo.jpg", width, height)
        else:
            path = Path(photo)
            header = image_header(path.read_bytes(), str(path))
            height, width = header.upright_hw
        mask = _region(tmp / "region.png", width, height)
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        args = (str(path), str(mask), tmp_name, repeats, threads, precision, queue)
        child = context.Process(target=_child, args=args)
        child.start()
        got = queue.get()
        child.join()
    if child.exitcode:
        raise RuntimeError(f"the measured process failed (exit code {child.exitcode}); see its output above")
    runs = got["runs"]
    report.env["threads"] = got["threads"]
    report.results["localizer"] = got["localizer"]
    section = report.section(
        f"inharmony fix, one {width}×{height} photo ({width * height / 1e6:.1f} MP), random weights, per stage",
        unit="s",
    )
    for stage in STAGES:
        section.add(stage, [r[stage] for r in runs])
    peak, loaded = got["peak_mib"], got["loaded_mib"]
    report.results.update(
        peak_rss_mib=peak, loaded_rss_mib=loaded, pipeline_rss_mib=peak - loaded, warmup_peak_mib=got["warmup_peak_mib"]
    )
    report.results["stages_s"] = {stage: min(r[stage] for r in runs) for stage in STAGES}
    report.notes.append(
        f"peak memory {peak:.0f} MiB (process, VmHWM during the runs); {loaded:.0f} MiB resident with the three "
        f"models loaded and warmed up (the warm-up itself peaked at {got['warmup_peak_mib']:.0f} MiB); the "
        f"pipeline adds {peak - loaded:.0f} MiB. Localizer (MadisNet): {got['localizer']}; PCTNet and BargainNet "
        "in float32. Goal for 12 MP on 2 cores: total ≤ 6 s, ≤ 2 GB."
    )
    return report.finish(json)
