"""Per-subset rows for torchmetrics metrics: one row of state per sub-dataset, created as subsets appear.

Shared by :class:`~inharmony.metrics.localization.PerSubsetMetrics` and
:class:`~inharmony.metrics.harmonization.PerSubsetHarmonizationMetrics`. The subset names are a state
too (``subset_names``, zero-padded UTF-8 bytes), so ``reset``, ``.to()`` and DDP keep rows and names
together; :meth:`SubsetRows.sync` first aligns every process to the union of the names, so a subset
seen by one rank only is still reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.utilities.distributed import gather_all_tensors

from .report import order_subsets

__all__ = ["SubsetRows", "decode_names", "encode_names"]

_ROW_STATES = ("sums", "images", "empty_target")


def encode_names(names: Sequence[str], device: torch.device) -> Tensor:
    """Subset names as a ``(S, L)`` uint8 tensor of zero-padded UTF-8 bytes (a state DDP can sync).

    Example:
        >>> decode_names(encode_names(["HCOCO", "HAdobe5k"], torch.device("cpu")))
        ['HCOCO', 'HAdobe5k']
    """
    raw = [name.encode() for name in names]
    width = max(map(len, raw), default=0)
    rows = [list(b.ljust(width, b"\0")) for b in raw]
    return torch.tensor(rows, dtype=torch.uint8).reshape(len(raw), width).to(device)


def decode_names(state: Tensor) -> list[str]:
    """The names of :func:`encode_names`."""
    return [bytes(row).rstrip(b"\0").decode() for row in state.to("cpu", torch.uint8).tolist()]


def _first(gathered: Tensor) -> Tensor:
    """Reduction of the names state: every process holds the same names once aligned."""
    return gathered[0]


class SubsetRows:
    """Mixin for a ``torchmetrics.Metric`` whose ``sums``/``images``/``empty_target`` states have a leading subset axis.

    Call :meth:`_add_subset_names_state` in ``__init__`` after adding those states (with a leading size 0).
    """

    sums: Tensor
    subset_names: Tensor

    def _add_subset_names_state(self) -> None:
        self.add_state("subset_names", torch.zeros(0, 0, dtype=torch.uint8), dist_reduce_fx=_first)  # type: ignore[attr-defined]
        self._decoded: tuple[Tensor | None, list[str]] = (None, [])

    def _names(self) -> list[str]:
        """The subset of each row (decoded once per state tensor)."""
        if self._decoded[0] is not self.subset_names:
            self._decoded = (self.subset_names, decode_names(self.subset_names))
        return self._decoded[1]

    def _use_subsets(self, names: Iterable[str]) -> dict[str, int]:
        """Make sure each name has a row (rows kept in :func:`order_subsets` order); name -> row."""
        old = self._names()
        wanted = order_subsets({*old, *names})
        if wanted != old:
            where = torch.tensor([wanted.index(n) for n in old], dtype=torch.long, device=self.sums.device)
            for key in _ROW_STATES:
                state = getattr(self, key)
                setattr(self, key, state.new_zeros((len(wanted), *state.shape[1:])).index_copy_(0, where, state))
            self.subset_names = encode_names(wanted, self.sums.device)
            self._decoded = (self.subset_names, wanted)
        return {name: i for i, name in enumerate(wanted)}

    def sync(
        self,
        dist_sync_fn: Callable | None = None,
        process_group: Any | None = None,
        should_sync: bool = True,
        distributed_available: Callable | None = None,
    ) -> None:
        """Align the rows of every process to the union of their subset names, then sum them."""
        available = distributed_available or self.distributed_available_fn  # type: ignore[attr-defined]
        if should_sync and not self._is_synced and callable(available) and available():  # type: ignore[attr-defined]
            gather = dist_sync_fn or gather_all_tensors
            every = gather(self.subset_names, group=process_group or self.process_group)  # type: ignore[attr-defined]
            self._use_subsets({name for names in every for name in decode_names(names)})
        super().sync(dist_sync_fn, process_group, should_sync, distributed_available)  # type: ignore[misc]
