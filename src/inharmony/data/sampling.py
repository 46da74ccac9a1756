"""Resumable training order: a run stopped in the middle of an epoch continues it with the same samples.

Three pieces make the training stream a function of ``(seed, epoch, position)`` only, so that a run
resumed from a checkpoint written mid-epoch sees exactly the samples (and augmentations) the
uninterrupted run would have seen:

* :class:`ResumableSampler` draws the epoch's order from ``seed + epoch`` (as
  :class:`~torch.utils.data.DistributedSampler` does, sharded over DDP ranks the same way) and can
  start an epoch at a given position. Each index comes with its own augmentation seed.
* :class:`SeededItems` wraps a dataset: item ``i`` is loaded with torch's RNG set to that seed, so the
  random crop and flip depend on ``(seed, epoch, i)``, not on which worker loads it or what it loaded
  before (the number of workers does not change the batches).
* :class:`ResumableDataLoader` counts the batches it hands out and implements ``state_dict`` /
  ``load_state_dict``; Lightning stores that state in every checkpoint (``loops.fit_loop.combined_loader``)
  and gives it back before the resumed epoch starts.

Example:
    >>> from torch.utils.data import TensorDataset
    >>> import torch
    >>> data = TensorDataset(torch.arange(10))
    >>> sampler = ResumableSampler(len(data), seed=0)
    >>> loader = ResumableDataLoader(SeededItems(data), batch_size=4, sampler=sampler)
    >>> it = iter(loader); first = next(it)
    >>> state = loader.state_dict(); state["samples"]
    4
    >>> again = ResumableDataLoader(SeededItems(data), batch_size=4, sampler=ResumableSampler(10, seed=0))
    >>> again.load_state_dict(state)
    >>> torch.equal(next(iter(again))[0], next(it)[0])
    True
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ["ResumableDataLoader", "ResumableSampler", "SeededItems", "sample_seed"]

_STATE_VERSION = 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of sample ``index`` in ``epoch`` (a 31-bit int; independent streams per triple).

    Example:
        >>> sample_seed(42, 0, 7) == sample_seed(42, 0, 7) != sample_seed(42, 1, 7)
        True
    """
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0] >> 1)


class ResumableSampler(DistributedSampler):
    """The indices of one epoch, shuffled from ``seed + epoch``, that can start part-way through.

    A :class:`~torch.utils.data.DistributedSampler` (Lightning leaves it in place under DDP instead of
    wrapping it), so ``num_replicas``/``rank`` shard the order exactly as torch's does. Each yielded
    item is ``(index, augmentation seed)`` for :class:`SeededItems`.

    Args:
        length: number of samples in the dataset.
        shuffle: shuffle every epoch (False: dataset order).
        seed: seed of the order and of the per-sample augmentation seeds.
        num_replicas: number of DDP processes (1 without DDP).
        rank: this process's rank.
        drop_last: as for :class:`~torch.utils.data.DistributedSampler` (drop the tail instead of padding
            so every rank gets the same number of samples).
    """

    def __init__(
        self,
        length: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            range(length), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.start = 0
        """Position (in this rank's order) at which the next iteration of this epoch begins."""

    def set_epoch(self, epoch: int) -> None:
        # Lightning calls this at every epoch start, including the resumed one: keep the resume position then.
        if epoch != self.epoch:
            self.start = 0
        super().set_epoch(epoch)

    def resume(self, epoch: int, start: int) -> None:
        """Make the next iteration the rest of ``epoch`` from position ``start``."""
        self.epoch = epoch
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        start, self.start = self.start, 0  # the resume position applies to one iteration only
        epoch = self.epoch
        for index in list(super().__iter__())[start:]:
            yield index, sample_seed(self.seed, epoch, index)


class SeededItems(Dataset):
    """A dataset whose item ``(index, seed)`` is ``dataset[index]`` loaded under ``torch.manual_seed(seed)``.

    torch's global RNG is forked for the call, so the caller's random state (a worker's, or the training
    process's with ``num_workers=0``) is left as it was. The transforms of :mod:`inharmony.data.transforms`
    draw their randomness from torch's RNG, which this fixes per sample.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class ResumableDataLoader(DataLoader):
    """A :class:`~torch.utils.data.DataLoader` over a :class:`ResumableSampler` that Lightning can checkpoint.

    ``state_dict()`` records the epoch and how many samples of it this process has been handed (batches
    yielded × batch size); ``load_state_dict`` makes the next iteration start right after them. Lightning
    (≥ 2.2) calls both for a training loader that has them, and does not prefetch when the loader has a
    length, so "yielded" is "trained on" when a checkpoint is written after a training step.
    """

    def __init__(self, dataset: Dataset, *args: Any, sampler: ResumableSampler, **kwargs: Any) -> None:
        super().__init__(dataset, *args, sampler=sampler, **kwargs)
        self._epoch = sampler.epoch
        self._samples = sampler.start

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # A generator: nothing runs until the first batch is asked for, i.e. after Lightning's set_epoch.
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        self._epoch, self._samples = sampler.epoch, sampler.start
        for batch in super().__iter__():
            self._samples += self.batch_size or 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Where the training stream stands: ``{"epoch", "samples", "length", "seed", "num_replicas", ...}``."""
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        epoch, samples = self._epoch, self._samples
        if samples >= len(self) * (self.batch_size or 1) or samples >= sampler.num_samples:
            epoch, samples = epoch + 1, 0  # the epoch is complete: the next one starts from its beginning
        return {
            "version": _STATE_VERSION,
            "epoch": epoch,
            "samples": samples,
            "length": len(sampler.dataset),  # type: ignore[arg-type]
            "seed": sampler.seed,
            "num_replicas": sampler.num_replicas,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (see :meth:`state_dict`); warns and restarts the epoch when the data changed."""
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        now = {"length": len(sampler.dataset), "seed": sampler.seed, "num_replicas": sampler.num_replicas}  # type: ignore[arg-type]
        changed = {k: (state.get(k), v) for k, v in now.items() if state.get(k) != v}
        samples = int(state.get("samples", 0))
        if changed:
            what = ", ".join(f"{k} {old} → {new}" for k, (old, new) in changed.items())
            warnings.warn(
                f"the training data changed since the checkpoint was written ({what}): epoch "
                f"{state.get('epoch')} restarts from its first sample instead of sample {samples}",
                stacklevel=2,
            )
            samples = 0
        sampler.resume(int(state.get("epoch", 0)), samples)
        self._epoch, self._samples = sampler.epoch, sampler.start
