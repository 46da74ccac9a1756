"""Exit codes of the ``inharmony`` command and its one error path (see :mod:`inharmony.cli`)."""

from __future__ import annotations

import sys

__all__ = ["EXIT_OK", "EXIT_PARTIAL", "EXIT_SIGINT", "EXIT_SIGTERM", "EXIT_SKIPPED", "EXIT_USAGE", "error", "warn"]

EXIT_OK = 0
"""Everything was done."""
EXIT_PARTIAL = 1
"""The command ran to the end but its result is partial or flagged: some inputs were skipped, bad
files were found, nothing matched, or a check failed (stderr or the report says which)."""
EXIT_USAGE = 2
"""Nothing (useful) was done: a usage error, bad input data, unusable weights or checkpoint, or an
output that cannot be written. One line ``inharmony: error: <message>`` on stderr says why."""
EXIT_SKIPPED = EXIT_PARTIAL  # the name ``inharmony predict`` used
EXIT_SIGINT = 130
"""``fit`` was stopped by Ctrl+C (SIGINT) after saving ``last.ckpt`` (128 + 2, the shells' convention)."""
EXIT_SIGTERM = 143
"""``fit`` (or another training command) was stopped by SIGTERM, ``fit`` after saving ``last.ckpt`` (128 + 15)."""


def error(message: str, hint: str | None = None) -> int:
    """Print ``inharmony: error: <message>`` (and an optional hint line) to stderr; return :data:`EXIT_USAGE`."""
    print(f"inharmony: error: {message}", file=sys.stderr)
    if hint:
        print(hint, file=sys.stderr)
    return EXIT_USAGE


def warn(message: str) -> None:
    """Print ``inharmony: warning: <message>`` to stderr."""
    print(f"inharmony: warning: {message}", file=sys.stderr)
