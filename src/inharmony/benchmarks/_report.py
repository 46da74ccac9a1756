"""The one report format of ``inharmony bench``: contenders side by side, ratios to a baseline.

Every mode builds a :class:`BenchReport` of :class:`Section` s (one per workload, e.g. "DIRL 224²
batch 8"); each section lists its contenders (e.g. "eager fp32", "optimized bf16", "ONNX Runtime")
with their median and best time, timed interleaved in one run (:func:`time_interleaved`), and the
ratio of the baseline's median to each contender's (> 1: faster than the baseline). The header
names the machine (device, threads, torch, CPU flags and kind, load average at start and end), because a
number without its machine says nothing. ``--json PATH`` writes the same report for tracking
(schema :data:`SCHEMA_VERSION`; the CI smoke test checks it). Keys: ``schema``, ``mode``, ``env`` (``device``,
``cpu``, ``cpu_count``, ``cpu_flags``, ``cpu_kind`` — ``"fp32-only"``, ``"native bf16"`` or ``"AMX"``, see
:func:`inharmony.inference.cpu_kind` —, ``threads``, ``torch``, ``python``, ``load_start``, ``load_end``,
``date``, ``command``), ``sections`` (``title``, ``unit``, ``baseline``, ``per``, ``notes``, ``contenders``:
``name``, ``median_s``, ``best_s``, ``repeats``, ``ratio``, ``extra``), ``results`` (mode-specific; ``inference``
and ``batch`` add ``auto`` — ``cpu_kind``, ``backend``, ``precision`` that ``optimize(precision="auto")`` picks
— ``conv_ceiling_gflops`` and ``gflop_per_image``) and ``notes``.

Example:
    >>> report = BenchReport("demo", environment())
    >>> section = report.section("sum of 10^5 floats", unit="ms", baseline="python")
    >>> _ = section.add("python", [0.004, 0.005])
    >>> _ = section.add("torch", [0.0001, 0.0002])
    >>> round(section.ratio("torch"), 1)
    30.0
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "BenchReport", "Contender", "Section", "environment", "time_interleaved"]

SCHEMA_VERSION = 1

_UNIT_SCALE = {"s": 1.0, "ms": 1e3, "us": 1e6}


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _cpu_flags() -> list[str]:
    """The CPU features that decide which fast kernels exist (bf16 and int8 matrix units)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx_vnni")
    return [f for f in wanted if f in flags]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_kind() -> str:
    from ..inference.precision import cpu_kind

    return cpu_kind()


def environment(device: str = "cpu") -> dict[str, Any]:
    """Where a measurement was taken: device, threads, versions, CPU features and the load average now."""
    import torch

    env: dict[str, Any] = {
        "device": device,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "cpu_kind": _cpu_kind(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_start": _load(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


@dataclass
class Contender:
    """One way of doing a section's work: its timings and any figures beside them (diffs, memory)."""

    name: str
    median_s: float
    best_s: float
    repeats: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Section:
    """One workload measured several ways; ratios are to ``baseline``'s median."""

    title: str
    unit: str = "ms"
    baseline: str | None = None
    per: str = ""
    contenders: list[Contender] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, times: list[float], **extra: Any) -> Contender:
        """Record a contender from its per-repeat times in seconds (and extra figures to print)."""
        if not times:
            raise ValueError(f"{self.title}: contender {name!r} has no timings")
        row = Contender(name, statistics.median(times), min(times), len(times), dict(extra))
        self.contenders.append(row)
        return row

    def get(self, name: str) -> Contender:
        for row in self.contenders:
            if row.name == name:
                return row
        raise KeyError(f"{self.title}: no contender {name!r}")

    def ratio(self, name: str) -> float | None:
        """Baseline median / ``name``'s median: > 1 means faster than the baseline."""
        if self.baseline is None:
            return None
        return self.get(self.baseline).median_s / self.get(name).median_s

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for row in out["contenders"]:
            row["ratio"] = self.ratio(row["name"])
        return out

    def lines(self) -> list[str]:
        scale = _UNIT_SCALE.get(self.unit, 1.0)
        extras = list(dict.fromkeys(k for row in self.contenders for k in row.extra))
        per = f" {self.per}" if self.per else ""
        width = max([28, *(len(row.name) for row in self.contenders)])
        ratio_head = f"vs {self.baseline}" if self.baseline and len(self.baseline) <= 20 else "ratio"
        ratio_width = max(14, len(ratio_head))
        widths = [max(12, len(k)) for k in extras]
        head = f"  {'contender':<{width}} {'median ' + self.unit + per:>16} {'best':>9}"
        head += f" {ratio_head:>{ratio_width}}" if self.baseline else ""
        head += "".join(f" {k:>{w}}" for k, w in zip(extras, widths, strict=True))
        out = [f"{self.title}", head]
        for row in self.contenders:
            line = f"  {row.name:<{width}} {row.median_s * scale:>16.4g} {row.best_s * scale:>9.4g}"
            if self.baseline:
                line += f" {self.ratio(row.name):>{ratio_width - 1}.2f}x"
            line += "".join(f" {_fmt(row.extra.get(k)):>{w}}" for k, w in zip(extras, widths, strict=True))
            out.append(line)
        if self.baseline and ratio_head == "ratio":
            out.append(f"  ratio: {self.baseline}'s median / the contender's (> 1: faster)")
        out += [f"  note: {n}" for n in self.notes]
        return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass
class BenchReport:
    """A whole ``inharmony bench MODE`` run: the machine, then one :class:`Section` per workload."""

    mode: str
    env: dict[str, Any]
    sections: list[Section] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # printed after the sections (figures from ``results``)

    def section(self, title: str, unit: str = "ms", baseline: str | None = None, per: str = "") -> Section:
        """Start a new section (a workload) and return it."""
        new = Section(title, unit, baseline, per)
        self.sections.append(new)
        return new

    def header(self) -> str:
        env = self.env
        flags = ",".join(env.get("cpu_flags", [])) or "none of avx2/avx512/amx"
        where = env.get("gpu") or env.get("cpu")
        kind = f", CPU kind {env['cpu_kind']}" if env.get("cpu_kind") else ""
        return (
            f"inharmony bench {self.mode}: {env['device']} ({where}), {env['threads']} torch threads on "
            f"{env['cpu_count']} CPUs [{flags}]{kind}, torch {env['torch']}, "
            f"load average {env['load_start']:.2f} at start"
        )

    def finish(self, json_path: str | None = None) -> int:
        """Print the report (header, sections, load at end); write it as JSON to ``json_path``; return 0."""
        self.env["load_end"] = _load()
        self.env.setdefault("date", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        if Path(sys.argv[0]).name == "inharmony" and sys.argv[1:2] == ["bench"]:  # the console script
            self.env.setdefault("command", shlex.join(["inharmony", *sys.argv[1:]]))
        print(self.header())
        for sec in self.sections:
            print()
            print("\n".join(sec.lines()))
        if self.notes:
            print()
            print("\n".join(self.notes))
        print(f"\nload average {self.env['load_end']:.2f} at end (a busy machine inflates the times)")
        if json_path:
            from ..files import atomic_write_bytes

            atomic_write_bytes(json_path, (json.dumps(self.to_dict(), indent=2, default=float) + "\n").encode())
            print(f"wrote {json_path}")
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "mode": self.mode,
            "env": self.env,
            "sections": [s.to_dict() for s in self.sections],
            "results": self.results,
            "notes": self.notes,
        }


def time_interleaved(
    contenders: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1, sync: Callable[[], None] | None = None
) -> dict[str, list[float]]:
    """Seconds per call of each contender, run round-robin so that load changes hit all alike.

    Args:
        contenders: Name → zero-argument callable doing one unit of work.
        repeats: Timed rounds (each round calls every contender once).
        warmup: Untimed rounds first (allocators, kernel caches, lazy imports, compilation).
        sync: Called before reading the clock (``torch.cuda.synchronize`` on a GPU).
    """
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(max(1, repeats)):
        for name, fn in contenders.items():
            if sync:
                sync()
            start = time.perf_counter()
            fn()
            if sync:
                sync()
            times[name].append(time.perf_counter() - start)
    return times
