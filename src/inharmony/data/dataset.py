"""The iHarmony4 dataset read from its folder.

Example:
    >>> ds = IHarmony4("/data/iHarmony4", split="test", transform=eval_transform(224))  # doctest: +SKIP
    >>> ds.counts()  # doctest: +SKIP
    {'HCOCO': 4256, 'HAdobe5k': 2065, 'HFlickr': 783, 'Hday2night': 133}
    >>> item = ds[0]; item["image"].shape, item["mask"].shape, item["subset"], item["path"]  # doctest: +SKIP
    (torch.Size([3, 224, 224]), torch.Size([1, 224, 224]), 'HCOCO', 'HCOCO/composite_images/c1_1_1.jpg')

A harmonizer also gets the real (ground-truth) image, ``real_images/X.jpg``, decoded only when asked:
    >>> ds = IHarmony4("/data/iHarmony4", split="test", transform=eval_transform(256), with_real=True)  # doctest: +SKIP
    >>> ds[0]["real"].shape  # RGB in [0, 1], not normalised, on the composite's pixels  # doctest: +SKIP
    torch.Size([3, 256, 256])
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ..errors import DataError
from ..imageio import decode_image
from .decode import decode_pair, read_bytes
from .index import Sample, build_index, order_subsets
from .le50 import filter_le50
from .transforms import apply_transform

__all__ = ["IHarmony4", "load_item"]

Transform = Callable[[np.ndarray, np.ndarray], tuple[Any, Any]]


def load_item(
    composite: bytes,
    mask: bytes,
    sample: Sample,
    transform: Transform | None,
    reduced_decoding: bool = True,
    where: str = "",
    real: bytes | None = None,
) -> dict[str, Any]:
    """Decode one pair and apply ``transform``; shared by the folder and the streaming sources.

    The composite is decoded as the transform asks (its ``min_source_side``: the shorter side reduced
    JPEG decoding must keep, None for a full-size decode), so an item of the eval transform holds the
    tensor :class:`~inharmony.inference.Predictor` gives the network for the same file.

    With ``real`` (the real image's bytes) the item also holds ``"real"``: the real image decoded like the
    composite and given the same geometry (see :func:`~inharmony.data.transforms.apply_transform`),
    ``float32 (3, H, W)`` RGB in [0, 1] with a transform. It must have the composite's size.
    """
    min_side = getattr(transform, "min_source_side", None) if reduced_decoding else None
    image, target = decode_pair(
        composite, mask, f"{where}{sample.composite}", f"{where}{sample.mask}", min_side=min_side
    )
    real_rgb = None if real is None else _decode_real(real, image.shape[:2], f"{where}{sample.real}", min_side)
    image, target, real_out = apply_transform(transform, image, target, real_rgb)
    item = {"image": image, "mask": target, "subset": sample.subset, "path": sample.composite}
    if real_out is not None:
        item["real"] = real_out
    return item


def _decode_real(buf: bytes, shape: tuple[int, int], name: str, min_side: int | None) -> np.ndarray:
    """The real image decoded as its composite was (same reduced decoding); a clear error if the sizes differ."""
    real, full = decode_image(buf, name, min_side)
    if real.shape[:2] != tuple(shape):
        raise DataError(
            f"real image {name} is {full[1]}x{full[0]} (decoded {real.shape[1]}x{real.shape[0]}) but its composite "
            f"decodes to {shape[1]}x{shape[0]}: a real image must have its composite's size"
        )
    return real


class IHarmony4(Dataset):
    """iHarmony4 composites with their inharmonious-region masks.

    Args:
        root: the folder that holds ``HCOCO/``, ``HAdobe5k/``, ``HFlickr/``, ``Hday2night/`` (or other
            subset folders in the same layout, e.g. one written by ``inharmony synth``).
        split: ``"train"`` or ``"test"``.
        subsets: keep only these subsets (default: all found).
        le50: keep only composites whose foreground covers ≤ 50 % of the image (DIRL's protocol);
            computed from the masks once and cached (see :class:`~inharmony.data.le50.ForegroundCache`).
        list_file: an explicit split list (e.g. DIRL's ``le50_test.txt``) instead of the dataset's own.
        transform: ``(image RGB uint8 HWC, mask float32 HW) -> (image, mask)``, e.g.
            :func:`~inharmony.data.transforms.train_transform`. Without one, items hold NumPy arrays.
        samples: use these samples instead of indexing ``root`` (e.g. one side of a validation split).
        cache_dir: where to cache foreground fractions (default: next to the data, else the user cache).
        reduced_decoding: decode huge JPEGs at 1/2, 1/4 or 1/8 scale when the transform allows (its
            ``min_source_side``; :func:`~inharmony.data.eval_transform` allows it only with
            :data:`inharmony.preprocessing.FAST_PIXELS`). False always decodes at full size.
        on_error: ``"raise"`` (default) stops at a bad sample with an error naming the file; ``"skip"``
            warns, counts it in :attr:`skipped`, and serves the next good sample instead.
        with_real: also read the real image (``real_images/``) of each composite, for a harmonizer; never
            read otherwise.

    Items are dicts: ``image``, ``mask``, ``subset`` (e.g. ``"HCOCO"``) and ``path`` (the composite's
    path relative to ``root``, e.g. ``"HCOCO/composite_images/c1_1_1.jpg"``); with ``with_real`` also
    ``real`` (the real image on the same pixels, RGB in [0, 1], not normalised).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        subsets: Sequence[str] | None = None,
        le50: bool = True,
        list_file: str | os.PathLike | None = None,
        *,
        transform: Transform | None = None,
        samples: Sequence[Sample] | None = None,
        cache_dir: str | os.PathLike | None = None,
        reduced_decoding: bool = True,
        on_error: str = "raise",
        with_real: bool = False,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.reduced_decoding = reduced_decoding
        self.on_error = on_error
        self.with_real = bool(with_real)
        self.skipped = 0
        if samples is None:
            samples = build_index(self.root, split=split, subsets=subsets, list_file=list_file)
            if le50:
                samples = filter_le50(samples, self.root, cache_dir)
                if not samples:
                    raise DataError(f"no {split} composite under {self.root} has foreground ≤ 50 % (le50=True)")
        self.samples: list[Sample] = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def counts(self) -> dict[str, int]:
        """Number of composites per subset, official subsets first."""
        counter = Counter(s.subset for s in self.samples)
        return {s: counter[s] for s in order_subsets(counter)}

    def load(self, index: int) -> dict[str, Any]:
        """Read, decode and transform sample ``index``; raises :class:`DataError` on bad files."""
        sample = self.samples[index]
        return load_item(
            read_bytes(self.root / sample.composite),
            read_bytes(self.root / sample.mask),
            sample,
            self.transform,
            self.reduced_decoding,
            where=f"{self.root}/",
            real=read_bytes(self.root / sample.real) if self.with_real else None,
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index >= len(self.samples) or index < -len(self.samples):
            raise IndexError(index)
        if self.on_error == "raise":
            return self.load(index)
        for attempt in range(min(len(self.samples), 16)):
            try:
                return self.load((index + attempt) % len(self.samples))
            except DataError as err:
                self.skipped += 1
                warnings.warn(f"skipping bad sample ({self.skipped} so far in this process): {err}", stacklevel=2)
        raise DataError(f"16 consecutive bad samples from index {index} under {self.root}; check the dataset")

    def __repr__(self) -> str:
        real = ", with_real=True" if self.with_real else ""
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, counts={self.counts()}{real})"
