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
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import OutputExistsError

__all__ = [
    "TEMP_PREFIX",
    "atomic_folder",
    "atomic_write",
    "atomic_write_bytes",
    "check_output_folder",
    "fsync_directory",
    "is_disk_full",
]

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


_FULL = ("no space left on device", "disk quota exceeded", "os error 28", "os error 122", "storagefull")


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or an exception in its chain) says the disk or the quota is full.

    Also recognises writers that report the ``OSError`` only in their message, such as safetensors'
    ``SafetensorError`` ("... Os { code: 28, kind: StorageFull ... }") and torch's ``RuntimeError``.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(marker in str(error).lower() for marker in _FULL):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def check_output_folder(out: str | os.PathLike, force: bool, option: str = "--out") -> Path:
    """The folder ``out`` to write files into, refused if it is a file, or holds files and ``force`` is off.

    Raises:
        OutputExistsError: naming the folder (nothing was written).
    """
    target = Path(out)
    if not str(out).strip():
        raise OutputExistsError(f"{option} is empty; give the folder to write")
    if target.exists() and not target.is_dir():
        raise OutputExistsError(f"{option} {target} is a file; give a folder to write the files into")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise OutputExistsError(
            f"{option} {target} is not empty; its files would be replaced: choose another {option} or pass --force"
        )
    return target


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Write a folder's files into a temporary sibling; on a clean exit, move them into ``path``.

    ``path`` never holds a partial file: on an exception the temporary folder is removed and ``path`` (with
    any files of its own) is untouched. An existing ``path`` keeps its other files; each file written
    replaces the one of its name atomically.

    Yields:
        The temporary folder to write into.

    Raises:
        OSError: ``ENOSPC`` naming ``path`` and "no space left" when the disk or quota filled up, whatever
            the writer raised (an ``OSError``, safetensors' ``SafetensorError``, ...).

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "hub"
        >>> with atomic_folder(target) as tmp:
        ...     _ = (tmp / "config.json").write_text("{}")
        >>> sorted(p.name for p in target.iterdir())
        ['config.json']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}."))
    try:
        yield tmp
        for child in tmp.iterdir():
            with open(child, "rb") as fh:
                os.fsync(fh.fileno())
        if not path.exists():
            os.replace(tmp, path)
        else:
            for child in sorted(tmp.iterdir()):
                os.replace(child, path / child.name)
    except BaseException as err:
        if is_disk_full(err):
            raise OSError(
                errno.ENOSPC,
                f"no space left on the device while writing {path}; nothing was written there. Free space "
                "(or write elsewhere) and run it again",
                str(path),
            ) from err
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fsync_directory(path.parent)
