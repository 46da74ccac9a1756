"""Check an iHarmony4 tree: composites per subset (all and le50) and, optionally, unreadable files."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import DataError
from .dataset import IHarmony4, load_item
from .decode import read_bytes
from .index import Sample, build_index
from .le50 import filter_le50

__all__ = ["SplitCheck", "check_tree"]


@dataclass(frozen=True)
class SplitCheck:
    """What :func:`check_tree` found in one split."""

    split: str
    counts: dict[str, tuple[int, int]]
    """Composites per subset: ``(all, le50)``, official subsets first."""
    total: int
    total_le50: int
    bad: list[str] | None
    """One message per unreadable, truncated or mismatched sample; ``None`` when not decoded."""


def check_tree(
    root: str | os.PathLike,
    decode: bool = False,
    workers: int = 4,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[SplitCheck]:
    """Index the iHarmony4 tree at ``root``, count composites per subset (all and le50), find bad files.

    Args:
        root: iHarmony4 root (holds ``HCOCO/``, ``HAdobe5k/``, ...).
        decode: Also decode every composite/mask pair, to find unreadable, truncated or mismatched files (slow).
        workers: Threads for ``decode``.
        cache_dir: Where to cache foreground fractions (default: ``<root>/.inharmony/``).
        progress: Show a progress bar while decoding.

    Returns:
        One :class:`SplitCheck` per split, train then test.

    Raises:
        DataError: ``root`` is not an iHarmony4 tree.

    Example:
        >>> for split in check_tree("data/iHarmony4"):  # doctest: +SKIP
        ...     print(split.split, split.total, split.total_le50)
        train 65742 64255
        test 7404 7237
    """
    from tqdm.auto import tqdm

    def probe(sample: Sample) -> str | None:
        try:
            load_item(read_bytes(f"{root}/{sample.composite}"), read_bytes(f"{root}/{sample.mask}"), sample, None)
        except DataError as err:
            return str(err)
        return None

    report = []
    for split in ("train", "test"):
        samples = build_index(root, split)
        kept = filter_le50(samples, root, cache_dir)
        full, le50 = IHarmony4(root, split, samples=samples).counts(), IHarmony4(root, split, samples=kept).counts()
        bad = None
        if decode:
            with ThreadPoolExecutor(max(1, workers)) as pool:
                found = tqdm(pool.map(probe, samples), total=len(samples), desc=f"decode {split}", disable=not progress)
                bad = [message for message in found if message]
        counts = {subset: (count, le50.get(subset, 0)) for subset, count in full.items()}
        report.append(SplitCheck(split, counts, len(samples), len(kept), bad))
    return report
