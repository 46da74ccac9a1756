"""Atomic file writes: a file under its final name is always complete.

Every output inharmony writes (masks, overlays, checkpoints, exported graphs, result tables) goes
through :func:`atomic_write`: the bytes go to a temporary file *in the destination folder* (so the
final rename never crosses a filesystem), are flushed and fsynced, and only then is the temporary
renamed over the final name. A kill, a full disk or an exception at any point leaves either the old
file or the new one under that name, never a truncated one; the temporary is removed on failure.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write(folder / "a.txt") as fh:
    ...     _ = fh.write(b"done")
    >>> (folder / "a.txt").read_bytes()
    b'done'
    >>> atomic_write_bytes(folder / "b.bin", b"xyz")
    >>> sorted(p.name for p in folder.iterdir())
    ['a.txt', 'b.bin']
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["TEMP_PREFIX", "atomic_write", "atomic_write_bytes", "fsync_directory"]

TEMP_PREFIX = ".inharmony-partial-"
"""Name prefix of the temporary files :func:`atomic_write` leaves only if the process is killed."""


def fsync_directory(folder: str | os.PathLike) -> None:
    """Flush a folder's entries to disk, so a rename in it survives a power loss (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (and Windows) cannot fsync a directory
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` atomically.

    Args:
        path: The final file name. Its folder must exist.
        mode: ``"wb"`` (default) or ``"w"`` (text, UTF-8).

    Yields:
        The open temporary file. On an exception the temporary is deleted and ``path`` is untouched.

    Raises:
        OSError: the folder is missing or not writable, or the disk is full (``path`` is untouched).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as fh:
        fh.write(data)
