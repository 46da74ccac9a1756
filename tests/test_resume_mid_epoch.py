"""Mid-epoch resume (issue #12): a run interrupted in the middle of an epoch and resumed from its checkpoint sees
exactly the samples (and augmentations) of the uninterrupted run, and ends with the same weights.

Only Lightning's own ModelCheckpoint is used (inharmony's checkpoint callbacks are tested elsewhere).
"""

from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from inharmony.data import IHarmony4DataModule
from inharmony.data.sampling import ResumableDataLoader, ResumableSampler, SeededItems


class Recorder(L.LightningModule):
    """A 1×1 conv trained with SGD that records every training batch: its paths and an image checksum."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Conv2d(3, 1, 1)
        self.seen: list[tuple[tuple[str, ...], float]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append((tuple(batch["path"]), round(float(batch["image"].double().sum()), 3)))
        return F.binary_cross_entropy_with_logits(self.layer(batch["image"]), batch["mask"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["seen"] = list(self.seen)

    def on_load_checkpoint(self, checkpoint):
        self.seen = [(tuple(p), c) for p, c in checkpoint["seen"]]


class Crash(Callback):
    """Simulates an interruption (kill, preemption) after ``step`` optimizer steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= self.step:
            raise RuntimeError("simulated interruption")


def _trainer(tmp_path, callbacks=()):
    warnings.filterwarnings("ignore", message=".*(callbacks used to create the checkpoint|no `validation_step`).*")
    return L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        callbacks=list(callbacks),
        default_root_dir=tmp_path,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )


def _run(dm_factory, tmp_path, interrupt_at: int | None):
    """Fit 2 epochs; with ``interrupt_at``, crash one step after a checkpoint at that step, then resume."""
    torch.manual_seed(0)
    model = Recorder()
    if interrupt_at is None:
        _trainer(tmp_path).fit(model, datamodule=dm_factory())
        return model
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=interrupt_at, save_last=True, save_top_k=-1)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        _trainer(tmp_path, [ckpt, Crash(interrupt_at + 1)]).fit(model, datamodule=dm_factory())
    assert len(model.seen) == interrupt_at + 1  # the crashed step's batch is lost with the process
    torch.manual_seed(123)  # the resumed process starts from another RNG state
    resumed = Recorder()
    _trainer(tmp_path / "b").fit(resumed, datamodule=dm_factory(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    return resumed


def _folder_dm(root, **kw):
    kw = {"batch_size": 2, "image_size": 32, "validation": "none", "seed": 7, "num_workers": 0, **kw}
    return lambda: IHarmony4DataModule(str(root), **kw)


def _steps(factory) -> int:
    dm = factory()
    dm.setup("fit")
    return len(dm.train_dataloader())


@pytest.fixture(scope="module")
def uninterrupted(fake_ihd, tmp_path_factory):
    """Two epochs without interruption, loaded in the training process (num_workers=0)."""
    factory = _folder_dm(fake_ihd, num_workers=0)
    return _steps(factory), _run(factory, tmp_path_factory.mktemp("full"), None)


# The resumed runs load with 0 or 2 workers and are compared with the 0-worker run: equal batches also show
# that the order and the augmentation do not depend on the number of workers.
@pytest.mark.parametrize(("where", "num_workers"), [("first", 0), ("second", 2)])
def test_folder_source_resumes_mid_epoch(fake_ihd, tmp_path, uninterrupted, where, num_workers):
    steps, full = uninterrupted
    assert steps >= 5 and len(full.seen) == 2 * steps
    assert len({c for _, c in full.seen}) == len(full.seen)  # every batch differs (the test could fail)
    interrupt_at = steps // 2 if where == "first" else steps + steps // 2  # mid epoch 0 or mid epoch 1
    resumed = _run(_folder_dm(fake_ihd, num_workers=num_workers), tmp_path, interrupt_at)
    assert resumed.seen == full.seen  # same samples, same order, same augmented pixels
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_streaming_source_resumes_mid_epoch(fake_ihd, tmp_path):
    from inharmony.data.streaming import optimize_ihd

    optimize_ihd(fake_ihd, tmp_path / "chunks", val_fraction=0.0)

    def factory():
        return IHarmony4DataModule(
            streaming=str(tmp_path / "chunks"), batch_size=2, image_size=32, num_workers=0, seed=7, validation="none"
        )

    steps = _steps(factory)
    full = _run(factory, tmp_path / "a", None)
    resumed = _run(factory, tmp_path / "b", steps + steps // 2)
    assert len(full.seen) == 2 * steps
    assert resumed.seen == full.seen


# -- the pieces ---------------------------------------------------------------------------------------


def test_sampler_state_round_trip_and_epoch_end():
    data = torch.utils.data.TensorDataset(torch.arange(10))

    def loader():
        return ResumableDataLoader(SeededItems(data), batch_size=3, sampler=ResumableSampler(10, seed=5))

    whole = [b[0].tolist() for b in loader()]
    assert sorted(i for b in whole for i in b) == list(range(10)) and len(whole) == 4
    first = loader()
    it = iter(first)
    next(it), next(it)
    state = first.state_dict()
    assert (state["epoch"], state["samples"]) == (0, 6)
    second = loader()
    second.load_state_dict(state)
    assert [b[0].tolist() for b in second] == whole[2:]
    assert second.state_dict()["epoch"] == 1 and second.state_dict()["samples"] == 0  # the epoch is complete
    # Lightning calls set_epoch(resumed epoch) before the first batch: the resume position survives it
    third = loader()
    third.load_state_dict(state)
    third.sampler.set_epoch(0)
    assert [b[0].tolist() for b in third] == whole[2:]
    third.sampler.set_epoch(1)
    other = [b[0].tolist() for b in third]
    assert other != whole and sorted(i for b in other for i in b) == list(range(10))


def test_changed_data_restarts_the_epoch_with_a_warning():
    data = torch.utils.data.TensorDataset(torch.arange(12))
    loader = ResumableDataLoader(SeededItems(data), batch_size=3, sampler=ResumableSampler(12, seed=5))
    with pytest.warns(UserWarning, match="length 10 → 12"):
        loader.load_state_dict({"epoch": 1, "samples": 6, "length": 10, "seed": 5, "num_replicas": 1})
    assert sum(len(b[0]) for b in loader) == 12
