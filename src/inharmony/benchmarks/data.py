"""``inharmony bench data``: loader throughput and le50 indexing time.

Writes a synthetic iHarmony4-like tree (photos upscaled to the given sizes, so JPEGs compress like
photos) into a temporary folder, then measures images/s through a DataLoader for the train and eval
pipelines, with and without reduced JPEG decoding, and the time to index 1,000 masks for le50 with a cold
and a warm cache. ``--root`` measures an existing tree instead of synthetic images.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from ._options import NonNegativeInt, PositiveInt, parse_size, parse_sizes
from ._report import BenchReport, environment, time_interleaved

NAME = "data"
HELP = "Data loading: images/s for train/eval pipelines (reduced decoding on/off), le50 index time cold/cached."
SMOKE_ARGS = ["--sizes", "64x96", "--per-size", "2", "--workers", "0", "--batch-size", "2", "--image-size", "32",
              "--repeats", "1", "--le50-n", "4", "--le50-size", "32x48"]  # fmt: skip
QUICK_ARGS = ["--sizes", "480x640,2000x3000", "--per-size", "8", "--le50-n", "200"]


def _write_tree(root: Path, sizes: list[tuple[int, int]], per_size: int) -> dict[str, list]:
    import cv2
    import numpy as np
    import skimage.data

    from ..data.index import pair_composite

    rng = np.random.default_rng(0)
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    for folder in ("composite_images", "masks", "real_images"):
        (root / "HBench" / folder).mkdir(parents=True, exist_ok=True)
    groups: dict[str, list] = {}
    for h, w in sizes:
        key = f"{h}x{w}"
        groups[key] = []
        for i in range(per_size):
            photo = cv2.resize(photos[i % len(photos)], (w, h), interpolation=cv2.INTER_CUBIC)
            photo = np.clip(photo + rng.normal(0, 3, photo.shape), 0, 255).astype(np.uint8)
            stem = f"b{key}-{i:03d}"
            mask = np.zeros((h, w), np.uint8)
            cv2.ellipse(mask, (w // 2, h // 2), (w // 5, h // 4), 0, 0, 360, 255, -1)
            cv2.imwrite(str(root / "HBench" / "composite_images" / f"{stem}_1_1.jpg"), photo[..., ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 90])  # fmt: skip
            cv2.imwrite(str(root / "HBench" / "masks" / f"{stem}_1.png"), mask)
            cv2.imwrite(str(root / "HBench" / "real_images" / f"{stem}.jpg"), photo[..., ::-1])
            groups[key].append(pair_composite("HBench", f"{stem}_1_1.jpg"))
    return groups


def _loader(root, samples, transform, reduced: bool, batch_size: int, workers: int):
    from torch.utils.data import DataLoader

    from ..data import IHarmony4

    ds = IHarmony4(root, samples=samples, transform=transform, reduced_decoding=reduced)
    return DataLoader(ds, batch_size=batch_size, num_workers=workers, shuffle=False,
                      persistent_workers=workers > 0)  # fmt: skip


def _one_pass(loader) -> None:
    for _ in loader:
        pass


def _stage_timings(root: Path, sample, image_size: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per stage for one sample, in this process (``repeats`` timings each, interleaved)."""
    from ..data import eval_transform
    from ..data.decode import read_bytes
    from ..imageio import decode_image, read_mask_array
    from ..imageio import image_size as header_size

    comp, mask = read_bytes(root / sample.composite), read_bytes(root / sample.mask)
    transform = eval_transform(image_size)
    image, _ = transform.decode(comp)  # as the eval loaders and the Predictor decode it
    stages = {
        "read header": lambda: header_size(comp),
        "decode JPEG (full)": lambda: decode_image(comp),
        "decode JPEG (reduced)": lambda: decode_image(comp, min_side=image_size),
        "decode mask PNG": lambda: read_mask_array(mask),
        "eval transform (after its decode)": lambda: transform(image, image[..., 0].astype("float32") / 255),
    }
    return time_interleaved(stages, repeats)


def _le50_timing(n: int, size: str, repeats: int, tmp: Path) -> tuple[list[float], list[float]]:
    import cv2
    import numpy as np

    from ..data import IHarmony4

    h, w = parse_size(size, "--le50-size", "HEIGHTxWIDTH")
    root = tmp / "le50"
    for folder in ("composite_images", "masks", "real_images"):
        (root / "HBench" / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (int(rng.integers(w)), int(rng.integers(h))), (int(rng.integers(10, w // 2)),
                    int(rng.integers(10, h // 2))), 0, 0, 360, 255, -1)  # fmt: skip
        cv2.imwrite(str(root / "HBench" / "masks" / f"m{i:05d}_1.png"), mask)
        for folder in ("composite_images", "real_images"):  # pairing checks existence only
            name = f"m{i:05d}_1_1.jpg" if folder == "composite_images" else f"m{i:05d}.jpg"
            (root / "HBench" / folder / name).touch()
        names.append(f"m{i:05d}_1_1.jpg")
    (root / "HBench" / "HBench_train.txt").write_text("".join(f"{n}\n" for n in names))
    cache = tmp / "cache"
    start = time.perf_counter()
    IHarmony4(root, "train", le50=True, cache_dir=cache)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        IHarmony4(root, "train", le50=True, cache_dir=cache)
        warm.append(time.perf_counter() - start)
    return [cold], warm


def run(
    root: str | None = None,
    split: str = "train",
    sizes: str = "480x640,4000x6000",
    per_size: PositiveInt = 16,
    workers: NonNegativeInt = 2,
    batch_size: PositiveInt = 8,
    image_size: PositiveInt = 224,
    repeats: PositiveInt = 3,
    le50_n: PositiveInt = 1000,
    le50_size: str = "480x640",
    json: str | None = None,
) -> int:
    """Data loading: images/s for train/eval pipelines (reduced decoding on/off), le50 index time cold/cached.

    Writes a synthetic iHarmony4-like tree (photos upscaled to ``--sizes``) into a temporary folder,
    or reads ``--root``, and times a DataLoader pass per image for the train and eval pipelines with
    full decoding (the authors' pixels, the baseline) and reduced JPEG decoding, interleaved; then
    the time per stage for one sample, and the time to index ``--le50-n`` masks for le50 with a cold
    and a warm cache.

    Args:
        root: Measure this iHarmony4 tree (default: synthetic images).
        split: Split of ``--root`` to read.
        sizes: ``HxW`` of the synthetic JPEGs, comma-separated.
        per_size: Synthetic composites per size.
        workers: DataLoader workers.
        batch_size: Images per DataLoader batch.
        image_size: Output side of the train and eval transforms, in pixels.
        repeats: Passes per figure; the median is reported.
        le50_n: Masks for the le50 timing (0 = skip).
        le50_size: ``HxW`` of those masks.
        json: Also write the report as JSON to this path.

    Example:
        inharmony bench data --sizes 480x640,4000x6000 --workers 2
    """
    from ..data import build_index, eval_transform, train_transform

    report = BenchReport(NAME, environment("cpu"))
    report.env["workers"] = workers
    pipelines = {"train": train_transform(image_size), "eval": eval_transform(image_size)}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if root:
            groups = {f"{root} ({split})": build_index(Path(root), split)}
            tree = Path(root)
        else:
            tree = tmp / "tree"
            start = time.perf_counter()
            groups = _write_tree(tree, parse_sizes(sizes, "--sizes"), per_size)
            report.notes.append(f"wrote the synthetic JPEGs in {time.perf_counter() - start:.1f}s")
        for key, samples in groups.items():
            for name, transform in pipelines.items():
                loaders = {
                    "full decoding": _loader(tree, samples, transform, False, batch_size, workers),
                    "reduced decoding": _loader(tree, samples, transform, True, batch_size, workers),
                }
                # The warm-up pass starts the workers and fills the page cache.
                times = time_interleaved({k: partial(_one_pass, v) for k, v in loaders.items()}, repeats)
                section = report.section(
                    f"{key} JPEGs, {name} pipeline to {image_size}px, batch {batch_size}, {workers} workers",
                    unit="ms",
                    baseline="full decoding",
                    per="/img",
                )
                for label, seconds in times.items():
                    per_image = [s / len(samples) for s in seconds]
                    section.add(label, per_image, **{"images/s": round(1 / statistics.median(per_image), 1)})
                del loaders
        key, samples = list(groups.items())[-1]
        section = report.section(f"per-sample stages, one process, {key}", unit="ms", per="/img")
        for name, seconds in _stage_timings(tree, samples[0], image_size, repeats).items():
            section.add(name, seconds)
        if le50_n:
            cold, warm = _le50_timing(le50_n, le50_size, repeats, tmp)
            section = report.section(f"le50 index of {le50_n} masks ({le50_size})", unit="s", baseline="cold")
            section.add("cold", cold)
            section.add("cached", warm)
    return report.finish(json)
