"""inharmony.files: a file under its final name is always complete."""

from __future__ import annotations

import errno
import os

import pytest

from inharmony.files import TEMP_PREFIX, atomic_write, atomic_write_bytes


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "mask.png"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["mask.png"]


def test_text_mode_writes_utf8(tmp_path):
    with atomic_write(tmp_path / "t.md", "w") as fh:
        fh.write("IoU 52.70 % — ok")
    assert (tmp_path / "t.md").read_text(encoding="utf-8") == "IoU 52.70 % — ok"


def test_a_failure_halfway_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"complete checkpoint")
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write(b"half of a new one")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"complete checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_full_disk_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as err:
        atomic_write_bytes(tmp_path / "best.ckpt", b"x" * 1000)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert err.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_lives_in_the_destination_folder(tmp_path):
    with atomic_write(tmp_path / "a.bin") as fh:
        fh.write(b"x")
        during = [p.name for p in tmp_path.iterdir()]
    # the rename never crosses a filesystem, and the final name does not exist before it
    assert len(during) == 1 and during[0].startswith(TEMP_PREFIX + "a.bin.")


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_write(tmp_path / "a", "ab"):
        pass
