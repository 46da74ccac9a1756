"""A validation split carved from train by real-image id.

iHarmony4 publishes no validation split. Composites of one real photo look alike, so a split by
composite would leak; here whole real images (``Sample.real_id``) go to one side or the other.

Example:
    >>> train, val = split_by_real_id(samples, val_fraction=0.05, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .index import Sample

__all__ = ["split_by_real_id"]


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
