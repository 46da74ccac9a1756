"""The Lightning DataModule for iHarmony4, from its folder or from litdata chunks.

Example:
    >>> dm = IHarmony4DataModule("/data/iHarmony4", batch_size=8, num_workers=4)  # doctest: +SKIP
    >>> dm.prepare_data(); dm.setup("fit")  # doctest: +SKIP
    >>> batch = next(iter(dm.train_dataloader()))  # doctest: +SKIP
    >>> sorted(batch)  # doctest: +SKIP
    ['image', 'mask', 'path', 'subset']

A harmonizer's task (``needs_real = True``, e.g. :class:`~inharmony.training.harmonization.HarmonizationTask`)
makes the batches also hold ``real`` (the ground-truth image); it is never decoded otherwise:
    >>> dm = IHarmony4DataModule("/data/iHarmony4", with_real=True)  # doctest: +SKIP

Streaming (after ``inharmony data optimize --root /data/iHarmony4 --out /data/ihd-chunks``):
    >>> dm = IHarmony4DataModule(streaming="s3://bucket/ihd-chunks", batch_size=8)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

import lightning as L
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from ..preprocessing import PIXEL_PRESETS, EvalPreprocess, eval_pixels
from .dataset import IHarmony4
from .index import FOLDERS, discover_subsets, resolve_list_files
from .sampling import ResumableDataLoader, ResumableSampler, SeededItems
from .splits import sample_fraction, split_by_real_id
from .transforms import PairTransform, eval_transform, train_transform

__all__ = ["IHarmony4DataModule"]

_DEFAULT_VAL_FRACTION = {"disjoint": 0.05, "authors": 0.1, "none": 0.0}
_CHOICES = {
    "validation": tuple(_DEFAULT_VAL_FRACTION),
    "eval_pixels": tuple(PIXEL_PRESETS),
    "on_error": ("raise", "skip"),
}


def _check_options(**options: Any) -> None:
    """Refuse out-of-range options before anything is read, one line naming the option."""

    def bad(name: str, what: str) -> DataError:
        return DataError(f"IHarmony4DataModule: {name} {what}, got {options[name]!r}")

    root, streaming = options["root"], options["streaming"]
    if (root is None) == (streaming is None):
        raise DataError(
            "IHarmony4DataModule: give exactly one of root= (the iHarmony4 folder, --data.root) "
            "or streaming= (optimized chunks)"
        )
    if streaming is not None and options["validation"] == "authors":
        raise DataError(
            "IHarmony4DataModule: validation 'authors' needs the folder source (root=); the chunks of "
            "'inharmony data optimize' hold a disjoint val split: use validation 'disjoint' or 'none'"
        )
    if root is not None and not Path(root).is_dir():
        raise DataError(
            f"IHarmony4DataModule: root {str(root)!r} is not a directory: pass the folder that holds HCOCO/, ..."
        )
    for name in ("batch_size", "image_size"):
        if isinstance(options[name], bool) or not isinstance(options[name], int) or options[name] < 1:
            raise bad(name, "must be a whole number, at least 1")
    if options["eval_batch_size"] is not None and (
        not isinstance(options["eval_batch_size"], int) or options["eval_batch_size"] < 1
    ):
        raise bad("eval_batch_size", "must be a whole number, at least 1 (or null for batch_size)")
    if not isinstance(options["num_workers"], int) or options["num_workers"] < 0:
        raise bad("num_workers", "must be a whole number, at least 0")
    for name, choices in _CHOICES.items():
        if options[name] not in choices:
            raise bad(name, f"must be one of {', '.join(choices)}")
    fraction = options["val_fraction"]
    if fraction is not None and not 0.0 <= fraction < 1.0:
        raise bad("val_fraction", "must be in [0, 1)")
    scale = tuple(options["crop_scale"])
    if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise bad("crop_scale", "must be (low, high) with 0 < low ≤ high ≤ 1")
    for name in ("hflip", "crop_keep_prob"):
        if not 0.0 <= options[name] <= 1.0:
            raise bad(name, "must be a probability in [0, 1]")
    if options["subsets"] is not None and not options["subsets"]:
        raise bad("subsets", "must name at least one subset (or be null for all)")


class IHarmony4DataModule(L.LightningDataModule):
    """Train / val / test loaders for iHarmony4 (or any tree in its layout, e.g. from ``inharmony synth``).

    Batches are dicts: ``image`` float (B, 3, H, W) ImageNet-normalised, ``mask`` float (B, 1, H, W) in
    {0, 1}, ``subset`` list[str], ``path`` list[str] (composite paths relative to the root). Val, test and
    predict images go through :attr:`eval_transform`, the preprocessing :class:`~inharmony.inference.Predictor`
    uses, so ``inharmony test`` scores the masks ``inharmony predict`` writes.

    **Model selection** (``validation``; no validation split is published):

    * ``"disjoint"``: about ``val_fraction`` (default 0.05) of the train list's *real photos*, with all their
      composites, are held out for validation and the model trains on the rest. Validation scores are
      honest (no photo is on both sides), but training sees ~95 % of the images the papers trained on.
    * ``"authors"``: the model trains on the *whole* train list, and validation scores a seeded random
      ``val_fraction`` (default 0.1) of the train list's composites — the same images it trains on, as the
      authors' ``le50_val.txt`` was (MadisNet's README: a random 10 % of ``le50_train.txt``). The training
      set is the papers'; the best-epoch choice is made on seen images, as theirs was.
    * ``"none"``: train on the whole list, no validation (monitor nothing, or keep the last epoch).

    **Training stream.** The order of each epoch comes from ``seed + epoch`` and every sample's
    augmentation from ``(seed, epoch, index)`` (:mod:`inharmony.data.sampling`), so the batches do not
    depend on ``num_workers``, and a run resumed from a checkpoint written in the middle of an epoch
    (folder or litdata source) continues that epoch with exactly the samples it had not seen yet.

    **Split lists and le50.** ``le50`` selects the composites whose foreground is ≤ 50 % from the lists the
    dataset itself provides (``IHD_<split>.txt`` or ``<Subset>/<Subset>_<split>.txt``). An explicit
    ``train_list``/``test_list`` (such as DIRL's ``le50_train.txt``) is used exactly as given: ``le50`` never
    filters it again.

    Args:
        root: iHarmony4 root folder (give this or ``streaming``).
        batch_size: training batch size (per device).
        num_workers: dataloader worker processes.
        image_size: network input side (the official recipe uses 224).
        eval_batch_size: batch size for val/test/predict (default: ``batch_size``).
        validation: model-selection protocol, ``"disjoint"``, ``"authors"`` or ``"none"`` (see above).
        val_fraction: share held out (``"disjoint"``: of real photos) or sampled (``"authors"``: of
            composites) for validation; None: 0.05 for ``"disjoint"``, 0.1 for ``"authors"``. 0 = no validation.
        seed: seed of the validation split, the training order and the augmentation; None: the seed given to
            ``seed_everything`` (``seed_everything: 42`` in a config), else 0.
        subsets: only these subsets (default: all found).
        le50: keep only composites whose foreground is ≤ 50 % of the image (DIRL's protocol), in the
            lists the dataset provides; ignored for an explicit ``train_list``/``test_list``.
        train_list: explicit train list file (e.g. ``le50_train.txt``), relative to ``root`` or absolute.
        test_list: explicit test list file.
        crop_scale: RandomResizedCrop area scale range for training.
        hflip: horizontal-flip probability for training.
        crop_min_foreground: redraw a training crop while its mask sums to ≤ this many foreground pixels (the
            authors' 10); None never redraws.
        crop_keep_prob: probability of keeping a crop without the check (the authors' 0.05).
        eval_pixels: the evaluation pixels of val/test/predict: ``"official"`` (the authors' test loader's
            tensors, full-size decoding; comparable with the papers) or ``"fast"`` (reduced JPEG decoding
            and area downscaling; faster on large photos, scores not comparable, tables say so).
        reduced_decoding: training only: decode huge JPEGs at reduced scale when the crop's output is small
            (False: always full size). The evaluation pixels are chosen by ``eval_pixels``.
        on_error: ``"raise"`` or ``"skip"`` bad samples (skipping warns and counts; see :class:`IHarmony4`).
        cache_dir: where to cache foreground fractions (default: next to the data, else the user cache).
        streaming: folder or object-store URL written by ``inharmony data optimize``
            (holds train/, val/, test/; its val split is ``"disjoint"``, carved at optimize time).
        pin_memory: pin batches in page-locked memory (for GPU training).
        drop_last: drop the last incomplete training batch (the authors' loader does).
        with_real: batches also hold ``real``, the real (harmonized) image of each composite, float
            (B, 3, H, W) RGB in [0, 1], not normalised, on the same crop/flip/resize as ``image``. None
            (default): exactly when the trained module asks for it (its ``needs_real`` attribute, True for
            a harmonizer), so a localizer never decodes real images. Folder source only.

    Raises:
        DataError: an option is out of range, or ``root`` is not a folder (one line naming the option).

    Example:
        >>> dm = IHarmony4DataModule("/data/iHarmony4", validation="authors", seed=42)  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 8,
        num_workers: int = 4,
        image_size: int = 224,
        eval_batch_size: int | None = None,
        validation: Literal["disjoint", "authors", "none"] = "disjoint",
        val_fraction: float | None = None,
        seed: int | None = None,
        subsets: list[str] | None = None,
        le50: bool = True,
        train_list: str | None = None,
        test_list: str | None = None,
        crop_scale: tuple[float, float] = (0.9, 1.0),
        hflip: float = 0.5,
        crop_min_foreground: float | None = 10.0,
        crop_keep_prob: float = 0.05,
        eval_pixels: Literal["official", "fast"] = "official",
        reduced_decoding: bool = True,
        on_error: Literal["raise", "skip"] = "raise",
        cache_dir: str | None = None,
        streaming: str | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        with_real: bool | None = None,
    ) -> None:
        super().__init__()
        _check_options(
            root=root,
            streaming=streaming,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            image_size=image_size,
            validation=validation,
            val_fraction=val_fraction,
            crop_scale=crop_scale,
            hflip=hflip,
            crop_keep_prob=crop_keep_prob,
            eval_pixels=eval_pixels,
            on_error=on_error,
            subsets=subsets,
        )
        self.save_hyperparameters()
        self.root = root
        self.streaming = streaming.rstrip("/") if streaming else None
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction if val_fraction is not None else _DEFAULT_VAL_FRACTION.get(validation, 0.0)
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None

    @property
    def seed(self) -> int:
        """The seed in use: ``seed``, else the one given to ``seed_everything`` (``PL_GLOBAL_SEED``), else 0."""
        if self.hparams.seed is not None:
            return int(self.hparams.seed)
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    @property
    def train_transform(self) -> PairTransform:
        """The training augmentation: random resized crop (redrawn as the authors' loader does) and flip."""
        h = self.hparams
        return train_transform(
            h.image_size,
            scale=tuple(h.crop_scale),
            hflip=h.hflip,
            min_foreground=h.crop_min_foreground,
            keep_prob=h.crop_keep_prob,
        )

    @property
    def eval_transform(self) -> EvalPreprocess:
        """The evaluation preprocessing of val/test/predict: the one :class:`~inharmony.inference.Predictor` uses.

        Its pixels are ``eval_pixels`` (``"official"``: the authors' test loader's tensors).
        """
        return eval_transform(self.hparams.image_size, pixels=eval_pixels(self.hparams.eval_pixels))

    @property
    def with_real(self) -> bool:
        """Whether batches hold ``real``: the ``with_real`` option, else what the trained module asks for."""
        if self.hparams.get("with_real") is not None:
            return bool(self.hparams.with_real)
        trainer = getattr(self, "trainer", None)
        module = getattr(trainer, "lightning_module", None) if trainer is not None else None
        return bool(getattr(module, "needs_real", False))

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
        for split, explicit in (("train", self.hparams.train_list), ("test", self.hparams.test_list)):
            if self.hparams.le50 and explicit is None:
                self._folder(split, None)  # computes and caches the fractions on this (global zero) rank

    # -- datasets ------------------------------------------------------------------------------------

    def _folder(self, split: str, transform: PairTransform | EvalPreprocess | None) -> IHarmony4:
        h = self.hparams
        list_file = h.train_list if split == "train" else h.test_list
        return IHarmony4(
            self.root,
            split=split,
            subsets=h.subsets,
            le50=h.le50 and list_file is None,  # an explicit list is used as given, never filtered again
            list_file=list_file,
            transform=transform,
            cache_dir=h.cache_dir,
            with_real=self.with_real,
            # Training decodes as reduced_decoding says; evaluation as its pixels say (official: full size).
            reduced_decoding=h.reduced_decoding if split == "train" else True,
            on_error=h.on_error,
        )

    def _stream(self, split: str, transform: PairTransform | EvalPreprocess, shuffle: bool) -> Dataset | None:
        from .streaming import StreamingIHarmony4, read_meta

        uri = f"{self.streaming}/{split}"
        if split == "val":
            if self.hparams.validation == "none":
                return None
            meta = read_meta(self.streaming)
            if meta is not None:
                if meta["counts"].get("val", 0) == 0:
                    return None
                given = {"val_fraction": self.hparams.val_fraction, "seed": self.hparams.seed}
                if any(value is not None and value != meta[key] for key, value in given.items()):
                    warnings.warn(
                        f"the val split in {self.streaming} was carved with "
                        f"val_fraction={meta['val_fraction']}, "
                        f"seed={meta['seed']} at optimize time; val_fraction/seed given here are ignored",
                        stacklevel=2,
                    )
        return StreamingIHarmony4(
            uri,
            transform=transform,
            reduced_decoding=self.hparams.reduced_decoding if split == "train" else True,
            shuffle=shuffle,
            seed=self.seed,
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets for ``stage`` (``fit``, ``validate``, ``test``, ``predict`` or None for all)."""
        if self.streaming is not None and self.with_real:
            raise DataError(
                "IHarmony4DataModule: the model needs real images (a harmonizer), and the chunks of "
                "'inharmony data optimize' hold composites and masks only: use root= (--data.root) instead"
            )
        if stage in ("fit", "validate", None) and self.train_dataset is None:
            if self.streaming is not None:
                self.train_dataset = self._stream("train", self.train_transform, shuffle=True)
                self.val_dataset = self._stream("val", self.eval_transform, shuffle=False)
            else:
                full = self._folder("train", self.train_transform)
                validation = self.hparams.validation
                if validation == "disjoint":
                    full.samples, val = split_by_real_id(full.samples, self.val_fraction, self.seed)
                elif validation == "authors":
                    val = sample_fraction(full.samples, self.val_fraction, self.seed)
                else:
                    val = []
                self.train_dataset = full
                self.val_dataset = (
                    IHarmony4(
                        self.root,
                        samples=val,
                        transform=self.eval_transform,
                        reduced_decoding=True,
                        on_error=self.hparams.on_error,
                        with_real=self.with_real,
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

            # Shuffling is the dataset's (sharded) business; the loader is stateful (Lightning checkpoints it).
            return StreamingDataLoader(dataset, **kwargs)
        if shuffle:
            world, rank = self._world()
            sampler = ResumableSampler(len(dataset), shuffle=True, seed=self.seed, num_replicas=world, rank=rank)
            return ResumableDataLoader(SeededItems(dataset), sampler=sampler, **kwargs)
        return DataLoader(dataset, shuffle=False, **kwargs)

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def train_dataloader(self) -> Any:
        """Shuffled training batches; a checkpoint written mid-epoch resumes the epoch where it stopped."""
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
