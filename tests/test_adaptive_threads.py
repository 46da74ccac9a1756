"""AdaptiveThreads: picks the thread count with the fastest median batch, follows load changes, restores.

The clock is replaced by one where a batch costs what a table says for the thread count in force, so the
choices are tested without depending on this machine's timing.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.demos.boring_classes import BoringModel

from inharmony.training.callbacks import AdaptiveThreads


class _CostClock:
    """Starts and ends of batches alternate; a batch lasts ``cost(threads, batch)`` seconds."""

    def __init__(self, cost):
        self.cost, self.now, self.calls, self.batch = cost, 0.0, 0, 0

    def __call__(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:  # the end of a batch
            self.now += self.cost(torch.get_num_threads(), self.batch)
            self.batch += 1
        return self.now


class _ThreadsSeen(Callback):
    def __init__(self):
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(torch.get_num_threads())


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _fit(cost, steps=40, **options):
    options = {"candidates": [2, 1], "warmup_steps": 1, "window": 4, "probe_every_n_steps": 10, **options}
    tuner = AdaptiveThreads(**options)
    tuner._clock = _CostClock(cost)
    seen = _ThreadsSeen()
    trainer = Trainer(
        max_steps=steps, accelerator="cpu", callbacks=[tuner, seen], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )
    trainer.fit(BoringModel())
    return tuner, seen.seen


def test_busy_machine_moves_to_fewer_threads_and_restores(two_threads, capsys):
    tuner, seen = _fit(lambda threads, batch: {2: 1.0, 1: 0.2}[threads], steps=34)  # two whole probes
    first = tuner.history[0]
    assert first["threads"] == 1 and first["seconds_per_step"] == pytest.approx({2: 1.0, 1: 0.2})
    assert seen[:1] == [2] and seen[1:5] == [2] * 4 and seen[5:9] == [1] * 4  # warm-up, then 2 timed, then 1
    assert all(h["threads"] == 1 for h in tuner.history)
    # Later probes start from 1 thread; 2 threads is dropped after its first two slow batches, not a whole window.
    probe_two = [i for i in range(9, len(seen)) if seen[i] == 2]
    assert len(tuner.history) == 2 and len(probe_two) == 2
    assert seen.count(1) > 0.75 * len(seen)
    assert torch.get_num_threads() == 2  # the count before training, back
    out = capsys.readouterr().out
    assert "threads: 1 (1: 0.20 s/step, 2: 1.00 s/step; measured at step" in out and out.count("threads:") == 1


def test_idle_machine_keeps_all_threads_and_is_probed_once(two_threads):
    tuner, seen = _fit(lambda threads, batch: {2: 0.10, 1: 0.17}[threads])
    assert [h["threads"] for h in tuner.history] == [2]  # no slowdown, all threads in use: no further probe
    # 1 thread is 1.7x slower than the best median: two batches, not four
    assert seen == [2] * 5 + [1] * 2 + [2] * 33


def test_load_that_arrives_mid_run_is_followed(two_threads):
    idle, busy = {2: 0.10, 1: 0.17}, {2: 1.0, 1: 0.2}
    tuner, seen = _fit(lambda threads, batch: (idle if batch < 20 else busy)[threads], steps=50)
    assert [h["threads"] for h in tuner.history[:2]] == [2, 1]
    # the slowdown (batch 20 on) is half of the last 12 batches at batch 25: a probe, 2 threads again then 1
    assert seen[20:34] == [2] * 10 + [1] * 4 and tuner.history[1]["step"] == 34
    assert seen[34:44] == [1] * 10  # then periodic probes (fewer threads than the most are in use)


def test_a_difference_within_timing_noise_keeps_the_count_in_use(two_threads):
    tuner, _ = _fit(lambda threads, batch: {2: 0.100, 1: 0.092}[threads], steps=12)
    assert tuner.history[0]["threads"] == 2  # 8 % faster is not enough to switch


def test_a_few_slow_batches_do_not_start_a_probe(two_threads):
    # five slow batches in a row at 2 threads (a checkpoint write, a short burst elsewhere), then idle again
    tuner, seen = _fit(lambda threads, batch: {2: 0.10, 1: 0.17}[threads] * (3 if 20 <= batch < 25 else 1))
    assert len(tuner.history) == 1 and seen.count(1) == 2


def test_restores_the_count_when_training_fails(two_threads):
    class Boom(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == 7:  # inside the first probe, while 1 thread is being timed
                raise RuntimeError("boom")

    tuner = AdaptiveThreads(candidates=[2, 1], warmup_steps=1, window=4)
    tuner._clock = _CostClock(lambda threads, batch: 1.0)
    trainer = Trainer(max_steps=20, accelerator="cpu", callbacks=[tuner, Boom()], logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(BoringModel())
    assert torch.get_num_threads() == 2


def test_default_candidates_and_bad_options(two_threads):
    trainer = SimpleNamespace(global_step=0, strategy=SimpleNamespace(root_device=torch.device("cpu")))
    tuner = AdaptiveThreads()
    tuner.on_train_start(trainer, None)
    assert tuner._counts == (2, 1) and tuner._active
    torch.set_num_threads(1)
    tuner.on_train_start(trainer, None)
    assert not tuner._active  # one thread: nothing to choose from
    with pytest.raises(ValueError, match="thread counts >= 1"):
        AdaptiveThreads(candidates=[2, 0])
    with pytest.raises(ValueError, match="window"):
        AdaptiveThreads(window=0)
