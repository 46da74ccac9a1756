"""Result tables in the papers' units: one normaliser and one renderer for every output.

The console table of ``inharmony test``, ``metrics.md``, ``metrics.json``, :func:`results_to_markdown`
and the model card (:mod:`inharmony.models.model_card`) all go through :func:`normalise_results` and
:func:`format_results_table`, driven by :data:`inharmony.constants.METRIC_SPECS` (name, title,
scale, digits), so they show the same numbers with the same digits. Imports the standard library
only (``rich`` when printing), never torch or torchmetrics.

**Layouts** accepted by :func:`normalise_results`:

* flat ``{"ap": .., "f1": .., "iou": ..}`` (the ``"All"`` row);
* ``{subset: {"ap": .., "f1": .., "iou": .., "images": .., "empty_target": ..}}``
  (:meth:`inharmony.metrics.PerSubsetMetrics.compute`, ``metrics.json``);
* Lightning's logged keys ``{"test/ap": .., "test/HCOCO/ap": ..}`` (prefix ``test``, ``val`` or
  ``validate``), or a list of such dicts (what ``trainer.test`` returns).

**Harmonization metrics** (:data:`HARMONIZATION_SPECS`: ``mse``, ``fmse``, ``psnr``, from
:mod:`inharmony.metrics.harmonization`) go through the same layouts and renderer. They are stored in
their papers' units (squared 0–255 levels, dB), never scaled. A table shows the localization columns
when it holds a localization value (or no harmonization value), and the harmonization columns when it
holds a harmonization value: a mask-free harmonizer (S2AM without mask) gets both.

Metric names are case-insensitive; other keys (``"epoch"``, ``"test/loss"``) are ignored.

**Units.** Results are stored as fractions. A metric whose paper unit is a percentage (AP and IoU:
``spec.scale == 100``) given as a number greater than 1 is read as a percentage (``81.5`` → 0.815);
up to 1 it is a fraction (a localization AP or IoU of at most 1 % does not occur in practice).
F1's paper unit is the fraction itself. A value outside [0, 1] after this raises ``ValueError``;
``None`` (NaN written as JSON ``null``) and NaN are kept as NaN and printed as ``missing``.

Example:
    >>> results = {"test/ap": 0.8002, "test/f1": 0.7317, "test/iou": 67.85}
    >>> print(results_to_markdown(results))
    | Subset | Images | AP (%) | F1 | IoU (%) |
    |---|---:|---:|---:|---:|
    | All | - | 80.02 | 0.7317 | 67.85 |
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..constants import ALL_ROW, METRIC_SPECS, SUBSET_ORDER, MetricSpec
from ..files import atomic_write

__all__ = [
    "COUNT_KEYS",
    "HARMONIZATION_SPECS",
    "Results",
    "format_results_table",
    "normalise_results",
    "order_subsets",
    "print_results_table",
    "read_results_file",
    "results_markdown",
    "results_to_json",
    "results_to_markdown",
    "write_results",
]

#: Per-subset counts carried along with the metrics (never scaled).
COUNT_KEYS = ("images", "empty_target")
#: Any layout :func:`normalise_results` accepts.
Results = Mapping[str, Any] | Sequence[Mapping[str, Any]]

#: The harmonization metrics of the iHarmony4 protocol, in their papers' units (not fractions).
HARMONIZATION_SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("mse", "MSE", 1.0, 2),
    MetricSpec("fmse", "fMSE", 1.0, 2),
    MetricSpec("psnr", "PSNR (dB)", 1.0, 2),
)
_SPECS = {spec.name: spec for spec in METRIC_SPECS}
_HARM = {spec.name: spec for spec in HARMONIZATION_SPECS}
_KEY_ORDER = (*_SPECS, *_HARM, *COUNT_KEYS)
_STAGES = ("test", "val", "validate")


def order_subsets(names: Iterable[str]) -> list[str]:
    """Subsets in the papers' order (:data:`~inharmony.constants.SUBSET_ORDER`), then others sorted, ``"All"`` last.

    Example:
        >>> order_subsets(["All", "HSynth", "HFlickr", "HCOCO"])
        ['HCOCO', 'HFlickr', 'HSynth', 'All']
    """
    names = set(names)
    known = [s for s in SUBSET_ORDER if s in names]
    others = sorted(names - set(SUBSET_ORDER) - {ALL_ROW})
    return known + others + ([ALL_ROW] if ALL_ROW in names else [])


def normalise_results(results: Results | None) -> dict[str, dict[str, float]]:
    """Bring any accepted layout to ``{subset: {"ap", "f1", "iou", "images", "empty_target"}}``.

    Metrics become fractions (see the module notes on units), subsets are ordered by
    :func:`order_subsets`, and keys that are not given stay absent.

    Args:
        results: A result dict in one of the layouts of the module notes, a list of them, or ``None``.

    Returns:
        The normalised table (empty for ``None`` or an empty input).

    Example:
        >>> normalise_results({"test/HCOCO/ap": 81.5, "test/ap": 0.8})
        {'HCOCO': {'ap': 0.815}, 'All': {'ap': 0.8}}
    """
    if not results:
        return {}
    if not isinstance(results, Mapping):
        merged: dict[str, Any] = {}
        for item in results:
            merged.update(item)
        results = merged
    table: dict[str, dict[str, float]] = {}
    for key, value in results.items():
        if isinstance(value, Mapping):
            for name, number in value.items():
                _put(table, str(key), str(name), number)
            continue
        parts = str(key).split("/")
        if len(parts) > 1 and parts[0] in _STAGES:
            parts = parts[1:]
        if len(parts) == 1:
            _put(table, ALL_ROW, parts[0], value)
        elif len(parts) == 2:
            _put(table, parts[0], parts[1], value)
    return {subset: {k: table[subset][k] for k in _KEY_ORDER if k in table[subset]} for subset in order_subsets(table)}



def _put(table: dict[str, dict[str, float]], subset: str, name: str, value: Any) -> None:
    name = name.lower()
    if name not in _KEY_ORDER:
        return
    try:
        number = math.nan if value is None else float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"metric {subset}/{name} is not a number: {value!r}") from err
    spec = _SPECS.get(name)
    if name in _HARM and not math.isnan(number) and (number < 0 or math.isinf(number)):
        raise ValueError(f"metric {subset}/{name} = {value!r} is out of range; expected a finite value >= 0")
    if spec is not None and not math.isnan(number):
        if number > 1.0 and spec.scale != 1.0:
            number /= spec.scale
        if not 0.0 <= number <= 1.0:
            unit = f"a fraction or in {spec.title}" if spec.scale != 1.0 else "a fraction in [0, 1]"
            raise ValueError(f"metric {subset}/{name} = {value!r} is out of range; expected {unit}")
    table.setdefault(subset, {})[name] = number


def table_specs(table: Mapping[str, Mapping[str, float]]) -> tuple[MetricSpec, ...]:
    """The metric columns of a normalised table: localization, harmonization, or both (see the module notes).

    Example:
        >>> [s.name for s in table_specs({"All": {"psnr": 30.0}})]
        ['mse', 'fmse', 'psnr']
        >>> [s.name for s in table_specs({"All": {"ap": 0.5, "mse": 20.0}})]
        ['ap', 'f1', 'iou', 'mse', 'fmse', 'psnr']
    """
    present = {k for values in table.values() for k, v in values.items() if not math.isnan(v)}
    has_harm = bool(present & set(_HARM))
    has_loc = bool(present & set(_SPECS)) or not has_harm
    return (*(METRIC_SPECS if has_loc else ()), *(HARMONIZATION_SPECS if has_harm else ()))


def format_results_table(
    results: Results | None, *, images: bool = True, missing: str = "-"
) -> list[list[str]]:
    """The table as rows of strings (header first), in the papers' units: AP %, F1 fraction, IoU %.

    This is the one place cells are formatted; every other output renders these rows.

    Args:
        results: Any layout :func:`normalise_results` accepts.
        images: Include the ``Images`` column (``missing`` where no count was given).
        missing: Text of a cell whose value is absent or NaN.

    Example:
        >>> format_results_table({"All": {"ap": 0.8002, "f1": 0.7317, "iou": 0.6785, "images": 7237.0}})
        [['Subset', 'Images', 'AP (%)', 'F1', 'IoU (%)'], ['All', '7237', '80.02', '0.7317', '67.85']]
    """
    table = normalise_results(results)
    specs = table_specs(table)
    header = ["Subset", *(["Images"] if images else []), *(spec.title for spec in specs)]
    rows = [header]
    for subset, values in table.items():
        row = [subset]
        if images:
            count = values.get("images", math.nan)
            row.append(missing if math.isnan(count) else str(int(count)))
        for spec in specs:
            value = values.get(spec.name, math.nan)
            row.append(missing if math.isnan(value) else spec.format(value))
        rows.append(row)
    return rows


def results_to_markdown(results: Results | None, *, images: bool = True, missing: str = "-") -> str:
    """The rows of :func:`format_results_table` as a GitHub markdown table (no trailing newline).

    Example:
        >>> print(results_to_markdown({"All": {"ap": 0.8002, "f1": 0.7317, "iou": 0.6785}}))
        | Subset | Images | AP (%) | F1 | IoU (%) |
        |---|---:|---:|---:|---:|
        | All | - | 80.02 | 0.7317 | 67.85 |
    """
    header, *body = format_results_table(results, images=images, missing=missing)
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def results_markdown(results: Results | None, title: str | None = None) -> str:
    """``metrics.md``: the markdown table under an optional ``### title``, with a final newline.

    Example:
        >>> print(results_markdown({"ap": 0.5}, title="dirl"), end="")
        ### dirl
        <BLANKLINE>
        | Subset | Images | AP (%) | F1 | IoU (%) |
        |---|---:|---:|---:|---:|
        | All | - | 50.00 | - | - |
    """
    head = f"### {title}\n\n" if title else ""
    return head + results_to_markdown(results) + "\n"


def results_to_json(results: Results | None) -> str:
    """``metrics.json``: the normalised table as fractions at full precision, NaN as ``null``.

    Example:
        >>> print(results_to_json({"ap": 0.8, "f1": float("nan")}))
        {
          "All": {
            "ap": 0.8,
            "f1": null
          }
        }
    """
    payload = {
        subset: {k: (None if math.isnan(v) else v) for k, v in values.items()}
        for subset, values in normalise_results(results).items()
    }
    return json.dumps(payload, indent=2)


def print_results_table(results: Results | None, title: str | None = None, console: Any = None) -> None:
    """Print the table with rich, a rule above the ``All`` row.

    Args:
        results: Any layout :func:`normalise_results` accepts.
        title: Table title.
        console: A ``rich.console.Console`` (default: a new one on stdout).
    """
    from rich.console import Console
    from rich.table import Table

    header, *rows = format_results_table(results)
    table = Table(title=title)
    for i, column in enumerate(header):
        table.add_column(column, justify="left" if i == 0 else "right")
    for i, row in enumerate(rows):
        table.add_row(*row, end_section=(i == len(rows) - 2 and rows[-1][0] == ALL_ROW))
    (console or Console()).print(table)


def write_results(results: Results, out: str | Path, title: str | None = None) -> list[Path]:
    """Write ``metrics.json`` (:func:`results_to_json`) and ``metrics.md`` (:func:`results_markdown`) into ``out``.

    Returns:
        The two paths written.

    Example:
        >>> scores = {"ap": 0.8, "f1": 0.7, "iou": 0.6, "images": 10}
        >>> paths = write_results({"HCOCO": scores, "All": scores}, "/tmp/run")  # doctest: +SKIP
        >>> [p.name for p in paths]  # doctest: +SKIP
        ['metrics.json', 'metrics.md']
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "metrics.json", out / "metrics.md"
    # atomic: an interrupted write never leaves a truncated table under its final name
    with atomic_write(json_path, "w") as fh:
        fh.write(results_to_json(results) + "\n")
    with atomic_write(md_path, "w") as fh:
        fh.write(results_markdown(results, title))
    return [json_path, md_path]


def read_results_file(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a ``metrics.json`` in any layout :func:`normalise_results` accepts (fractions out).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not JSON, or holds no metric value (``ap``, ``f1``, ``iou``, ``mse``,
            ``fmse``, ``psnr``).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"metrics file not found: {path}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    table = normalise_results(data)
    if all(math.isnan(values.get(name, math.nan)) for values in table.values() for name in (*_SPECS, *_HARM)):
        raise ValueError(
            f"{path} holds no 'ap', 'f1' or 'iou' values; expected e.g. "
            '{"ap": 0.80, "f1": 0.73, "iou": 0.68} or {"HCOCO": {"ap": ...}, "All": {...}}'
        )
    return table
