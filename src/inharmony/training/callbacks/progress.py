"""Training progress against a step budget, with an ETA and the load average.

Example:
    >>> from inharmony.training.callbacks import StepBudgetProgress
    >>> StepBudgetProgress(every_n_steps=100).every_n_steps
    100
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback

__all__ = ["StepBudgetProgress"]


class StepBudgetProgress(Callback):
    """Print training progress against the step budget (``trainer.max_steps``) with an ETA.

    One line every ``every_n_steps`` optimizer steps (and at the last): steps done of the budget,
    seconds per step (mean since the first printed step, validation included), the time so far and
    the estimated time left, and the load average, so a slow run on a busy machine says so instead
    of being cut short. Prints to stdout on rank 0 only.

    Args:
        every_n_steps: Print period in optimizer steps (0: only the first and the last step).

    Example:
        >>> from lightning.pytorch import Trainer
        >>> trainer = Trainer(max_steps=300, callbacks=[StepBudgetProgress(every_n_steps=50)])  # doctest: +SKIP
        step 50/300 (17%)  0.62 s/step  elapsed 0:31  ETA 2:35  load 1.9
    """

    def __init__(self, every_n_steps: int = 25) -> None:
        super().__init__()
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._start: float | None = None
        self._first_step = 0
        self.lines: list[str] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start = None
        self._first_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step, budget = trainer.global_step, trainer.max_steps
        now = time.perf_counter()
        if self._start is None:
            # The clock starts after the first step: it holds one-off costs (allocation, kernel caches).
            self._start, self._first_step = now, step
            self._print(trainer, f"step {step}/{budget if budget > 0 else '?'} (clock started)")
            return
        last = budget > 0 and step >= budget
        if not last and (self.every_n_steps == 0 or step % self.every_n_steps):
            return
        done = step - self._first_step
        per_step = (now - self._start) / max(1, done)
        line = f"step {step}"
        if budget > 0:
            left = max(0, budget - step)
            line += f"/{budget} ({100 * step / budget:.0f}%)  {per_step:.2f} s/step"
            line += f"  elapsed {_clock(now - self._start)}  ETA {_clock(left * per_step)}"
        else:
            line += f"  {per_step:.2f} s/step  elapsed {_clock(now - self._start)}"
        if hasattr(os, "getloadavg"):
            line += f"  load {os.getloadavg()[0]:.1f}"
        self._print(trainer, line)

    def _print(self, trainer: Trainer, line: str) -> None:
        self.lines.append(line)
        if trainer.is_global_zero:
            print(line, file=sys.stdout, flush=True)


def _clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a duration in seconds."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
