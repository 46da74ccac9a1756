"""A streaming source for iHarmony4 built with litdata.

``optimize_ihd`` (``inharmony data optimize``) writes the encoded composite and mask files, unchanged,
into litdata chunks, one optimized dataset per split: ``<out>/train``, ``<out>/val`` (carved from train
by real-image id) and ``<out>/test``, plus ``<out>/inharmony.json`` recording how they were made.
:class:`StreamingIHarmony4` reads them from a local folder or an object-store URL (``s3://…``,
``gs://…``); litdata shards the samples across DDP ranks and dataloader workers. Items are decoded and
transformed by the same code as the folder source, so both yield the same tensors.

Example:
    >>> optimize_ihd("/data/iHarmony4", "/data/ihd-chunks")  # doctest: +SKIP
    >>> ds = StreamingIHarmony4("/data/ihd-chunks/test", transform=eval_transform(224))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from litdata import StreamingDataset

from .dataset import Transform, load_item
from .decode import read_bytes
from .index import Sample, build_index
from .le50 import filter_le50
from .sampling import sample_seed
from .splits import split_by_real_id

__all__ = ["STREAMING_SPLITS", "StreamingIHarmony4", "optimize_ihd"]

STREAMING_SPLITS = ("train", "val", "test")
_META = "inharmony.json"


def _encode(sample: dict[str, str], root: str) -> dict[str, Any]:
    return {
        "composite": read_bytes(os.path.join(root, sample["composite"])),
        "mask": read_bytes(os.path.join(root, sample["mask"])),
        "path": sample["composite"],
        "mask_path": sample["mask"],
        "real": sample["real"],
        "subset": sample["subset"],
        "real_id": sample["real_id"],
    }


def optimize_ihd(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    val_fraction: float = 0.05,
    seed: int = 0,
    subsets: Sequence[str] | None = None,
    le50: bool = True,
    train_list: str | None = None,
    test_list: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int = 1,
    chunk_bytes: str = "64MB",
    progress: bool = False,
) -> dict[str, int]:
    """Write litdata chunks for the train, val and test splits of the tree at ``root``.

    Files are stored as they are (no re-encoding), so decoding is the same as from the folder.
    ``num_workers > 1`` (or an object-store ``out`` such as ``s3://bucket/ihd``) uses
    :func:`litdata.optimize` with worker processes; otherwise the chunks are written in this process.

    Args:
        root: iHarmony4 root (holds ``HCOCO/``, ``HAdobe5k/``, ...).
        out: Output folder or object-store URL (``s3://bucket/ihd``); gets ``train/``, ``val/`` and ``test/``.
        val_fraction: Fraction of the training real images (with all their composites) moved to ``val``.
        seed: Seed of the train/val split.
        subsets: Keep only these subsets (default: every subset found).
        le50: Keep only composites whose foreground covers at most 50 % of the image (the le50 protocol).
        train_list: An explicit training list (e.g. DIRL's ``le50_train.txt``) instead of the subsets' lists.
        test_list: An explicit test list instead of the subsets' lists.
        cache_dir: Where the le50 foreground fractions are cached (default: next to the data, else the user cache dir).
        num_workers: Worker processes; more than 1 uses :func:`litdata.optimize`.
        chunk_bytes: Size of one litdata chunk, e.g. ``64MB``.
        progress: Show a progress bar.

    Returns:
        The number of samples written per split.

    Example:
        >>> optimize_ihd("/data/iHarmony4", "/data/ihd-chunks", num_workers=4)  # doctest: +SKIP
    """
    if num_workers < 1:
        raise ValueError(f"num_workers (--workers) must be at least 1, got {num_workers}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction (--val-fraction) must be in [0, 1), got {val_fraction}")
    import litdata

    root = Path(root).resolve()
    out = str(out).rstrip("/")
    split_samples: dict[str, list[Sample]] = {}
    for split, list_file in (("train", train_list), ("test", test_list)):
        samples = build_index(root, split=split, subsets=subsets, list_file=list_file)
        split_samples[split] = filter_le50(samples, root, cache_dir) if le50 else samples
    split_samples["train"], split_samples["val"] = split_by_real_id(split_samples["train"], val_fraction, seed)
    counts = {}
    for split in STREAMING_SPLITS:
        samples = split_samples[split]
        counts[split] = len(samples)
        if not samples:
            continue
        if num_workers > 1 or "://" in str(out):
            # Parallel worker processes (and direct upload to object stores) via litdata's optimize.
            litdata.optimize(
                fn=functools.partial(_encode, root=str(root)),
                inputs=[_as_dict(s) for s in samples],
                output_dir=f"{out}/{split}",
                chunk_bytes=chunk_bytes,
                num_workers=num_workers,
                mode="overwrite",
                verbose=False,
                keep_data_ordered=True,
            )
        else:
            # In-process: reading files is I/O-bound, and spawning optimize's workers costs tens of seconds.
            _write_in_process(samples, root, Path(out) / split, chunk_bytes, progress)
    meta = {"source": str(root), "val_fraction": val_fraction, "seed": seed, "le50": le50, "counts": counts}
    if "://" in out:
        litdata_meta = Path(tempfile.mkdtemp()) / _META
        litdata_meta.write_text(json.dumps(meta, indent=2))
        warnings.warn(f"{_META} (split record) not uploaded; copy {litdata_meta} to {out}/", stacklevel=2)
    else:
        (Path(out) / _META).write_text(json.dumps(meta, indent=2))
    return counts


def _write_in_process(samples: Sequence[Sample], root: Path, out: Path, chunk_bytes: str, progress: bool) -> None:
    from litdata.streaming.writer import BinaryWriter
    from tqdm.auto import tqdm

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    writer = BinaryWriter(str(out), chunk_bytes=chunk_bytes)
    for i, sample in enumerate(tqdm(samples, desc=f"optimize {out.name}", disable=not progress, unit="img")):
        writer[i] = _encode(_as_dict(sample), str(root))
    writer.done()
    writer.merge()


def _as_dict(sample: Sample) -> dict[str, str]:
    return {k: getattr(sample, k) for k in ("composite", "mask", "real", "subset", "real_id")}


def read_meta(uri: str) -> dict[str, Any] | None:
    """The ``inharmony.json`` written by :func:`optimize_ihd` when ``uri`` is a local folder, else None."""
    path = Path(uri) / _META
    return json.loads(path.read_text()) if "://" not in uri and path.is_file() else None


class _Decode:
    """Picklable item hook: raw litdata record → decoded, transformed item."""

    def __init__(self, transform: Transform | None, reduced_decoding: bool):
        self.transform = transform
        self.reduced_decoding = reduced_decoding

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        sample = Sample(record["path"], record["mask_path"], record["real"], record["subset"], record["real_id"])
        return load_item(
            record["composite"],
            record["mask"],
            sample,
            self.transform,
            self.reduced_decoding,
            where="<stream>/",
        )


class StreamingIHarmony4(StreamingDataset):
    """iHarmony4 samples streamed from chunks written by :func:`optimize_ihd`.

    Args:
        input_dir: one split's folder or URL, e.g. ``"/data/ihd-chunks/train"`` or ``"s3://bucket/ihd/train"``.
        transform: as for :class:`~inharmony.data.IHarmony4`.
        reduced_decoding: decode huge JPEGs at reduced scale when the transform's output allows.
        shuffle: shuffle (use for training).
        seed: seed of litdata's shuffle and of the per-sample augmentation: sample ``i`` of epoch ``e`` is
            transformed under ``torch.manual_seed(sample_seed(seed, e, i))``, so a resumed run (litdata's
            :class:`~litdata.StreamingDataLoader` is checkpointed by Lightning) augments as the
            uninterrupted one did, whatever the number of workers.
        **kwargs: passed to :class:`litdata.StreamingDataset` (``cache_dir``, ``max_cache_size``, ...).

    Items are dicts with ``image``, ``mask``, ``subset`` and ``path``, as from the folder source.
    """

    def __init__(
        self,
        input_dir: str,
        transform: Transform | None = None,
        reduced_decoding: bool = True,
        shuffle: bool = False,
        seed: int = 42,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            input_dir, shuffle=shuffle, seed=seed, transform=_Decode(transform, reduced_decoding), **kwargs
        )

    def __getitem__(self, index: Any) -> Any:
        key = getattr(index, "index", index)
        if not isinstance(key, int):
            return super().__getitem__(index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, self.current_epoch, key))
            return super().__getitem__(index)
