"""The per-subset results table of ``inharmony test``: console (rich), ``metrics.json``, ``metrics.md``.

Results are what :meth:`inharmony.metrics.PerSubsetMetrics.compute` returns: ``{subset: {"ap", "f1",
"iou", ...}}`` as fractions, subsets in the paper's order with ``"All"`` last. The table shows them
in the papers' units (AP %, F1 as a fraction, IoU %), formatted by
:func:`inharmony.metrics.format_results_table`.

Example:
    >>> scores = {"ap": 0.8, "f1": 0.7, "iou": 0.6, "images": 10}
    >>> paths = write_results({"HCOCO": scores, "All": scores}, "/tmp/run")  # doctest: +SKIP
    >>> [p.name for p in paths]  # doctest: +SKIP
    ['metrics.json', 'metrics.md']
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from .metrics import format_results_table, results_to_markdown

__all__ = ["print_results_table", "results_markdown", "write_results"]


def results_markdown(results: Mapping[str, Mapping[str, float]], title: str | None = None) -> str:
    """The table as GitHub markdown, under an optional ``### title``."""
    head = f"### {title}\n\n" if title else ""
    return head + results_to_markdown(results) + "\n"


def print_results_table(results: Mapping[str, Mapping[str, float]], title: str | None = None) -> None:
    """Print the table to the console with rich (a rule above the ``All`` row)."""
    from rich.console import Console
    from rich.table import Table

    header, *rows = format_results_table(results)
    table = Table(title=title)
    for i, column in enumerate(header):
        table.add_column(column, justify="left" if i == 0 else "right")
    for i, row in enumerate(rows):
        table.add_row(*row, end_section=(i == len(rows) - 2))
    Console().print(table)


def write_results(
    results: Mapping[str, Mapping[str, float]], out: str | Path, title: str | None = None
) -> list[Path]:
    """Write ``metrics.json`` (fractions, full precision; NaN as null) and ``metrics.md`` into ``out``.

    Returns:
        The two paths written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "metrics.json", out / "metrics.md"
    payload = {
        subset: {k: (None if math.isnan(float(v)) else float(v)) for k, v in scores.items()}
        for subset, scores in results.items()
    }
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md_path.write_text(results_markdown(results, title))
    return [json_path, md_path]
