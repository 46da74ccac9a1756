"""Foreground fractions of masks, computed once and cached; the "le50" selection (foreground ≤ 50 %).

DIRL trains and tests on the iHarmony4 images whose foreground covers at most half of the image
(64,255 train / 7,237 test). The fraction is computed from each mask (pixels ≥ 0.5 of full scale) and
cached in a JSON file keyed by the mask's relative path and validated by its size and modification
time, so a second run reads no mask and a changed mask is recomputed.

The cache lives in ``<root>/.inharmony/foreground.json`` when the root is writable, else in
``$INHARMONY_CACHE_DIR`` (default ``~/.cache/inharmony``) under a name derived from the root's path.

Example:
    >>> cache = ForegroundCache("/data/iHarmony4")  # doctest: +SKIP
    >>> cache.fractions(["HCOCO/masks/c1_1.png"])  # doctest: +SKIP
    {'HCOCO/masks/c1_1.png': 0.1234}
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..files import atomic_write
from ..imageio import read_mask_array
from .decode import mask_fraction, read_bytes
from .index import Sample

__all__ = ["LE50_MAX_FRACTION", "ForegroundCache", "filter_le50", "foreground_fraction"]

LE50_MAX_FRACTION = 0.5
_VERSION = 2  # 2: 0/1 masks are scaled (version 1 cached 0.0 for them)


def foreground_fraction(path: str | os.PathLike) -> float:
    """Fraction of pixels of the mask at ``path`` that are foreground (≥ half of full scale)."""
    return mask_fraction(read_mask_array(read_bytes(path), os.fspath(path)))


def _valid_entry(entry: object) -> bool:
    """``[size, mtime_ns, fraction]`` with integer stats and a fraction in [0, 1]."""
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in entry[:2])
        and isinstance(entry[2], (int, float))
        and not isinstance(entry[2], bool)
        and 0.0 <= entry[2] <= 1.0
    )


def _default_cache_file(root: Path, cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is None and os.access(root, os.W_OK):
        return root / ".inharmony" / "foreground.json"
    base = Path(cache_dir or os.environ.get("INHARMONY_CACHE_DIR", Path.home() / ".cache" / "inharmony"))
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return base / f"foreground-{digest}.json"


class ForegroundCache:
    """Foreground fraction of each mask under ``root``, cached on disk.

    Args:
        root: dataset root; mask paths are relative to it.
        cache_dir: where to keep the cache file (default: next to the data, else the user cache dir).
        workers: threads reading masks on a cold run (OpenCV releases the GIL while decoding).
    """

    def __init__(self, root: str | os.PathLike, cache_dir: str | os.PathLike | None = None, workers: int = 4):
        self.root = Path(root)
        self.path = _default_cache_file(self.root, cache_dir)
        self.workers = workers
        self.computed = 0  # masks read by the last fractions() call; 0 when everything came from the cache

    def _load(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            return {}
        entries = data.get("entries")
        # The cache is disposable: a malformed entry (hand-edited, another tool's file) is recomputed.
        return {rel: e for rel, e in entries.items() if _valid_entry(e)} if isinstance(entries, dict) else {}

    def _save(self, entries: dict[str, list]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Atomic: concurrent readers (other DDP ranks) never see a half-written file.
            with atomic_write(self.path, "w") as fh:
                json.dump({"version": _VERSION, "entries": entries}, fh)
        except OSError:
            pass  # a read-only location only costs recomputation next time

    def fractions(self, masks: Sequence[str]) -> dict[str, float]:
        """Foreground fraction per mask (relative paths), reading only masks new or changed since cached."""
        entries = self._load()
        wanted = sorted(set(masks))
        stats = {}
        todo = []
        for rel in wanted:
            st = os.stat(self.root / rel)
            stats[rel] = [st.st_size, st.st_mtime_ns]
            cached = entries.get(rel)
            if cached is None or cached[:2] != stats[rel]:
                todo.append(rel)
        if todo:
            with ThreadPoolExecutor(max(1, self.workers)) as pool:
                for rel, value in zip(todo, pool.map(lambda r: foreground_fraction(self.root / r), todo), strict=True):
                    entries[rel] = [*stats[rel], value]
            self._save(entries)
        self.computed = len(todo)
        return {rel: entries[rel][2] for rel in wanted}


def filter_le50(
    samples: Sequence[Sample],
    root: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    max_fraction: float = LE50_MAX_FRACTION,
) -> list[Sample]:
    """The samples whose mask's foreground fraction is ≤ ``max_fraction``, in their original order."""
    fractions = ForegroundCache(root, cache_dir).fractions([s.mask for s in samples])
    return [s for s in samples if fractions[s.mask] <= max_fraction]
