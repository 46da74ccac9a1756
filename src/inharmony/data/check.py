"""Check an iHarmony4 tree: composites per subset (all and le50), unreadable files, 0/1 masks, and how
the derived le50 split compares with a published list (e.g. DIRL's ``le50_test.txt``)."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import DataError
from ..imageio import mask_full_scale, read_mask_array
from .dataset import IHarmony4, load_item
from .decode import read_bytes
from .index import Sample, build_index, order_subsets, read_list_file
from .le50 import filter_le50

__all__ = ["ListComparison", "SplitCheck", "check_tree", "compare_with_list"]


@dataclass(frozen=True)
class ListComparison:
    """How a derived split differs from a published list (composite paths relative to the root)."""

    list_file: str
    counts: dict[str, tuple[int, int]]
    """Composites per subset: ``(derived, published)``, official subsets first."""
    only_derived: list[str]
    """In the derived split, not in the list (sorted)."""
    only_published: list[str]
    """In the list, not in the derived split (sorted)."""

    @property
    def same(self) -> bool:
        """True when both hold exactly the same composites."""
        return not self.only_derived and not self.only_published


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
    binary_masks: int | None = None
    """Masks stored as 0/1 instead of 0/255 (read scaled, see ``mask_full_scale``); ``None`` when not decoded."""
    comparison: ListComparison | None = None
    """The comparison with ``compare_list`` when this is the compared split."""


def compare_with_list(
    derived: list[Sample], list_file: str | os.PathLike, root: str | os.PathLike | None = None
) -> ListComparison:
    """Compare ``derived`` samples with the composites a split list names (no file-system check of the list).

    Example:
        >>> cmp = compare_with_list(samples, "le50_test.txt", root="/data/iHarmony4")  # doctest: +SKIP
        >>> cmp.same, cmp.counts["HCOCO"]  # doctest: +SKIP
        (True, (4256, 4256))
    """
    path = Path(list_file)
    if root is not None and not path.is_absolute() and not path.is_file():
        path = Path(root) / path
    published = {f"{subset}/composite_images/{name}" for subset, name in read_list_file(path)}
    mine = {s.composite for s in derived}
    left = Counter(c.split("/", 1)[0] for c in mine)
    right = Counter(c.split("/", 1)[0] for c in published)
    counts = {s: (left[s], right[s]) for s in order_subsets(set(left) | set(right))}
    return ListComparison(str(path), counts, sorted(mine - published), sorted(published - mine))


def check_tree(
    root: str | os.PathLike,
    decode: bool = False,
    workers: int = 4,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    compare_list: str | None = None,
    compare_split: Literal["train", "test"] | None = None,
) -> list[SplitCheck]:
    """Index the iHarmony4 tree at ``root``, count composites per subset (all and le50), find bad files.

    Args:
        root: iHarmony4 root (holds ``HCOCO/``, ``HAdobe5k/``, ...).
        decode: Also decode every composite/mask pair, to find unreadable, truncated or mismatched files and
            masks stored as 0/1 instead of 0/255 (slow).
        workers: Threads for ``decode``.
        cache_dir: Where to cache foreground fractions (default: ``<root>/.inharmony/``).
        progress: Show a progress bar while decoding.
        compare_list: A published split list (e.g. DIRL's ``le50_test.txt``; relative to ``root`` or the
            current folder) to compare with the le50 split derived from the tree's own lists.
        compare_split: The derived split to compare (default: ``train`` if the list's name says so, else ``test``).

    Returns:
        One :class:`SplitCheck` per split, train then test.

    Raises:
        DataError: ``root`` is not an iHarmony4 tree, or ``compare_list`` cannot be read.

    Example:
        >>> for split in check_tree("data/iHarmony4"):  # doctest: +SKIP
        ...     print(split.split, split.total, split.total_le50)
        train 65742 64255
        test 7404 7237
    """
    if workers < 0:
        raise ValueError(f"workers (--workers) must be 0 (this process) or more, got {workers}")
    from tqdm.auto import tqdm

    def probe(sample: Sample) -> tuple[str | None, bool]:
        try:
            mask = read_bytes(f"{root}/{sample.mask}")
            load_item(read_bytes(f"{root}/{sample.composite}"), mask, sample, None)
            return None, mask_full_scale(read_mask_array(mask, sample.mask)) == 1
        except DataError as err:
            return str(err), False

    if compare_list is not None and compare_split is None:
        compare_split = "train" if "train" in Path(compare_list).name.lower() else "test"
    report = []
    for split in ("train", "test"):
        samples = build_index(root, split)
        kept = filter_le50(samples, root, cache_dir)
        full, le50 = IHarmony4(root, split, samples=samples).counts(), IHarmony4(root, split, samples=kept).counts()
        bad = binary = None
        if decode:
            with ThreadPoolExecutor(max(1, workers)) as pool:
                found = list(
                    tqdm(pool.map(probe, samples), total=len(samples), desc=f"decode {split}", disable=not progress)
                )
            bad = [message for message, _ in found if message]
            binary = len({s.mask for s, (_, is01) in zip(samples, found, strict=True) if is01})
        counts = {subset: (count, le50.get(subset, 0)) for subset, count in full.items()}
        comparison = compare_with_list(kept, compare_list, root) if compare_split == split else None
        report.append(SplitCheck(split, counts, len(samples), len(kept), bad, binary, comparison))
    return report
