"""Nothing a fit made is lost: last.ckpt is the last state, writes are atomic, resume skips broken files.

Every test here reproduces a report of issue #12 (each failed on the code before the fix):

* ``last.ckpt`` was rewritten only when ``val/iou`` improved, never at the end of fit nor on a signal;
* a checkpoint moved across filesystems, or a full disk, left a truncated file under its final name, and
  the disk-full message claimed an intact checkpoint when there was none;
* ``--ckpt_path last`` picked the newest ``last.ckpt`` even when it was broken.

Callbacks defined here are given to ``inharmony fit`` by class path (``--trainer.callbacks+=...``), the
way a user adds one; the test folder is on ``sys.path`` under pytest.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import zipfile
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from inharmony.cli import main
from inharmony.files import TEMP_PREFIX
from inharmony.training.checkpointing import (
    AtomicCheckpointIO,
    LastCheckpoint,
    checkpoint_problem,
    find_resume_checkpoint,
)

# A tiny network (kilobyte checkpoints, fast steps): what is tested here is the checkpointing, not a model.
TINY = [
    "--model.model", json.dumps({"class_path": "test_checkpoint_safety.TinyNet"}),
    "--model.loss", "inharmony.losses.MaskLoss",
    "--data.image_size", "32",
    "--data.batch_size", "4",
    "--data.num_workers", "0",
    "--trainer.accelerator", "cpu",
    "--trainer.devices", "1",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.num_sanity_val_steps", "0",
    "--trainer.limit_val_batches", "1",
    "--trainer.logger", "false",
    "--samples.every_n_steps", "0",
    "--seed_everything", "0",
]  # fmt: skip


def _fit(root: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["fit", *TINY, "--data.root", str(root), "--trainer.default_root_dir", str(run_dir), *extra]


def _callback(class_path: str, **init_args) -> list[str]:
    return ["--trainer.callbacks+", json.dumps({"class_path": class_path, "init_args": init_args})]


def _step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def _assert_all_intact(folder: Path) -> list[Path]:
    found = sorted(folder.rglob("*.ckpt"))
    for path in found:
        payload = torch.load(path, map_location="cpu", weights_only=True)  # a truncated file raises here
        assert "state_dict" in payload and "global_step" in payload, path
    assert not [p for p in folder.rglob(f"{TEMP_PREFIX}*")], "a temporary file was left behind"
    return found


@pytest.fixture(autouse=True)
def _restore_signal_handlers():
    # Lightning sets SIGINT to "ignore" after a KeyboardInterrupt; keep the rest of the session unaffected.
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


class TinyNet(torch.nn.Module):
    """Two convolutions; returns ``{"mask": probabilities}`` like every inharmony network."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1)
        )

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mask": torch.sigmoid(self.body(image))}


class WorseningScore(Callback):
    """Logs ``val/score``: best at the first validation, worse at every later one."""

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.log("val/score", 0.5 - 0.1 * trainer.current_epoch)


class SignalAt(Callback):
    """Sends ``signum`` to this process at the end of training step ``step``."""

    def __init__(self, step: int = 3, signum: int = int(signal.SIGTERM)) -> None:
        self.step = step
        self.signum = signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


# ------------------------------------------------------------------------------- last.ckpt is the last state
def test_last_is_the_final_state_when_the_monitored_score_stops_improving(fake_ihd, tmp_path):
    run = tmp_path / "run"
    args = _fit(fake_ihd, run, "--trainer.max_epochs", "2", "--checkpoint.monitor", "val/score")
    assert main([*args, *_callback("test_checkpoint_safety.WorseningScore")]) == 0
    last = run / "checkpoints" / "last.ckpt"
    best = sorted((run / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and _step(best[0]) < _step(last)  # the best is the first epoch's
    payload = torch.load(last, map_location="cpu", weights_only=True)
    assert payload["epoch"] == 1
    steps_per_epoch = _step(best[0])
    assert payload["global_step"] == 2 * steps_per_epoch  # the final step, not the best one's


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_the_step_reached_then_stops(fake_ihd, tmp_path, capsys, signum, code):
    run = tmp_path / "run"
    args = _fit(fake_ihd, run, "--trainer.max_epochs", "2")
    got = main([*args, *_callback("test_checkpoint_safety.SignalAt", step=4, signum=int(signum))])
    err = capsys.readouterr().err
    assert got == code, err
    assert _step(run / "checkpoints" / "last.ckpt") == 4
    assert "Traceback" not in err
    assert "--ckpt_path last" in err and "step 4" in err
    # Resuming goes on from step 6 to the end.
    assert main([*args, "--ckpt_path", "last"]) == 0
    resumed = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] > 4


def test_last_checkpoint_callback_in_a_plain_trainer(tmp_path):
    class Tiny(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = DataLoader(TensorDataset(torch.randn(10, 2)), batch_size=2)  # 5 steps per epoch
    last = LastCheckpoint(dirpath=str(tmp_path / "ck"), every_n_train_steps=2)
    seen: list[int] = []

    class Spy(Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            path = tmp_path / "ck" / "last.ckpt"
            seen.append(_step(path) if path.exists() else -1)

    trainer = Trainer(
        max_epochs=2, callbacks=[Spy(), last], plugins=[AtomicCheckpointIO()], logger=False,
        enable_checkpointing=True, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(Tiny(), data)
    # Spy runs before the checkpoint callback: it sees the file of the step before.
    assert seen[:5] == [-1, -1, 2, 2, 4]
    assert _step(tmp_path / "ck" / "last.ckpt") == 10 and last.last_model_path.endswith("last.ckpt")


def test_every_n_minutes_saves_on_time(tmp_path, monkeypatch):
    import inharmony.training.checkpointing as checkpointing

    clock = iter(range(40, 10_000, 40))  # 40 s per call to monotonic()
    monkeypatch.setattr(checkpointing.time, "monotonic", lambda: float(next(clock)))
    callback = LastCheckpoint(dirpath=str(tmp_path), every_n_minutes=1.0)
    saved: list[str] = []
    monkeypatch.setattr(callback, "_save", lambda trainer, where: saved.append(where))

    class FakeTrainer:
        global_step = 1
        world_size = 1
        received_sigterm = False
        sanity_checking = False
        fast_dev_run = False

    callback._last_time = 0.0
    for _ in range(4):
        callback.on_train_batch_end(FakeTrainer(), None, None, None, 0)
    assert saved == ["time", "time"]  # 40 s: no; 80 s: yes (reset); 120 s: no; 160 s: yes


def test_last_checkpoint_arguments_are_checked():
    with pytest.raises(ValueError, match="every_n_train_steps"):
        LastCheckpoint(every_n_train_steps=-1)
    with pytest.raises(ValueError, match="every_n_minutes"):
        LastCheckpoint(every_n_minutes=-2)


# --------------------------------------------------------------------------------------- atomic writes
def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, path)
    real_save = torch.save

    def half_then_enospc(obj, f, *args, **kwargs):
        import io as _io

        buffer = _io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_enospc)
    with pytest.raises(OSError) as info:
        io.save_checkpoint({"state_dict": {"w": torch.zeros(1000)}, "global_step": 2}, path)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert _step(path) == 1 and torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_torch_wrapped_write_error_is_reported_as_the_os_error(tmp_path, monkeypatch):
    # torch.save turns a failing write into "RuntimeError: [enforce fail ...]": the cause is what matters.
    class Full:
        def __init__(self, fh) -> None:
            self.fh, self.n = fh, 0

        def write(self, data):
            self.n += len(data)
            if self.n > 2000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    import inharmony.training.checkpointing as checkpointing

    real = checkpointing.atomic_write

    def full_disk(path, mode="wb"):
        import contextlib

        @contextlib.contextmanager
        def opened():
            with real(path, mode) as fh:
                yield Full(fh)

        return opened()

    monkeypatch.setattr(checkpointing, "atomic_write", full_disk)
    with pytest.raises(OSError) as info:
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(10_000)}}, tmp_path / "a.ckpt")
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_temp_folder_on_another_filesystem_and_disk_full_during_the_move(fake_ihd, tmp_path, monkeypatch):
    # The report: the temp folder was on another filesystem, so the "atomic" save ended with a copy into the
    # run folder, which the full disk cut short under the checkpoint's final name. EXDEV is what rename
    # answers across filesystems; the copy then fails halfway with ENOSPC.
    real_sendfile = os.sendfile

    def rename_across_filesystems(src, dst, *args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))

    def sendfile_until_full(out_fd, in_fd, offset, count):
        size = os.fstat(in_fd).st_size
        if offset >= size // 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_sendfile(out_fd, in_fd, offset, min(count, size // 2 - offset))

    monkeypatch.setattr(os, "rename", rename_across_filesystems)
    monkeypatch.setattr(os, "sendfile", sendfile_until_full)
    run = tmp_path / "run"
    main(_fit(fake_ihd, run, "--trainer.max_epochs", "1"))
    monkeypatch.undo()
    assert _assert_all_intact(run)  # checkpoints were written, and none is truncated


def _fail_checkpoint_write(monkeypatch, on_call: int) -> None:
    """Make the ``on_call``-th checkpoint write die halfway with ENOSPC (earlier ones succeed)."""
    import io as _io

    real_save = torch.save
    calls = {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] != on_call:
            return real_save(obj, f, *args, **kwargs)
        buffer = _io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save)


def test_disk_full_names_the_last_intact_checkpoint(fake_ihd, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    _fail_checkpoint_write(monkeypatch, on_call=3)  # epoch 0 writes best and last; the next write fails
    code = main(_fit(fake_ihd, run, "--trainer.max_epochs", "2"))
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    intact = _assert_all_intact(run)
    last = run / "checkpoints" / "last.ckpt"
    assert last in intact
    message = err.strip().splitlines()[-2:]
    assert "no space left" in " ".join(message).lower()
    assert str(last) in " ".join(message) and f"step {_step(last)}" in " ".join(message)


def test_disk_full_before_any_checkpoint_never_claims_one(fake_ihd, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    _fail_checkpoint_write(monkeypatch, on_call=1)
    code = main(_fit(fake_ihd, run, "--trainer.max_epochs", "1"))
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert not list(run.rglob("*.ckpt"))
    assert "no intact checkpoint" in err and "intact)" not in err


# -------------------------------------------------------------------------------------- resume is safe
@pytest.fixture(scope="module")
def one_epoch(fake_ihd, tmp_path_factory):
    run = tmp_path_factory.mktemp("one_epoch")
    assert main(_fit(fake_ihd, run, "--trainer.max_epochs", "1")) == 0
    return run, run / "checkpoints" / "last.ckpt"


def test_checkpoint_problem_names_what_is_wrong(one_epoch, tmp_path):
    _, last = one_epoch
    assert checkpoint_problem(last) is None
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    assert "truncated" in checkpoint_problem(truncated)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    assert "empty" in checkpoint_problem(empty)
    weights_only = tmp_path / "weights.ckpt"
    payload = torch.load(last, map_location="cpu", weights_only=True)
    torch.save({"state_dict": payload["state_dict"]}, weights_only)
    assert "training state" in checkpoint_problem(weights_only)
    with zipfile.ZipFile(tmp_path / "other.ckpt", "w") as zf:
        zf.writestr("hello.txt", "not a checkpoint")
    assert checkpoint_problem(tmp_path / "other.ckpt")


def test_resume_skips_broken_checkpoints_and_says_which(fake_ihd, one_epoch, tmp_path, capsys):
    run, last = one_epoch
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    # A later run left a truncated last.ckpt and an empty one: both newer than the intact one.
    for name, data in (("a", last.read_bytes()[:1000]), ("b", b"")):
        broken = copy / f"later_{name}" / "checkpoints" / "last.ckpt"
        broken.parent.mkdir(parents=True)
        broken.write_bytes(data)
    found, skipped = find_resume_checkpoint(copy)
    assert found == copy / "checkpoints" / "last.ckpt"
    assert {p.parent.parent.name for p, _ in skipped} == {"later_a", "later_b"}
    capsys.readouterr()
    assert main([*_fit(fake_ihd, copy, "--trainer.max_epochs", "2"), "--ckpt_path", "last"]) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "skipping" in text and "later_a" in text and "later_b" in text
    assert f"resuming from {copy / 'checkpoints' / 'last.ckpt'}" in text


def test_resume_with_no_intact_checkpoint_is_a_clear_error(fake_ihd, one_epoch, tmp_path, capsys):
    _, last = one_epoch
    broken = tmp_path / "run" / "checkpoints" / "last.ckpt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(last.read_bytes()[:-100])
    code = main([*_fit(fake_ihd, tmp_path / "run"), "--ckpt_path", "last"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "no intact checkpoint" in err and str(broken) in err
