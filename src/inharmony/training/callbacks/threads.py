"""Train with the CPU thread count that is fastest now, re-checked as other programs come and go.

Example:
    >>> from inharmony.training.callbacks import AdaptiveThreads
    >>> AdaptiveThreads(candidates=[2, 1]).candidates
    (2, 1)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback

__all__ = ["AdaptiveThreads"]


class AdaptiveThreads(Callback):
    """Keep the CPU thread count that trains fastest now, re-checked as the machine's load changes.

    torch splits each CPU operator over ``torch.get_num_threads()`` threads that meet at a barrier.
    When other programs hold some of the cores, every operator waits for whichever thread the OS has
    set aside, and more threads are slower than fewer. Measured on a 2-core CPU beside two
    busy-looping programs, a ``dirl_tiny`` training step (32 px, batch 8) took 1.37 s with 2 threads
    and 0.21 s with 1; idle, 0.09 s with 2 and 0.13 s with 1. No library we know of adapts torch's
    thread count to load during training, hence this callback.

    A probe times ``window`` training batches at each candidate count, the one in use first, and keeps
    the fastest median (the one in use unless another is 10 % faster). A candidate whose first two
    batches are both over 1.5x the best median so far is dropped at once, so probing a bad count costs
    two batches. Probes run after ``warmup_steps``; then whenever the median of the last
    ``3 * window`` batches grows to 1.3x what the last probe measured for the count in use (other
    programs started); and, while fewer threads than the most are in use, every
    ``probe_every_n_steps`` steps (they may have stopped). So an idle machine is probed once. Thread
    counts round differently, and the probe's length depends on timing, so two runs are not bitwise
    identical (leave the callback out for that). The outcome of the first probe and of any probe that
    changes the count is printed. Only the training batches are timed (forward, backward, optimizer;
    not data loading, validation or checkpointing). The count in force before training is restored when training ends.
    Nothing is done when training runs on a GPU (the count matters little there), and each process of
    a multi-process run tunes its own count.

    Args:
        candidates: Thread counts to try (default: the count when training starts, its half, and 1).
        probe_every_n_steps: Steps from one probe to the next while fewer threads than the most are in use.
        window: Batches timed per candidate in a probe.
        warmup_steps: Steps before the first probe (the first steps carry one-off costs).

    Example:
        >>> from lightning.pytorch import Trainer
        >>> trainer = Trainer(max_steps=2000, callbacks=[AdaptiveThreads()])  # doctest: +SKIP
        threads: 1 (1: 0.21 s/step, 2: 1.37 s/step; measured at step 13)
    """

    #: A candidate is dropped from a probe when its first two batches both exceed this multiple of the best median.
    DROP_RATIO = 1.5
    #: The count in use is kept unless another is faster by more than this fraction (timing noise).
    KEEP_MARGIN = 0.10
    #: A probe starts when the median of the last ``3 * window`` batches reaches this multiple of the last probe's.
    SLOWDOWN = 1.3

    def __init__(
        self,
        candidates: Sequence[int] | None = None,
        probe_every_n_steps: int = 200,
        window: int = 6,
        warmup_steps: int = 5,
    ) -> None:
        super().__init__()
        if candidates is not None:
            candidates = tuple(int(c) for c in candidates)
            if not candidates or min(candidates) < 1:
                raise ValueError(f"candidates must be one or more thread counts >= 1, got {candidates}")
        if probe_every_n_steps < 1 or window < 1 or warmup_steps < 0:
            raise ValueError(
                "probe_every_n_steps and window must be >= 1 and warmup_steps >= 0, got "
                f"probe_every_n_steps={probe_every_n_steps}, window={window}, warmup_steps={warmup_steps}"
            )
        self.candidates = candidates
        self.probe_every_n_steps = probe_every_n_steps
        self.window = window
        self.warmup_steps = warmup_steps
        #: One entry per probe: the step it ended at, the median seconds per batch of each count tried, the count kept.
        self.history: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._clock: Callable[[], float] = time.perf_counter
        self._active = False
        self._original: int | None = None
        self._counts: tuple[int, ...] = ()
        self._queue: list[int] = []  # counts still to time in the current probe (the one in force first)
        self._samples: dict[int, list[float]] = {}
        self._next_probe: float = 0
        self._reference: float | None = None  # the last probe's median for the count in use
        self._recent: deque[float] = deque(maxlen=3 * window)  # long enough to ride out a few slow batches
        self._batch_start: float | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._original = torch.get_num_threads()
        counts = self.candidates or (self._original, max(1, self._original // 2), 1)
        self._counts = tuple(dict.fromkeys(counts))  # unique, in the given order
        self._active = trainer.strategy.root_device.type == "cpu" and len(self._counts) > 1
        self._queue, self._samples, self._reference = [], {}, None
        self._recent.clear()
        self._next_probe = trainer.global_step + self.warmup_steps

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if not self._active:
            return
        if not self._queue and trainer.global_step >= self._next_probe:
            current = torch.get_num_threads()
            self._queue = [current, *(c for c in self._counts if c != current)]
            self._samples = {c: [] for c in self._queue}
            torch.set_num_threads(self._queue[0])
        self._batch_start = self._clock()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._active or self._batch_start is None:
            return
        seconds = self._clock() - self._batch_start
        self._batch_start = None
        if not self._queue:
            self._recent.append(seconds)
            slower = self._reference is not None and len(self._recent) == self._recent.maxlen
            if slower and statistics.median(self._recent) > self.SLOWDOWN * self._reference:
                self._next_probe = trainer.global_step
            return
        count = self._queue[0]
        taken = self._samples[count]
        taken.append(seconds)
        best = min((statistics.median(s) for c, s in self._samples.items() if c != count and s), default=None)
        hopeless = best is not None and len(taken) >= 2 and min(taken[-2:]) > self.DROP_RATIO * best
        if len(taken) < self.window and not hopeless:
            return
        self._queue.pop(0)
        if self._queue:
            torch.set_num_threads(self._queue[0])
        else:
            self._finish_probe(trainer)

    def _finish_probe(self, trainer: Trainer) -> None:
        medians = {c: statistics.median(s) for c, s in self._samples.items()}
        before = next(iter(medians))  # the count in force when the probe started
        fastest = min(medians, key=medians.__getitem__)
        chosen = fastest if medians[fastest] < (1 - self.KEEP_MARGIN) * medians[before] else before
        torch.set_num_threads(chosen)
        self._reference = medians[chosen]
        self._recent.clear()
        fewer = chosen < max(self._counts)
        self._next_probe = trainer.global_step + self.probe_every_n_steps if fewer else float("inf")
        self.history.append({"step": trainer.global_step, "seconds_per_step": medians, "threads": chosen})
        if len(self.history) == 1 or chosen != before:
            timings = ", ".join(f"{c}: {m:.2f} s/step" for c, m in sorted(medians.items(), key=lambda cm: cm[1]))
            line = f"threads: {chosen} ({timings}; measured at step {trainer.global_step})"
            self.lines.append(line)
            if trainer.is_global_zero:
                print(line, file=sys.stdout, flush=True)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._active and self._original is not None:
            torch.set_num_threads(self._original)
        self._queue, self._batch_start = [], None
