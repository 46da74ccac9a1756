"""Validation splits carved from the training list (iHarmony4 publishes none).

Two protocols, chosen by :class:`~inharmony.data.IHarmony4DataModule`'s ``validation``:

* :func:`split_by_real_id` ("disjoint"): composites of one real photo look alike, so a split by composite
  would leak; here whole real images (``Sample.real_id``) go to one side or the other, and training
  uses the other side only.
* :func:`sample_fraction` ("authors"): a seeded random share of the training composites, which stay in
  training too — what the DIRL/MadisNet authors' ``le50_val.txt`` was (a random 10 % of ``le50_train.txt``).

Example:
    >>> train, val = split_by_real_id(samples, val_fraction=0.05, seed=0)  # doctest: +SKIP
    >>> val = sample_fraction(samples, fraction=0.1, seed=42)  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .index import Sample

__all__ = ["sample_fraction", "split_by_real_id"]


def split_by_real_id(
    samples: Sequence[Sample], val_fraction: float = 0.05, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Split ``samples`` into ``(train, val)`` so that no real image has composites on both sides.

    About ``val_fraction`` of the real images (at least one when the fraction is > 0) go to val, chosen
    with a seeded shuffle of the sorted ids, so the split depends only on the ids and the seed.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ids = sorted({s.real_id for s in samples})
    if val_fraction == 0.0 or not ids:
        return list(samples), []
    if len(ids) < 2:
        raise ValueError(f"cannot carve a validation split from {len(ids)} real image(s)")
    random.Random(seed).shuffle(ids)
    n_val = min(len(ids) - 1, max(1, round(val_fraction * len(ids))))
    val_ids = set(ids[:n_val])
    train = [s for s in samples if s.real_id not in val_ids]
    val = [s for s in samples if s.real_id in val_ids]
    return train, val


def sample_fraction(samples: Sequence[Sample], fraction: float = 0.1, seed: int = 0) -> list[Sample]:
    """A seeded random ``fraction`` of ``samples`` (at least one when > 0), in their original order.

    The choice depends only on the composites' paths and the seed (not on the input order). The chosen
    samples are *not* removed from training: this is the authors' validation protocol, which overlaps
    the training set.

    Example:
        >>> from inharmony.data.index import pair_composite
        >>> pool = [pair_composite("HCOCO", f"c{i}_1_1.jpg") for i in range(20)]
        >>> len(sample_fraction(pool, 0.1, seed=42))
        2
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0 or not samples:
        return []
    names = sorted({s.composite for s in samples})
    random.Random(seed).shuffle(names)
    chosen = set(names[: max(1, round(fraction * len(names)))])
    return [s for s in samples if s.composite in chosen]
