"""The Benchmarks page (docs/benchmarks.md), generated from ``inharmony bench`` JSON reports; and running every mode.

``inharmony bench all --out bench-results --preset full`` runs every bench mode (each in its own
process, so that thread settings and peak memory do not leak from one to the next) and writes
``bench-results/MODE.json``; ``inharmony bench report --json-dir bench-results --page docs/benchmarks.md``
renders those reports as Markdown tables (one per section: contender, median, best, ratio to the
baseline, extra columns; a header line per mode naming the device, CPU flags, threads, torch, load average,
date and the exact command) and writes them into the page, atomically, in the section of the machine they
were measured on.

A page keeps one section per kind of machine, between ``<!-- bench:LABEL:start -->`` and
``<!-- bench:LABEL:end -->``, where LABEL says what decides the figures: the device, and for a CPU its widest
matrix instructions and its core count (``cpu-avx512_bf16-2cpu``, ``cpu-avx2-16cpu``), for a GPU its name
(:func:`machine_label`; ``--machine`` names it yourself). A report from a machine the page has no section for
adds one just before ``<!-- bench:machines -->``; the other machines' sections are left as they are. A page
with the single pair ``<!-- bench:start -->`` / ``<!-- bench:end -->`` (and no ``--machine``) has that pair
replaced instead, as README's Performance section once was.

Example:
    >>> report = {"schema": 1, "mode": "demo", "env": {"device": "cpu", "threads": 1, "torch": "2.5",
    ...           "cpu_count": 2, "load_start": 0.1, "load_end": 0.2},
    ...           "sections": [{"title": "sum", "unit": "ms", "baseline": "python", "per": "",
    ...                         "contenders": [{"name": "python", "median_s": 0.004, "best_s": 0.004,
    ...                                         "repeats": 1, "extra": {}, "ratio": 1.0}], "notes": []}]}
    >>> print(render_markdown([report]).splitlines()[6])
    | contender | median (ms) | best (ms) | vs python |
    >>> machine_label([report])
    'cpu-2cpu'
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ..errors import DataError, InharmonyError
from ._options import PositiveFloat
from ._report import _UNIT_SCALE, SCHEMA_VERSION

__all__ = [
    "MACHINES_ANCHOR",
    "MARKER_END",
    "MARKER_START",
    "load_reports",
    "machine_label",
    "machine_markers",
    "render_markdown",
    "replace_machine_section",
    "replace_section",
    "report",
    "run_all",
]

MARKER_START = "<!-- bench:start -->"
MARKER_END = "<!-- bench:end -->"
MACHINES_ANCHOR = "<!-- bench:machines -->"
"""Where a page takes the section of a machine it has none for (inserted just before this line)."""

# The CPU features that decide which fast kernels exist, widest first: a CPU's kind is the first it has.
_CPU_KINDS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")
_LABEL = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def load_reports(json_dir: str | Path) -> list[dict[str, Any]]:
    """Every ``*.json`` bench report in ``json_dir``, sorted by mode; raises ``DataError`` on a bad file."""
    folder = Path(json_dir)
    if not folder.is_dir():
        raise DataError(f"--json-dir {folder} is not a folder; write reports with 'inharmony bench all --out {folder}'")
    reports = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: not a readable JSON bench report ({err})") from err
        if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION or "sections" not in data:
            raise DataError(
                f"{path}: not an 'inharmony bench --json' report of schema {SCHEMA_VERSION} "
                f"(schema {data.get('schema') if isinstance(data, dict) else None!r})"
            )
        reports.append(data)
    if not reports:
        raise DataError(f"no *.json bench reports in {folder}")
    return sorted(reports, key=lambda r: str(r.get("mode")))


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if value == 0:
            return "0"
        return f"{value:.3g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.4g}"
    return str(value)


def _load(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "?"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _header(data: dict[str, Any]) -> str:
    env = data.get("env", {})
    where = env.get("gpu") or env.get("cpu") or ""
    machine = f"{env.get('device', '?')}" + (f" ({where})" if where else "")
    flags = ",".join(env.get("cpu_flags", []))
    parts = [
        machine,
        f"{env.get('threads', '?')} torch threads on {env.get('cpu_count', '?')} CPUs"
        + (f" [{flags}]" if flags else "")
        + (f" (CPU kind {env['cpu_kind']})" if env.get("cpu_kind") else ""),
        f"torch {env.get('torch', '?')}",
        f"load average {_load(env.get('load_start'))} → {_load(env.get('load_end'))}",
    ]
    if env.get("date"):
        parts.append(str(env["date"]))
    return ", ".join(parts)


def _section_table(section: dict[str, Any]) -> list[str]:
    unit = section.get("unit", "ms")
    scale = _UNIT_SCALE.get(unit, 1.0)
    per = section.get("per") or ""
    rows = section.get("contenders", [])
    extras = list(dict.fromkeys(k for row in rows for k in row.get("extra", {})))
    baseline = section.get("baseline")
    head = ["contender", f"median ({unit}{' ' + per if per else ''})", f"best ({unit})"]
    if baseline:
        head.append(f"vs {baseline}")
    head += extras
    out = [f"**{_cell(section.get('title', ''))}**", "", "| " + " | ".join(_cell(h) for h in head) + " |"]
    out.append("|" + "---|" + "---:|" * (len(head) - 1))
    for row in rows:
        cells = [_cell(str(row["name"])), _number(row["median_s"] * scale), _number(row["best_s"] * scale)]
        if baseline:
            ratio = row.get("ratio")
            cells.append("–" if ratio is None else f"{ratio:.2f}×")
        cells += [_cell(_number(row.get("extra", {}).get(k))) for k in extras]
        out.append("| " + " | ".join(cells) + " |")
    notes = section.get("notes") or []
    if notes:
        out.append("")
        out += [f"{_cell(n)}" + ("  " if i < len(notes) - 1 else "") for i, n in enumerate(notes)]
    return out


def render_markdown(reports: Sequence[dict[str, Any]], command: str | None = None) -> str:
    """Markdown tables of bench reports (as ``BenchReport.to_dict`` writes them), one heading per mode.

    Args:
        reports: The reports, one per mode, in the order to show them.
        command: The command that generated this text, named in its first line.
    """
    out = []
    if command:
        out += [f"_Generated from the JSON reports by `{command}`; re-run the commands below to update it._", ""]
    for data in reports:
        env = data.get("env", {})
        mode = data.get("mode", "?")
        out += [f"#### `inharmony bench {mode}`", ""]
        run_command = env.get("command") or f"inharmony bench {mode}"
        out += [f"`{run_command}` — {_header(data)}", ""]
        for section in data.get("sections", []):
            out += _section_table(section)
            out.append("")
        notes = data.get("notes") or []
        if notes:
            out += [f"- {_cell(n)}" for n in notes]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def replace_section(text: str, body: str) -> str:
    """``text`` with everything between :data:`MARKER_START` and :data:`MARKER_END` replaced by ``body``.

    Raises:
        InharmonyError: a marker is missing, repeated, or the end comes before the start.
    """
    starts, ends = text.count(MARKER_START), text.count(MARKER_END)
    if starts != 1 or ends != 1:
        raise InharmonyError(
            f"expected exactly one {MARKER_START} and one {MARKER_END} marker, found {starts} and {ends}; "
            "put them where the tables belong (or give --machine and use a machine's section)"
        )
    head, rest = text.split(MARKER_START)
    middle, tail = rest.split(MARKER_END) if MARKER_END in rest else (None, None)
    if middle is None:
        raise InharmonyError(f"{MARKER_END} comes before {MARKER_START}")
    return f"{head}{MARKER_START}\n{body.strip()}\n{MARKER_END}{tail}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.]+", "-", text.lower()).strip("-") or "unknown"


def _machine_of(env: dict[str, Any]) -> str:
    device = str(env.get("device", "?"))
    if device != "cpu":
        return _slug(f"{device.split(':')[0]}-{env.get('gpu') or 'unknown'}")
    flags = set(env.get("cpu_flags") or [])
    kind = next((flag for flag in _CPU_KINDS if flag in flags), None)
    if env.get("cpu_kind") == "fp32-only" and kind in ("amx_bf16", "avx512_bf16"):
        kind += "-as-fp32-only"  # torch capped to AVX2 (ONEDNN_MAX_CPU_ISA): measured as an fp32-only CPU
    return _slug("-".join(["cpu", *([kind] if kind else []), f"{env.get('cpu_count', '?')}cpu"]))


def machine_label(reports: Sequence[dict[str, Any]]) -> str:
    """The kind of machine the reports were measured on, as a page's section label.

    ``cpu-<widest of amx_bf16/avx512_bf16/avx512f/avx2>-<N>cpu`` for a CPU, ``cuda-<gpu name>`` for a GPU.

    Raises:
        DataError: the reports come from different kinds of machine (render them from separate folders).
    """
    labels = sorted({_machine_of(r.get("env", {})) for r in reports})
    if len(labels) != 1:
        raise DataError(
            f"the reports come from {len(labels)} kinds of machine ({', '.join(labels)}); put each machine's "
            "reports in a folder of their own, or name the section with --machine"
        )
    return labels[0]


def machine_markers(label: str) -> tuple[str, str]:
    """``(start, end)`` markers of machine ``label``'s section in a page."""
    return f"<!-- bench:{label}:start -->", f"<!-- bench:{label}:end -->"


def _machine_title(reports: Sequence[dict[str, Any]], label: str) -> str:
    env = reports[0].get("env", {}) if reports else {}
    where = env.get("gpu") or env.get("cpu") or ""
    flags = ",".join(env.get("cpu_flags") or [])
    return (
        f"`{label}`: {env.get('device', '?')}" + (f" ({where})" if where else "")
        + f", {env.get('cpu_count', '?')} CPUs" + (f" [{flags}]" if flags else "")
    )  # fmt: skip


def replace_machine_section(text: str, body: str, label: str, title: str | None = None) -> str:
    """``text`` with machine ``label``'s section replaced by ``body``, or added before :data:`MACHINES_ANCHOR`.

    Args:
        text: The page.
        body: The new Markdown of the section (without markers).
        label: The section's machine label (lower-case letters, digits, ``_ . -``).
        title: Heading of a new section (default: the label).

    Raises:
        InharmonyError: a bad label, markers missing, repeated or out of order, or no section and no anchor.
    """
    if not _LABEL.match(label):
        raise InharmonyError(f"machine label {label!r}: use lower-case letters, digits, '_', '.' and '-'")
    start, end = machine_markers(label)
    starts, ends = text.count(start), text.count(end)
    if starts == ends == 1:
        head, rest = text.split(start)
        if end not in rest:
            raise InharmonyError(f"{end} comes before {start}")
        _, tail = rest.split(end)
        return f"{head}{start}\n{body.strip()}\n{end}{tail}"
    if starts or ends:
        raise InharmonyError(f"expected one {start} and one {end} marker, found {starts} and {ends}")
    if text.count(MACHINES_ANCHOR) != 1:
        raise InharmonyError(
            f"no section for machine {label!r} ({start} ... {end}) and no single {MACHINES_ANCHOR} line to add "
            "one before; put the anchor where new machines' sections belong"
        )
    section = f"### {title or label}\n\n{start}\n{body.strip()}\n{end}\n\n"
    return text.replace(MACHINES_ANCHOR, section + MACHINES_ANCHOR)


def report(
    json_dir: str = "bench-results",
    page: str | None = None,
    out: str | None = None,
    machine: str | None = None,
    readme: str | None = None,
) -> int:
    """Render bench JSON reports as Markdown tables and write them into a page's section for their machine.

    Reads every ``*.json`` report in ``--json-dir`` (as ``inharmony bench MODE --json`` or ``inharmony bench
    all`` write them). With ``--page`` the tables replace the section of the machine they were measured on
    (between ``<!-- bench:LABEL:start -->`` and ``<!-- bench:LABEL:end -->``), or are added as a new section
    before the page's ``<!-- bench:machines -->`` line; other machines' sections stay. A page with the single
    pair ``<!-- bench:start -->`` / ``<!-- bench:end -->`` and no ``--machine`` has that pair replaced. The
    page is written atomically; with ``--out`` the Markdown is written there; with neither it is printed.

    Args:
        json_dir: Folder of bench JSON reports, all from one kind of machine.
        page: Markdown page to update, e.g. ``docs/benchmarks.md``.
        out: Write the Markdown to this file instead.
        machine: Section label (default: derived from the reports, e.g. ``cpu-avx512_bf16-2cpu``).
        readme: Older name of ``--page``.

    Example:
        inharmony bench report --json-dir bench-results --page docs/benchmarks.md
    """
    from ..files import atomic_write_bytes

    if readme and page and readme != page:
        raise InharmonyError("--readme is the older name of --page: give one of them")
    page = page or readme
    reports = load_reports(json_dir)
    command = "inharmony bench report " + shlex.join(
        ["--json-dir", json_dir, *(["--page", page] if page else []), *(["--out", out] if out else []),
         *(["--machine", machine] if machine else [])]
    )  # fmt: skip
    body = render_markdown(reports, command)
    if page:
        path = Path(page)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise DataError(f"cannot read --page {path}: {err}") from err
        modes = ", ".join(r["mode"] for r in reports)
        if machine is None and MARKER_START in text and not re.search(r"<!-- bench:[^ ]+:start -->", text):
            atomic_write_bytes(path, replace_section(text, body).encode("utf-8"))
            print(f"replaced the bench section of {path} ({len(reports)} reports: {modes})")
        else:
            label = machine or machine_label(reports)
            new = replace_machine_section(text, body, label, _machine_title(reports, label))
            atomic_write_bytes(path, new.encode("utf-8"))
            print(f"wrote the {label} section of {path} ({len(reports)} reports: {modes})")
    if out:
        atomic_write_bytes(out, body.encode("utf-8"))
        print(f"wrote {out}")
    if not page and not out:
        print(body, end="")
    return 0


# --------------------------------------------------------------------------------------------
# Running every mode
# --------------------------------------------------------------------------------------------


def _preset_args(module: Any, preset: str) -> list[str]:
    if preset == "smoke":
        return list(module.SMOKE_ARGS)
    if preset == "quick":
        return list(getattr(module, "QUICK_ARGS", []))
    return list(getattr(module, "FULL_ARGS", []))


def run_all(
    out: str = "bench-results",
    preset: Literal["smoke", "quick", "full"] = "full",
    only: list[str] | None = None,
    skip: list[str] | None = None,
    timeout: PositiveFloat = 3600.0,
) -> int:
    """Run every bench mode with a preset, each in its own process, writing ``OUT/MODE.json``.

    Presets: ``full`` (each mode's defaults, or its ``FULL_ARGS``: the figures for the docs), ``quick``
    (a mode's ``QUICK_ARGS``, else its defaults) and ``smoke`` (its ``SMOKE_ARGS``: seconds, for CI).
    The command line of each run is stored in its report (``env.command``) so that the page names it.
    Then: ``inharmony bench report --json-dir OUT --page docs/benchmarks.md``.

    Args:
        out: Folder for the JSON reports (created).
        preset: ``full``, ``quick`` or ``smoke``.
        only: Run only these modes (repeat ``--only``).
        skip: Leave these modes out (repeat ``--skip``).
        timeout: Seconds allowed per mode.

    Example:
        inharmony bench all --out bench-results --preset full
    """
    from ..files import atomic_write_bytes
    from . import bench_modes

    modes = bench_modes()
    unknown = sorted(set(only or []) - set(modes)) + sorted(set(skip or []) - set(modes))
    if unknown:
        raise InharmonyError(f"unknown bench modes {unknown}; the modes are {sorted(modes)}")
    names = [n for n in modes if (not only or n in only) and n not in (skip or [])]
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        args = ["bench", name, *_preset_args(modes[name], preset)]
        path = folder / f"{name}.json"
        command = shlex.join(["inharmony", *args, "--json", str(path)])
        print(f"$ {command}", flush=True)
        start = time.perf_counter()
        code = [sys.executable, "-c", "import sys; from inharmony.cli import main; sys.exit(main(sys.argv[1:]))"]
        try:
            result = subprocess.run([*code, *args, "--json", str(path)], timeout=timeout, check=False)
            rc = result.returncode
        except subprocess.TimeoutExpired:
            rc = -1
            print(f"{name}: stopped after {timeout:.0f} s")
        if rc != 0 or not path.is_file():
            failed.append(name)
            print(f"{name}: failed (exit code {rc})", flush=True)
            continue
        data = json.loads(path.read_text())
        data.setdefault("env", {})["command"] = command
        atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"{len(names) - len(failed)} of {len(names)} modes wrote {folder}/MODE.json"
          + (f"; failed: {', '.join(failed)}" if failed else ""))  # fmt: skip
    return 1 if failed else 0
