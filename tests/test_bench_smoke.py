"""Every ``inharmony bench`` mode runs with its ``SMOKE_ARGS`` and writes a JSON report of the shared schema.

The figures themselves are never checked (CI machines are noisy): only that each mode finishes, exits
0 and reports contenders side by side in the format of :mod:`inharmony.benchmarks._report`; and that
``bench report`` renders such JSON into a page's section for the machine it was measured on.
"""

from __future__ import annotations

import json
import math

import pytest

from inharmony.benchmarks import bench_modes, readme
from inharmony.benchmarks._report import SCHEMA_VERSION
from inharmony.cli import main
from inharmony.cli.commands import bench_tools
from inharmony.errors import DataError, InharmonyError

META = {"all", "report"}  # bench_tools() entries that drive the modes rather than measure
MODES = sorted(set(bench_tools()) - META)
ENV_KEYS = {"device", "threads", "torch", "cpu_count", "load_start", "load_end"}
CONTENDER_KEYS = {"name", "median_s", "best_s", "repeats", "ratio"}


def check_schema(data: dict, mode: str) -> None:
    assert data["schema"] == SCHEMA_VERSION
    assert data["mode"] == mode
    assert set(data["env"]) >= ENV_KEYS, f"{mode}: env lacks {sorted(ENV_KEYS - set(data['env']))}"
    assert data["sections"], f"{mode}: no sections"
    for section in data["sections"]:
        assert section["title"] and section["contenders"], f"{mode}: empty section {section.get('title')!r}"
        names = [row["name"] for row in section["contenders"]]
        if section["baseline"] is not None:
            assert section["baseline"] in names, f"{mode}: baseline {section['baseline']!r} is not a contender"
        for row in section["contenders"]:
            assert set(row) >= CONTENDER_KEYS, f"{mode}: contender lacks {sorted(CONTENDER_KEYS - set(row))}"
            assert row["repeats"] >= 1 and 0 <= row["best_s"] <= row["median_s"] and math.isfinite(row["median_s"])
            if section["baseline"] is None:
                assert row["ratio"] is None
            else:
                assert row["ratio"] > 0
                if row["name"] == section["baseline"]:
                    assert row["ratio"] == pytest.approx(1.0)
    assert isinstance(data["results"], dict)


def test_every_mode_is_a_tool_with_smoke_args():
    modes = bench_modes()
    assert {"metrics", "model", "data", "eval_pixels"} <= set(modes)
    assert set(MODES) == set(modes)
    missing = [name for name, module in modes.items() if not isinstance(getattr(module, "SMOKE_ARGS", None), list)]
    assert not missing, f"bench modes without SMOKE_ARGS (a list of CLI arguments for a ~20 s run): {missing}"


@pytest.mark.parametrize("mode", MODES)
def test_mode_smoke_run_writes_the_schema(mode, tmp_path, capsys):
    module = bench_modes()[mode]
    args = getattr(module, "SMOKE_ARGS", None)
    if args is None:
        pytest.fail(f"benchmarks module {module.__name__} defines no SMOKE_ARGS: the CI smoke run cannot run it")
    path = tmp_path / f"{mode}.json"
    assert main(["bench", mode, *args, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"inharmony bench {mode}:" in out and "load average" in out  # the machine header is printed
    check_schema(json.loads(path.read_text()), mode)


# ------------------------------------------------------------------------------------ page rendering


def fake_report(mode: str, ratio_of_fast: float = 4.0, flags: tuple[str, ...] = ("avx2",)) -> dict:
    base, fast = 0.02, 0.02 / ratio_of_fast
    env = {
        "device": "cpu", "cpu": "Test CPU", "threads": 2, "torch": "9.9", "cpu_count": 2, "load_start": 0.25,
        "load_end": 0.5, "date": "2026-01-02 03:04 UTC", "cpu_flags": list(flags),
        "command": f"inharmony bench {mode} --repeats 3 --json out/{mode}.json",
    }  # fmt: skip
    rows = [
        {"name": "eager fp32", "median_s": base, "best_s": base, "repeats": 3, "extra": {}, "ratio": 1.0},
        {"name": "fast", "median_s": fast, "best_s": fast, "repeats": 3, "extra": {"max |Δ|": 1e-7},
         "ratio": ratio_of_fast},
    ]  # fmt: skip
    section = {"title": f"{mode} work | 224²", "unit": "ms", "baseline": "eager fp32", "per": "/img",
               "notes": ["a note"], "contenders": rows}  # fmt: skip
    return {"schema": SCHEMA_VERSION, "mode": mode, "env": env, "sections": [section], "results": {},
            "notes": ["peak memory 12 MiB"]}  # fmt: skip


def write_reports(folder, *reports) -> None:
    folder.mkdir()
    for data in reports:
        (folder / f"{data['mode']}.json").write_text(json.dumps(data))


def test_report_replaces_only_the_marked_section(tmp_path):
    write_reports(tmp_path / "results", fake_report("metrics"), fake_report("data", 2.5))
    readme_path = tmp_path / "README.md"
    before, after = "# Title\n\n## Performance\n\n", "\n\n## Licence\nMIT\n"
    readme_path.write_text(f"{before}{readme.MARKER_START}\nold table\n{readme.MARKER_END}{after}")
    argv = ["bench", "report", "--json-dir", str(tmp_path / "results"), "--readme", str(readme_path)]
    assert main(argv) == 0
    text = readme_path.read_text()
    assert text.startswith(before + readme.MARKER_START + "\n") and text.endswith(readme.MARKER_END + after)
    assert "old table" not in text
    body = text.split(readme.MARKER_START)[1].split(readme.MARKER_END)[0]
    # modes sorted, each headed by its exact command and machine line
    assert body.index("#### `inharmony bench data`") < body.index("#### `inharmony bench metrics`")
    assert "`inharmony bench metrics --repeats 3 --json out/metrics.json` — cpu (Test CPU), 2 torch threads" in body
    assert "load average 0.25 → 0.50" in body and "2026-01-02 03:04 UTC" in body and "torch 9.9" in body
    assert "inharmony bench report --json-dir" in body  # says it is generated, and how
    # one table per section: header, alignment, rows with ratio and extra; pipes in text escaped
    assert "**metrics work \\| 224²**" in body
    assert "| contender | median (ms /img) | best (ms) | vs eager fp32 | max \\|Δ\\| |" in body
    assert "| eager fp32 | 20 | 20 | 1.00× | – |" in body
    assert "| fast | 5 | 5 | 4.00× | 1e-07 |" in body and "| fast | 8 | 8 | 2.50× | 1e-07 |" in body
    assert "- peak memory 12 MiB" in body and "a note" in body
    # running it again gives the same file (idempotent)
    assert main(argv) == 0
    assert readme_path.read_text() == text


def test_report_errors(tmp_path, capsys):
    write_reports(tmp_path / "results", fake_report("metrics"))
    no_markers = tmp_path / "README.md"
    no_markers.write_text("# Title\n")
    with pytest.raises(InharmonyError, match="bench:machines"):  # neither a machine's section nor the anchor
        readme.report(str(tmp_path / "results"), readme=str(no_markers))
    assert no_markers.read_text() == "# Title\n"  # untouched
    assert main(["bench", "report", "--json-dir", str(tmp_path / "results"), "--readme", str(no_markers)]) != 0
    twice = f"{readme.MARKER_START}\n{readme.MARKER_END}\n{readme.MARKER_START}\n{readme.MARKER_END}\n"
    with pytest.raises(InharmonyError, match="exactly one"):
        readme.replace_section(twice, "x")
    with pytest.raises(InharmonyError, match="before"):
        readme.replace_section(f"{readme.MARKER_END}\n{readme.MARKER_START}\n", "x")
    with pytest.raises(DataError, match=r"no \*\.json"):
        readme.load_reports(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.json").write_text(json.dumps({"schema": 99, "sections": []}))
    with pytest.raises(DataError, match="schema 99"):
        readme.load_reports(tmp_path / "bad")
    # without --readme/--out the Markdown is printed
    capsys.readouterr()
    assert readme.report(str(tmp_path / "results")) == 0
    assert "| fast | 5 | 5 | 4.00× | 1e-07 |" in capsys.readouterr().out


def test_bench_all_runs_modes_and_records_their_commands(tmp_path):
    out = tmp_path / "results"
    assert main(["bench", "all", "--out", str(out), "--preset", "smoke", "--only", "metrics"]) == 0
    data = json.loads((out / "metrics.json").read_text())
    check_schema(data, "metrics")
    assert data["env"]["command"].startswith("inharmony bench metrics --size 32 ")
    assert data["env"]["command"].endswith(f"--json {out / 'metrics.json'}")
    assert main(["bench", "all", "--out", str(out), "--only", "nonsense"]) != 0


PAGE = "# Benchmarks\n\nIntro.\n\n## Machines\n\n{sections}<!-- bench:machines -->\n\n## After\nText.\n"


def test_machine_label_says_what_decides_the_figures():
    assert readme.machine_label([fake_report("a")]) == "cpu-avx2-2cpu"
    bf16 = fake_report("a", flags=("avx2", "avx512f", "avx512_bf16", "avx512_vnni"))
    assert readme.machine_label([bf16]) == "cpu-avx512_bf16-2cpu"
    assert readme.machine_label([fake_report("a", flags=())]) == "cpu-2cpu"
    gpu = fake_report("a")
    gpu["env"].update(device="cuda:0", gpu="NVIDIA H100 80GB HBM3")
    assert readme.machine_label([gpu]) == "cuda-nvidia-h100-80gb-hbm3"
    with pytest.raises(DataError, match="2 kinds of machine"):
        readme.machine_label([fake_report("a"), bf16])


def test_report_writes_each_machine_s_section_of_a_page(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE.format(sections=""))
    write_reports(tmp_path / "avx2", fake_report("metrics"))
    bf16 = ("avx2", "avx512f", "avx512_bf16")
    write_reports(tmp_path / "bf16", fake_report("metrics", 3.0, bf16), fake_report("data", 2.5, bf16))

    # a machine the page has no section for: added before the anchor, headed by its label and CPU
    assert main(["bench", "report", "--json-dir", str(tmp_path / "avx2"), "--page", str(page)]) == 0
    start, end = readme.machine_markers("cpu-avx2-2cpu")
    text = page.read_text()
    assert text.index("## Machines") < text.index(start) < text.index(end) < text.index(readme.MACHINES_ANCHOR)
    assert "### `cpu-avx2-2cpu`: cpu (Test CPU), 2 CPUs [avx2]" in text
    assert "| fast | 5 | 5 | 4.00× | 1e-07 |" in text and text.endswith("## After\nText.\n")

    # a second machine: its own section; the first one stays as it was
    assert main(["bench", "report", "--json-dir", str(tmp_path / "bf16"), "--page", str(page)]) == 0
    text = page.read_text()
    avx2 = text.split(start)[1].split(end)[0]
    bf16_start, bf16_end = readme.machine_markers("cpu-avx512_bf16-2cpu")
    assert text.index(end) < text.index(bf16_start) < text.index(bf16_end) < text.index(readme.MACHINES_ANCHOR)
    assert "| fast | 5 | 5 | 4.00× | 1e-07 |" in avx2 and "#### `inharmony bench data`" not in avx2
    assert "#### `inharmony bench data`" in text.split(bf16_start)[1].split(bf16_end)[0]

    # the first machine again, with new figures: only its section changes; running twice changes nothing
    write_reports(tmp_path / "avx2-new", fake_report("metrics", 8.0))
    argv = ["bench", "report", "--json-dir", str(tmp_path / "avx2-new"), "--page", str(page)]
    assert main(argv) == 0
    new = page.read_text()
    assert "| fast | 2.5 | 2.5 | 8.00× | 1e-07 |" in new.split(start)[1].split(end)[0]
    assert new.split(bf16_start)[1] == text.split(bf16_start)[1]
    assert new.count(start) == 1 and new.count("### `cpu-avx2-2cpu`") == 1
    assert main(argv) == 0 and page.read_text() == new

    # --machine names the section
    assert main([*argv, "--machine", "laptop"]) == 0
    assert "<!-- bench:laptop:start -->" in page.read_text()


def test_machine_section_errors(tmp_path):
    write_reports(tmp_path / "results", fake_report("metrics"))
    page = tmp_path / "page.md"
    page.write_text("# No anchor\n")
    with pytest.raises(InharmonyError, match="bench:machines"):
        readme.report(str(tmp_path / "results"), page=str(page))
    assert page.read_text() == "# No anchor\n"  # untouched
    with pytest.raises(InharmonyError, match="machine label"):
        readme.replace_machine_section(PAGE.format(sections=""), "x", "Bad Label")
    start, end = readme.machine_markers("m")
    with pytest.raises(InharmonyError, match="expected one"):
        readme.replace_machine_section(f"{start}\n{end}\n{start}\n", "x", "m")
    with pytest.raises(InharmonyError, match="before"):
        readme.replace_machine_section(f"{end}\n{start}\n", "x", "m")
    with pytest.raises(InharmonyError, match="older name"):
        readme.report(str(tmp_path / "results"), page=str(page), readme=str(tmp_path / "other.md"))
    mixed = tmp_path / "mixed"
    write_reports(mixed, fake_report("metrics"), fake_report("data", flags=("avx2", "avx512f")))
    page.write_text(PAGE.format(sections=""))
    assert main(["bench", "report", "--json-dir", str(mixed), "--page", str(page)]) != 0


def test_the_docs_page_has_a_section_per_machine():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert text.count(readme.MACHINES_ANCHOR) == 1 and readme.MARKER_START not in text
    labels = __import__("re").findall(r"<!-- bench:([^ ]+):start -->", text)
    assert labels, "docs/benchmarks.md has no machine section"
    for label in labels:
        start, end = readme.machine_markers(label)
        assert text.count(start) == text.count(end) == 1 and text.index(start) < text.index(end)
        assert text.index(end) < text.index(readme.MACHINES_ANCHOR)
