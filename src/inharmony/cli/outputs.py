"""What a command that writes a file per input may write: the rules ``predict`` and ``harmonize`` share.

Outputs never replace a file the command did not write: the files written in ``--out`` are recorded in
:data:`MANIFEST_NAME` there (name, input, size and time), so a later run may replace its own outputs for the
same input, while a user's file (or one of ours edited since) stops the run before anything is written.
Two inputs with the same name (``a/x.jpg``, ``b/x.jpg``, in one run or in two, one after the other or at
the same time) get distinct outputs: ``x_mask.png``, then ``x_1_mask.png``.

Every planned name is claimed in the manifest on disk before the first write, so a run killed part-way
(even by ``kill -9``) still owns, and a re-run of the same command replaces, its outputs. Runs into one
``--out`` at the same time plan, claim and save under a lock (:mod:`filelock`: an ``fcntl`` lock on POSIX,
``msvcrt`` on Windows) and merge their entries with what is on disk, so none drops another's records and a
name one run has claimed is not planned by another while that run is alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..errors import OutputExistsError
from .exit_codes import EXIT_PARTIAL, error, warn

__all__ = ["MANIFEST_NAME", "Manifest", "claim_outputs", "collect_inputs", "finish_writing", "plan_outputs"]

MANIFEST_NAME = ".inharmony-predict.json"
"""The record, in ``--out``, of the files ``inharmony predict`` (or ``harmonize``) wrote there, and for which input."""
LOCK_NAME = ".inharmony-predict.lock"
"""The lock file beside the manifest: held while a run plans, claims or saves."""
_LOCK_TIMEOUT_S = 120.0
_HOST = socket.gethostname()


class Manifest:
    """What ``inharmony predict`` runs wrote (or claimed) in ``folder``: ``{file name: {source, size, mtime_ns}}``.

    An entry without a size is a claim: a name planned by a run (``pid``, ``host``) before its first write.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = self._read()
        self._mine: dict[str, dict[str, Any]] = {}  # what this run recorded, merged into the file on each save

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): dict(v) for k, v in data.get("outputs", {}).items()}
        except (OSError, ValueError, AttributeError, TypeError, UnicodeDecodeError):
            return {}  # unreadable: nothing is taken for ours, so nothing is overwritten

    @contextlib.contextmanager
    def locked(self) -> Iterator[Manifest]:
        """Hold the folder's lock with the entries on disk merged with this run's own; saves on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path.parent / LOCK_NAME), timeout=_LOCK_TIMEOUT_S):
            self.entries = {**self._read(), **self._mine}
            yield self
            self._write()

    @staticmethod
    def claim_is_live(entry: dict[str, Any]) -> bool:
        """Whether a claim's run may still be writing (its process exists; another host's: assumed so)."""
        pid = entry.get("pid")
        if not isinstance(pid, int):
            return False
        if entry.get("host") != _HOST:
            return True
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # exists, owned by someone else
            return True
        return True

    def owner(self, name: str) -> str | None:
        """The input an existing output ``name`` was written for, or None when it is not ours (as it is now)."""
        entry = self.entries.get(name)
        if entry is None:
            return None
        if entry.get("size") is not None:
            try:
                stat = (self.path.parent / name).stat()
            except OSError:
                return None
            if (stat.st_size, stat.st_mtime_ns) != (entry["size"], entry.get("mtime_ns")):
                return None  # changed since we wrote it: someone's edit, not ours any more
        return str(entry.get("source"))

    def record(self, name: str, source: Path, written: bool) -> None:
        """Record ``name`` as written for ``source`` (its size and time), or as claimed by this run."""
        entry: dict[str, Any] = {"source": str(source), "size": None, "mtime_ns": None}
        if written:
            stat = (self.path.parent / name).stat()
            entry.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        else:
            entry.update(pid=os.getpid(), host=_HOST)
        self.entries[name] = entry
        self._mine[name] = entry

    def save(self) -> None:
        """Merge this run's records into the manifest on disk, under the lock; drop claims nothing holds.

        A claim whose file does not exist is dropped when it is this run's (the input was skipped) or when
        its run is gone; a live run's claim stays.
        """
        folder = self.path.parent
        with self.locked():
            self.entries = {
                name: entry
                for name, entry in self.entries.items()
                if entry.get("size") is not None
                or (folder / name).exists()
                or (name not in self._mine and self.claim_is_live(entry))
            }
            self._mine = {name: entry for name, entry in self._mine.items() if name in self.entries}

    def _write(self) -> None:
        from ..files import atomic_write

        with atomic_write(self.path, "w") as fh:
            json.dump({"format": 1, "written_by": "inharmony predict", "outputs": self.entries}, fh, indent=1)


def collect_inputs(inputs: Sequence[str], out_dir: Path, manifest: Manifest, recursive: bool) -> list[Path]:
    """Files named on the command line, plus the files of named folders, except our earlier outputs.

    A file found *by listing the output folder* that an earlier run recorded as its output is left out;
    a file named explicitly is always an input.
    """
    from ..imageio import iter_image_files

    files = []
    out_resolved = out_dir.resolve()
    for entry in inputs:
        if not Path(entry).is_dir():
            files.append(Path(entry))
            continue
        for path in iter_image_files([entry], recursive=recursive):
            ours = path.resolve().parent == out_resolved and manifest.owner(path.name) is not None
            if not ours:
                files.append(path)
    return files


def claim_outputs(
    out_dir: Path, manifest: Manifest, files: Sequence[Path], stems: Sequence[str], suffixes: Sequence[str]
) -> list[str]:
    """Create ``out_dir`` and claim every output in the manifest on disk before anything is written.

    Planning is done again under the folder's lock (another run may have claimed names since ``stems``
    were planned), so the stems returned are the ones to write; they equal ``stems`` unless a run into the
    same folder took one meanwhile. A run killed part-way still owns (and a re-run replaces) its outputs.

    Raises:
        OutputExistsError: an output would now replace a file no run of ours wrote.
        OSError: the folder or the manifest cannot be written.
    """
    with manifest.locked():
        planned, clashes = plan_outputs(files, out_dir, manifest, suffixes)
        if clashes:
            raise OutputExistsError(f"nothing written: the outputs would overwrite a file not ours: {clashes[0]}")
        for path, stem in zip(files, planned, strict=True):
            for suffix in suffixes:
                manifest.record(f"{stem}{suffix}", path.resolve(), written=False)
    del stems  # superseded by the plan made under the lock
    return planned


def finish_writing(
    manifest: Manifest, out: str, out_dir: Path, written: int, total: int, failure: OSError | None, noun: str
) -> int | None:
    """Save the manifest, say how many inputs were written, and give the exit code if writing failed
    (2 when nothing was written, 1 when it stopped part-way); ``None`` when writing did not fail."""
    with contextlib.suppress(OSError):  # on a full disk the planned names recorded before writing stay ours
        manifest.save()
    print(f"wrote {written} of {total} {noun}s to {out_dir}", file=sys.stderr)
    if failure is None:
        return None
    message = f"cannot write to --out {out}: {failure.strerror or failure}"
    if not written:
        return error(message)
    warn(f"{message}; stopped after {written} {noun}(s)")
    return EXIT_PARTIAL


def plan_outputs(
    files: Sequence[Path], out_dir: Path, manifest: Manifest, suffixes: Sequence[str]
) -> tuple[list[str], list[str]]:
    """One output stem per input, and the outputs that would replace a file we did not write.

    The stem is the input's (``x``), else ``x_1``, ``x_2`` ... when another input of this run took it or an
    earlier run wrote it for another input; a suffixed name also steps over files that are not ours. An
    unsuffixed name held by a file we did not write is a clash (the run is refused).
    """
    inputs = {path.resolve() for path in files}
    used: set[str] = set()
    stems, clashes = [], []
    for path in files:
        source = str(path.resolve())
        n = 0
        while True:
            stem = path.stem if n == 0 else f"{path.stem}_{n}"
            names = [f"{stem}{suffix}" for suffix in suffixes]
            targets = [out_dir / name for name in names]
            if stem not in used and not any(t.resolve() in inputs for t in targets):
                owners = [_holder(manifest, name, target, source) for name, target in zip(names, targets, strict=True)]
                if all(owner == source for owner in owners):
                    break  # free, or ours for this very input: a re-run replaces its own outputs
                if n == 0 and None in owners:
                    clashes += [str(t) for t, owner in zip(targets, owners, strict=True) if owner is None]
                    break
            elif n == 0 and any(t.resolve() in inputs for t in targets):
                clashes += [f"{t} (an input)" for t in targets if t.resolve() in inputs]
                break
            n += 1
        used.add(stem)
        stems.append(stem)
    return stems, clashes


def _holder(manifest: Manifest, name: str, target: Path, source: str) -> str | None:
    """Whom output ``name`` belongs to for planning: ``source`` (free, or ours for this input), another
    input (ours for it, or claimed by a live run into the same folder), or None (a file no run of ours wrote)."""
    if target.exists():
        return manifest.owner(name)
    entry = manifest.entries.get(name)
    claimed = entry is not None and entry.get("size") is None and str(entry.get("source")) != source
    return str(entry["source"]) if claimed and manifest.claim_is_live(entry) else source
