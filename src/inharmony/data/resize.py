"""A pre-resized copy of an iHarmony4 tree (``inharmony data resize``).

Training at 224 px never needs 6000-px HAdobe5k photos; a copy whose longer side is at most
``max_side`` loads many times faster. Composites and real images are shrunk with area interpolation
(after reduced JPEG decoding where that stays above ``max_side``), masks with area interpolation and a
0.5 threshold, so they stay binary and match their composite. List files are copied. Because shrinking
moves a few borderline masks across 50 % foreground, the le50 selection is computed on the original
masks and written as ``le50_train.txt`` / ``le50_test.txt`` (unless the root already has them):
pass those as list files to keep exactly the original protocol.

Example:
    >>> resize_tree("/data/iHarmony4", "/data/iHarmony4-1024", max_side=1024)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from ..imageio import decode_image, image_size, read_mask_array
from .decode import read_bytes
from .index import build_index, discover_subsets, order_subsets
from .le50 import filter_le50

__all__ = ["resize_tree"]


def _target(h: int, w: int, max_side: int) -> tuple[int, int] | None:
    scale = max_side / max(h, w)
    return None if scale >= 1 else (max(1, round(w * scale)), max(1, round(h * scale)))


def _resize_image(src: Path, dst: Path, max_side: int, quality: int) -> None:
    buf = read_bytes(src)
    h, w = image_size(buf, str(src))
    size = _target(h, w, max_side)
    if size is None:
        shutil.copyfile(src, dst)
        return
    # reduce while the reduced image keeps its longer side ≥ max_side, then area-resize exactly
    image, _ = decode_image(buf, str(src), min_side=int(np.ceil(max_side * min(h, w) / max(h, w))))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if dst.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(dst), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params):
        raise DataError(f"cannot write {dst}")


def _resize_mask(src: Path, dst: Path, max_side: int) -> None:
    mask = read_mask_array(read_bytes(src), str(src))
    size = _target(*mask.shape, max_side)
    if size is None:
        shutil.copyfile(src, dst)
        return
    half = (int(np.iinfo(mask.dtype).max) + 1) // 2
    mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
    if not cv2.imwrite(str(dst), np.where(mask >= half, 255, 0).astype(np.uint8)):
        raise DataError(f"cannot write {dst}")


def resize_tree(
    root: str | os.PathLike,
    out: str | os.PathLike,
    max_side: int = 1024,
    quality: int = 95,
    workers: int = 4,
    progress: bool = True,
) -> int:
    """Write a copy of the tree at ``root`` to ``out`` with images no larger than ``max_side``.

    Existing output files are kept (the command resumes).

    Args:
        root: iHarmony4 root to copy (holds ``HCOCO/``, ``HAdobe5k/``, ...); never modified.
        out: Folder for the resized copy; must differ from ``root``.
        max_side: Longest side, in pixels, of the written images and masks (smaller ones are copied as they are).
        quality: JPEG quality of the re-encoded composites and real images.
        workers: Threads resizing files in parallel.
        progress: Show a progress bar.

    Returns:
        The number of files written (files already in ``out`` are not counted).

    Example:
        >>> resize_tree("/data/iHarmony4", "/data/iHarmony4-1024", max_side=1024)  # doctest: +SKIP
    """
    if max_side < 1:
        raise ValueError(f"max_side (--max-side) must be at least 1 px, got {max_side}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality (--quality) must be a JPEG quality from 1 to 100, got {quality}")
    if workers < 1:
        raise ValueError(f"workers (--workers) must be at least 1, got {workers}")
    from tqdm.auto import tqdm

    root, out = Path(root), Path(out)
    if root.resolve() == out.resolve():
        raise DataError("--out must differ from --root (the resize never overwrites the original)")
    subsets = discover_subsets(root)
    if not subsets:
        raise DataError(f"no subset folders (with composite_images/) under {root}")
    jobs = []
    for subset in order_subsets(subsets):
        for folder in ("composite_images", "masks", "real_images"):
            (out / subset / folder).mkdir(parents=True, exist_ok=True)
            src_dir = root / subset / folder
            if not src_dir.is_dir():
                raise DataError(f"missing folder {src_dir}")
            for entry in os.scandir(src_dir):
                dst = out / subset / folder / entry.name
                if entry.is_file() and not dst.exists():
                    jobs.append((folder, Path(entry.path), dst))
        for lst in (root / subset).glob("*.txt"):
            shutil.copyfile(lst, out / subset / lst.name)
    for lst in root.glob("*.txt"):
        shutil.copyfile(lst, out / lst.name)
    for split in ("train", "test"):
        target = out / f"le50_{split}.txt"
        if not target.exists():
            kept = filter_le50(build_index(root, split, check_files=False), root)
            target.write_text("".join(f"{s.composite}\n" for s in kept))

    def work(job: tuple[str, Path, Path]) -> None:
        folder, src, dst = job
        tmp = dst.with_name(f".tmp-{dst.name}")
        if folder == "masks":
            _resize_mask(src, tmp, max_side)
        else:
            _resize_image(src, tmp, max_side, quality)
        os.replace(tmp, dst)  # a crash never leaves a half-written file under the real name

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for _ in tqdm(pool.map(work, jobs), total=len(jobs), desc="resize", disable=not progress, unit="img"):
            pass
    return len(jobs)
