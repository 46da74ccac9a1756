"""``inharmony bench data``: loader throughput and le50 indexing time.

Writes a synthetic iHarmony4-like tree (photos upscaled to the given sizes, so JPEGs compress like
photos) into a temporary folder, then measures images/s through a DataLoader for the train and eval
pipelines, with and without reduced JPEG decoding, and the time to index 1,000 masks for le50 with a cold
and a warm cache. ``--root`` measures an existing tree instead of synthetic images.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

NAME = "data"
HELP = "Data loading: images/s for train/eval pipelines (reduced decoding on/off), le50 index time cold/cached."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=None, help="measure this iHarmony4 tree (default: synthetic images)")
    parser.add_argument("--split", default="train", help="split of --root to read")
    parser.add_argument("--sizes", default="480x640,4000x6000", help="HxW of the synthetic JPEGs, comma-separated")
    parser.add_argument("--per-size", type=int, default=16, help="synthetic composites per size")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3, help="passes per figure; the median is reported")
    parser.add_argument("--le50-n", type=int, default=1000, help="masks for the le50 timing (0 = skip)")
    parser.add_argument("--le50-size", default="480x640", help="HxW of those masks")


def _hw(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


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


def _throughput(root, samples, transform, reduced: bool, args) -> float:
    from torch.utils.data import DataLoader

    from ..data import IHarmony4

    ds = IHarmony4(root, samples=samples, transform=transform, reduced_decoding=reduced)
    loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers, shuffle=False,
                        persistent_workers=args.workers > 0)  # fmt: skip
    rates = []
    for _ in range(args.repeats + 1):  # the first pass warms the workers and the page cache
        start = time.perf_counter()
        n = sum(len(batch["path"]) for batch in loader)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def _stage_timings(root: Path, sample, image_size: int, repeats: int) -> dict[str, float]:
    """Milliseconds per stage for one sample, in this process (best of ``repeats``)."""
    from ..data import eval_transform
    from ..data.decode import read_bytes, read_mask_array
    from ..preprocessing import decode_image
    from ..preprocessing import image_size as header_size

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
    out = {}
    for name, fn in stages.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        out[name] = 1000 * min(times)
    return out


def _le50_timing(args, tmp: Path) -> tuple[float, float]:
    import cv2
    import numpy as np

    from ..data import IHarmony4

    h, w = _hw(args.le50_size)
    root = tmp / "le50"
    for folder in ("composite_images", "masks", "real_images"):
        (root / "HBench" / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(args.le50_n):
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
    for _ in range(args.repeats):
        start = time.perf_counter()
        IHarmony4(root, "train", le50=True, cache_dir=cache)
        warm.append(time.perf_counter() - start)
    return cold, statistics.median(warm)


def run(args: argparse.Namespace) -> int:
    from ..data import build_index, eval_transform, train_transform

    print(f"cores: {os.cpu_count()} (load average {os.getloadavg()[0]:.1f}); workers {args.workers}, "
          f"batch {args.batch_size}, output {args.image_size}px, median of {args.repeats} passes")  # fmt: skip
    pipelines = {"train": train_transform(args.image_size), "eval": eval_transform(args.image_size)}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.root:
            root = Path(args.root)
            groups = {f"{args.root} ({args.split})": build_index(root, args.split)}
        else:
            root = tmp / "tree"
            start = time.perf_counter()
            groups = _write_tree(root, [_hw(s) for s in args.sizes.split(",")], args.per_size)
            print(f"wrote synthetic JPEGs in {time.perf_counter() - start:.1f}s")
        print(f"{'images':<24} {'pipeline':<8} {'reduced decoding':>17} {'full decoding':>14}  (images/s)")
        for key, samples in groups.items():
            for name, transform in pipelines.items():
                fast = _throughput(root, samples, transform, True, args)
                slow = _throughput(root, samples, transform, False, args)
                print(f"{key:<24} {name:<8} {fast:>17.1f} {slow:>14.1f}")
        key, samples = list(groups.items())[-1]
        print(f"per-sample stages, one process, {key} (ms, best of {args.repeats}):")
        for name, ms in _stage_timings(root, samples[0], args.image_size, args.repeats).items():
            print(f"  {name:<40} {ms:8.1f}")
        if args.le50_n:
            cold, warm = _le50_timing(args, tmp)
            print(f"le50 index of {args.le50_n} masks ({args.le50_size}): cold {cold:.2f}s, cached {warm:.3f}s")
    return 0
