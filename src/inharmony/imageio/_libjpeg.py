"""libjpeg's checks: a JPEG that OpenCV would decode to grey or garbage is refused instead.

OpenCV decodes a truncated JPEG without error (grey bottom rows) and never surfaces libjpeg's warnings
about damaged data; :func:`jpeg_complete` finds the first, :func:`imdecode` the second (it captures what
libjpeg writes to C ``stderr`` during the decode).
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable

import cv2
import numpy as np

from ..errors import DataError

__all__ = ["decode_checked", "imdecode", "is_jpeg", "jpeg_complete"]


def jpeg_complete(buf: bytes | memoryview) -> bool:
    """Whether the JPEG's last scan is followed by an end-of-image marker (truncated files lack it)."""
    if b"\xff\xd9" in bytes(buf[-1024:]):
        return True
    # Data appended after the image (camera trailers) can push the marker out of the tail.
    data = bytes(buf)
    last_scan = data.rfind(b"\xff\xda")
    return last_scan >= 0 and data.find(b"\xff\xd9", last_scan) >= 0


def is_jpeg(buf: bytes | memoryview) -> bool:
    """Whether the bytes start with a JPEG's start-of-image marker."""
    return bytes(buf[:3]) == b"\xff\xd8\xff"


# libjpeg's warnings (JWRN_*) that mean the entropy-coded data is damaged: the decoder goes on and fills
# the picture with garbage or grey. Format and version warnings (unknown JFIF revision, Adobe transform) are
# not in this list.
_JPEG_CORRUPTION = re.compile(
    rb"(Corrupt JPEG data[^\n]*|Premature end of JPEG file|Inconsistent progression sequence[^\n]*"
    rb"|Invalid SOS parameters for sequential JPEG)\n?"
)


class _StderrCapture:
    """Collects what C code writes to file descriptor 2 while it runs (one capture at a time per process).

    libjpeg reports damaged data as *warnings*, which OpenCV does not surface: they reach only C
    ``stderr`` (libjpeg's default message handler). The capture points descriptor 2 at a private
    temporary file for the decode, then restores it; the caller writes back what it does not turn into
    an error, so no output is lost (only delayed). Costs a few system calls, not a second decode. A lock
    serialises captures, because descriptor 2 belongs to the whole process. Where descriptor 2 cannot be redirected (no
    stderr, or a C runtime with its own, as on Windows) nothing is captured and corruption goes unseen.
    """

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):  # a forked DataLoader worker gets its own lock and file
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._file: io.BufferedRandom | None = None

    def run(self, fn: Callable[[], np.ndarray | None]) -> tuple[np.ndarray | None, bytes]:
        """``(fn(), bytes written to descriptor 2 during the call)``."""
        with self._lock:
            try:
                if self._file is None:
                    self._file = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for the process's life)
                sink = self._file.fileno()
                os.ftruncate(sink, 0)
                os.lseek(sink, 0, os.SEEK_SET)  # fd 2 will share this offset
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError, AttributeError):
                return fn(), b""
            try:
                os.dup2(sink, 2)
                try:
                    result = fn()
                finally:
                    os.dup2(saved, 2)
            finally:
                os.close(saved)
            os.lseek(sink, 0, os.SEEK_SET)
            captured = b""
            while chunk := os.read(sink, 1 << 16):
                captured += chunk
        return result, captured


_STDERR = _StderrCapture()


def imdecode(buf: bytes, flags: int, name: str, jpeg: bool) -> np.ndarray | None:
    """``cv2.imdecode``; for a JPEG (``jpeg``), refuses data that libjpeg reports as corrupt.

    Raises:
        DataError: libjpeg reported the data as corrupt.
    """
    array = np.frombuffer(buf, np.uint8)
    if not jpeg:
        return cv2.imdecode(array, flags)
    image, messages = _STDERR.run(lambda: cv2.imdecode(array, flags))
    found = _JPEG_CORRUPTION.search(messages)
    others = _JPEG_CORRUPTION.sub(b"", messages).strip()
    if others:  # anything else written meanwhile (another thread's output, other warnings): shown as it was
        os.write(2, others + b"\n")
    if found:
        raise DataError(
            f"{name}: corrupt JPEG (libjpeg: {found.group(1).decode(errors='replace')}): its pixels would decode "
            "as garbage; re-download (or re-export) the file"
        )
    return image


def decode_checked(buf: bytes, flags: int, name: str = "<bytes>") -> np.ndarray | None:
    """``cv2.imdecode(buf, flags)``, refusing a JPEG that libjpeg reports as corrupt (for masks).

    Raises:
        DataError: for a corrupt JPEG.

    Example:
        >>> decode_checked(cv2.imencode(".png", np.zeros((2, 3), np.uint8))[1].tobytes(), cv2.IMREAD_UNCHANGED).shape
        (2, 3)
    """
    return imdecode(buf, flags, name, is_jpeg(buf))
