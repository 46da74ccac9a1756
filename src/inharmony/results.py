"""The per-subset results table of ``inharmony test``: console (rich), ``metrics.json``, ``metrics.md``.

Results are what :meth:`inharmony.metrics.PerSubsetMetrics.compute` returns: ``{subset: {"ap", "f1",
"iou"}}`` as fractions, subsets in the paper's order with ``"All"`` last. The table shows them in the
papers' units: AP %, F1 as a fraction, IoU %.

Example:
    >>> scores = {"ap": 0.8, "f1": 0.7, "iou": 0.6}
    >>> rows = results_rows({"HCOCO": scores, "All": scores})
    >>> rows[0]
    ['HCOCO', '80.00', '0.7000', '60.00']
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

__all__ = ["COLUMNS", "print_results_table", "results_markdown", "results_rows", "write_results"]

COLUMNS = ("Subset", "AP (%)", "F1", "IoU (%)")


def results_rows(results: Mapping[str, Mapping[str, float]]) -> list[list[str]]:
    """One row per subset (in the given order): name, AP %, F1, IoU %, formatted as in the papers."""
    rows = []
    for subset, scores in results.items():
        rows.append(
            [
                subset,
                f"{100 * float(scores['ap']):.2f}",
                f"{float(scores['f1']):.4f}",
                f"{100 * float(scores['iou']):.2f}",
            ]
        )
    return rows


def results_markdown(results: Mapping[str, Mapping[str, float]], title: str | None = None) -> str:
    """The table as GitHub markdown."""
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in results_rows(results)]
    return "\n".join(lines) + "\n"


def print_results_table(results: Mapping[str, Mapping[str, float]], title: str | None = None) -> None:
    """Print the table to the console with rich."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if i == 0 else "right")
    rows = results_rows(results)
    for i, row in enumerate(rows):
        table.add_row(*row, end_section=(i == len(rows) - 2))  # a rule above "All"
    Console().print(table)


def write_results(
    results: Mapping[str, Mapping[str, float]], out: str | Path, title: str | None = None
) -> list[Path]:
    """Write ``metrics.json`` (fractions, full precision) and ``metrics.md`` into ``out``.

    Returns:
        The two paths written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "metrics.json", out / "metrics.md"
    payload = {subset: {k: float(v) for k, v in scores.items()} for subset, scores in results.items()}
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md_path.write_text(results_markdown(results, title))
    return [json_path, md_path]
