"""Deprecated alias of :mod:`inharmony.metrics.report` (the per-subset results table).

``print_results_table``, ``results_markdown`` and ``write_results`` now live in
:mod:`inharmony.metrics.report`, next to the one table renderer; import them from there.

Example:
    >>> from inharmony.metrics.report import write_results  # instead of inharmony.results
"""

from __future__ import annotations

import warnings

from .metrics.report import print_results_table, results_markdown, write_results

__all__ = ["print_results_table", "results_markdown", "write_results"]

warnings.warn(
    "inharmony.results is deprecated; import from inharmony.metrics.report instead", DeprecationWarning, stacklevel=2
)
