"""The Lightning DataModule for iHarmony4, from its folder or from litdata chunks.

Example:
    >>> dm = IHarmony4DataModule("/data/iHarmony4", batch_size=8, num_workers=4)  # doctest: +SKIP
    >>> dm.prepare_data(); dm.setup("fit")  # doctest: +SKIP
    >>> batch = next(iter(dm.train_dataloader()))  # doctest: +SKIP
    >>> sorted(batch)  # doctest: +SKIP
    ['image', 'mask', 'path', 'subset']

Streaming (after ``inharmony data optimize --root /data/iHarmony4 --out /data/ihd-chunks``):
    >>> dm = IHarmony4DataModule(streaming="s3://bucket/ihd-chunks", batch_size=8)  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import lightning as L
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from ..preprocessing import EvalPreprocess
from .dataset import IHarmony4
from .index import FOLDERS, discover_subsets, resolve_list_files
from .splits import split_by_real_id
from .transforms import PairTransform, eval_transform, train_transform

__all__ = ["IHarmony4DataModule"]


class IHarmony4DataModule(L.LightningDataModule):
    """Train / val / test loaders for iHarmony4 (or any tree in its layout, e.g. from ``inharmony synth``).

    Batches are dicts: ``image`` float (B, 3, H, W) ImageNet-normalised, ``mask`` float (B, 1, H, W) in
    {0, 1}, ``subset`` list[str], ``path`` list[str] (composite paths relative to the root). Val, test and
    predict images go through :attr:`eval_transform`, the preprocessing :class:`~inharmony.inference.Predictor`
    uses, so ``inharmony test`` scores the masks ``inharmony predict`` writes.

    Args:
        root: iHarmony4 root folder (give this or ``streaming``).
        batch_size: training batch size.
        num_workers: dataloader worker processes.
        image_size: network input side (the official recipe uses 224).
        eval_batch_size: batch size for val/test/predict (default: ``batch_size``).
        val_fraction: share of train real images held out for validation (0 = no validation).
        seed: seed of the validation split.
        subsets: only these subsets (default: all found).
        le50: keep only composites whose foreground is ≤ 50 % of the image (DIRL's protocol).
        train_list: explicit train list file (e.g. ``le50_train.txt``), relative to ``root`` or absolute.
        test_list: explicit test list file.
        crop_scale: RandomResizedCrop area scale range for training.
        hflip: horizontal-flip probability for training.
        reduced_decoding: decode huge JPEGs at reduced scale when the output is small (False: never; for
            val/test/predict only where :data:`inharmony.preprocessing.EVAL_PIXELS` allows it too).
        on_error: ``"raise"`` or ``"skip"`` bad samples (skipping warns and counts; see :class:`IHarmony4`).
        cache_dir: where to cache foreground fractions (default: next to the data, else the user cache).
        streaming: folder or object-store URL written by ``inharmony data optimize``
            (holds train/, val/, test/).
        pin_memory: pin batches in page-locked memory (for GPU training).
        drop_last: drop the last incomplete training batch.
    """

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 8,
        num_workers: int = 4,
        image_size: int = 224,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.05,
        seed: int = 0,
        subsets: list[str] | None = None,
        le50: bool = True,
        train_list: str | None = None,
        test_list: str | None = None,
        crop_scale: tuple[float, float] = (0.9, 1.0),
        hflip: float = 0.5,
        reduced_decoding: bool = True,
        on_error: Literal["raise", "skip"] = "raise",
        cache_dir: str | None = None,
        streaming: str | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        if (root is None) == (streaming is None):
            raise ValueError("give exactly one of root= (the iHarmony4 folder) or streaming= (optimized chunks)")
        self.save_hyperparameters()
        self.root = root
        self.streaming = streaming.rstrip("/") if streaming else None
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None

    @property
    def train_transform(self) -> PairTransform:
        return train_transform(self.hparams.image_size, scale=tuple(self.hparams.crop_scale), hflip=self.hparams.hflip)

    @property
    def eval_transform(self) -> EvalPreprocess:
        """The evaluation preprocessing of val/test/predict: the one :class:`~inharmony.inference.Predictor` uses."""
        return eval_transform(self.hparams.image_size)

    # -- layout checks -------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Check the layout (naming what is missing) and fill the foreground-fraction cache once."""
        if self.streaming is not None:
            if "://" not in self.streaming:
                for split in ("train", "test"):
                    if not (Path(self.streaming) / split / "index.json").is_file():
                        raise DataError(
                            f"{self.streaming}/{split}/index.json is missing: write the chunks with "
                            f"'inharmony data optimize --root <iHarmony4> --out {self.streaming}'"
                        )
            return
        root = Path(self.root)
        subsets = self.hparams.subsets or discover_subsets(root)
        if not subsets:
            raise DataError(f"{root} holds no subset folder (HCOCO/, HAdobe5k/, ... each with composite_images/)")
        for subset in subsets:
            missing = [f for f in FOLDERS if not (root / subset / f).is_dir()]
            if missing:
                raise DataError(f"{root / subset} lacks {', '.join(missing)}")
        for split, explicit in (("train", self.hparams.train_list), ("test", self.hparams.test_list)):
            if explicit is None:
                resolve_list_files(root, split, subsets)
            elif not (Path(explicit).is_file() or (root / explicit).is_file()):
                raise DataError(f"{split} list {explicit!r} not found (relative paths are taken from {root})")
        if self.hparams.le50:
            for split in ("train", "test"):
                self._folder(split, None)  # computes and caches the fractions on this (global zero) rank

    # -- datasets ------------------------------------------------------------------------------------

    def _folder(self, split: str, transform: PairTransform | EvalPreprocess | None) -> IHarmony4:
        h = self.hparams
        return IHarmony4(
            self.root,
            split=split,
            subsets=h.subsets,
            le50=h.le50,
            list_file=h.train_list if split == "train" else h.test_list,
            transform=transform,
            cache_dir=h.cache_dir,
            reduced_decoding=h.reduced_decoding,
            on_error=h.on_error,
        )

    def _stream(self, split: str, transform: PairTransform | EvalPreprocess, shuffle: bool) -> Dataset | None:
        from .streaming import StreamingIHarmony4, read_meta

        uri = f"{self.streaming}/{split}"
        if split == "val":
            meta = read_meta(self.streaming)
            if meta is not None:
                if meta["counts"].get("val", 0) == 0:
                    return None
                if meta["val_fraction"] != self.hparams.val_fraction or meta["seed"] != self.hparams.seed:
                    warnings.warn(
                        f"the val split in {self.streaming} was carved with "
                        f"val_fraction={meta['val_fraction']}, "
                        f"seed={meta['seed']} at optimize time; val_fraction/seed given here are ignored",
                        stacklevel=2,
                    )
        return StreamingIHarmony4(
            uri, transform=transform, reduced_decoding=self.hparams.reduced_decoding, shuffle=shuffle
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets for ``stage`` (``fit``, ``validate``, ``test``, ``predict`` or None for all)."""
        if stage in ("fit", "validate", None) and self.train_dataset is None:
            if self.streaming is not None:
                self.train_dataset = self._stream("train", self.train_transform, shuffle=True)
                self.val_dataset = self._stream("val", self.eval_transform, shuffle=False)
            else:
                full = self._folder("train", self.train_transform)
                train, val = split_by_real_id(full.samples, self.hparams.val_fraction, self.hparams.seed)
                full.samples = train
                self.train_dataset = full
                self.val_dataset = (
                    IHarmony4(
                        self.root,
                        samples=val,
                        transform=self.eval_transform,
                        reduced_decoding=self.hparams.reduced_decoding,
                        on_error=self.hparams.on_error,
                    )
                    if val
                    else None
                )
        if stage in ("test", "predict", None) and self.test_dataset is None:
            if self.streaming is not None:
                self.test_dataset = self._stream("test", self.eval_transform, shuffle=False)
            else:
                self.test_dataset = self._folder("test", self.eval_transform)

    # -- loaders -------------------------------------------------------------------------------------

    def _loader(self, dataset: Dataset | None, batch_size: int, shuffle: bool, drop_last: bool = False) -> Any:
        if dataset is None:
            raise RuntimeError("call setup() for this stage before asking for its dataloader")
        kwargs = dict(
            batch_size=batch_size,
            num_workers=self.num_workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=drop_last,
        )
        if self.streaming is not None:
            from litdata import StreamingDataLoader

            return StreamingDataLoader(dataset, **kwargs)  # shuffling is the dataset's (sharded) business
        return DataLoader(dataset, shuffle=shuffle, **kwargs)

    def train_dataloader(self) -> Any:
        return self._loader(self.train_dataset, self.batch_size, shuffle=True, drop_last=self.hparams.drop_last)

    def val_dataloader(self) -> Any:
        if self.val_dataset is None:
            return []  # Lightning skips validation
        return self._loader(self.val_dataset, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> Any:
        return self._loader(self.test_dataset, self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> Any:
        return self._loader(self.test_dataset, self.eval_batch_size, shuffle=False)

    def counts(self) -> dict[str, dict[str, int]]:
        """Samples per subset of each built split (folder source only)."""
        return {
            name: ds.counts()
            for name, ds in (
                ("train", self.train_dataset),
                ("val", self.val_dataset),
                ("test", self.test_dataset),
            )
            if isinstance(ds, IHarmony4)
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root or self.streaming!r}, batch_size={self.batch_size})"
