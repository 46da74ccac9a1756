"""The one results renderer: layouts, units, order, and the same cells in every output."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import pytest
from rich.console import Console

from inharmony.constants import METRIC_SPECS
from inharmony.metrics import (
    format_results_table,
    normalise_results,
    order_subsets,
    print_results_table,
    results_markdown,
    results_to_json,
    results_to_markdown,
    write_results,
)
from inharmony.metrics.report import read_results_file
from inharmony.models.model_card import METRIC_COLUMNS, normalise_metrics, read_metrics_file, render_model_card

RESULTS = {
    "HSynth": {"ap": 0.5, "f1": 0.4, "iou": 0.3, "images": 2.0, "empty_target": 0.0},
    "HCOCO": {"ap": 0.812345, "f1": 0.701149, "iou": 0.650249, "images": 4283.0, "empty_target": 0.0},
    "All": {"ap": 0.79991, "f1": 0.691249, "iou": math.nan, "images": 4285.0, "empty_target": 1.0},
    "Hday2night": {"ap": 0.6, "f1": 0.5, "iou": 0.4, "images": 0.0, "empty_target": 1.0},
}
CELLS = {  # subset -> AP (%), F1, IoU (%) as every output must show them
    "HCOCO": ["81.23", "0.7011", "65.02"],
    "Hday2night": ["60.00", "0.5000", "40.00"],
    "HSynth": ["50.00", "0.4000", "30.00"],
    "All": ["79.99", "0.6912", None],
}


def test_every_layout_normalises_to_the_same_table():
    flat = {"ap": 0.8, "f1": 0.7, "iou": 0.6}
    nested = {"HCOCO": {"ap": 0.9, "F1": 0.8, "iou": 0.7, "images": 3}, "All": flat}
    lightning = {"test/ap": 0.8, "test/f1": 0.7, "test/iou": 0.6, "test/HCOCO/ap": 0.9, "test/HCOCO/f1": 0.8,
                 "test/HCOCO/iou": 0.7, "test/HCOCO/images": 3, "epoch": 4, "test/loss": 0.1}
    listed = [{"test/ap": 0.8, "test/f1": 0.7, "test/iou": 0.6}, {"test/HCOCO/ap": 90.0, "test/HCOCO/f1": 0.8,
                                                                   "test/HCOCO/iou": 70.0, "test/HCOCO/images": 3}]
    want = {"HCOCO": {"ap": 0.9, "f1": 0.8, "iou": 0.7, "images": 3.0}, "All": flat}
    for layout in (nested, lightning, listed):
        got = normalise_results(layout)
        assert list(got) == ["HCOCO", "All"]
        for subset, values in want.items():
            assert got[subset].keys() == values.keys()
            assert all(math.isclose(got[subset][k], v) for k, v in values.items())
    assert normalise_results(flat) == {"All": flat}
    assert normalise_results({"val/ap": 0.5}) == {"All": {"ap": 0.5}}
    assert normalise_results(None) == {} and normalise_results([]) == {}


def test_units_percent_above_one_fraction_otherwise_and_range_checks():
    got = normalise_results({"ap": 81.5, "f1": 0.73, "iou": 1.0})["All"]
    assert math.isclose(got["ap"], 0.815) and got["f1"] == 0.73 and got["iou"] == 1.0
    for bad in ({"f1": 73.0}, {"ap": 100.5}, {"iou": -0.1}):
        with pytest.raises(ValueError, match="out of range"):
            normalise_results(bad)
    with pytest.raises(ValueError, match="not a number"):
        normalise_results({"ap": "high"})
    missing = normalise_results({"ap": None, "f1": math.nan})["All"]
    assert all(math.isnan(v) for v in missing.values())


def test_subset_order_papers_then_others_then_all():
    assert order_subsets(["All", "Zeta", "Hday2night", "HSynth", "HCOCO"]) == [
        "HCOCO", "Hday2night", "HSynth", "Zeta", "All"
    ]
    assert list(normalise_results(RESULTS)) == ["HCOCO", "Hday2night", "HSynth", "All"]


def _cells(rows: list[list[str]], metrics_from: int) -> dict[str, list[str | None]]:
    return {row[0]: [None if c in ("-", "–") else c for c in row[metrics_from:]] for row in rows}


def test_one_renderer_console_markdown_json_and_model_card_agree():
    # rows
    header, *rows = format_results_table(RESULTS)
    assert header == ["Subset", "Images", *(spec.title for spec in METRIC_SPECS)]
    assert _cells(rows, 2) == CELLS
    assert [r[1] for r in rows] == ["4283", "0", "2", "4285"]
    # markdown: the same rows
    md = results_to_markdown(RESULTS).splitlines()
    assert md[2:] == ["| " + " | ".join(r) + " |" for r in rows]
    assert results_markdown(RESULTS, title="t").startswith("### t\n\n| Subset |")
    # console: the same cells, a rule above "All"
    buffer = io.StringIO()
    print_results_table(RESULTS, title="dirl", console=Console(file=buffer, width=120, color_system=None))
    lines = buffer.getvalue().splitlines()
    for subset, cells in CELLS.items():
        line = next(line for line in lines if f" {subset} " in line)
        assert [c for c in cells if c] == [c for c in line.replace("│", " ").split() if "." in c]
    all_at = next(i for i, line in enumerate(lines) if " All " in line)
    assert set(lines[all_at - 1].strip()) <= set("├┼┤─")
    # JSON: fractions at full precision that render to the same rows
    payload = json.loads(results_to_json(RESULTS))
    assert payload["All"]["iou"] is None and payload["HCOCO"]["ap"] == 0.812345
    assert format_results_table(payload) == [header, *rows]
    # model card: the same cells, without the Images column, "–" for missing
    card = render_model_card({"architecture": "dirl"}, metrics=RESULTS)
    card_rows = [line.strip("|").split(" | ") for line in card.splitlines() if line.startswith("| H")]
    card_rows += [line.strip("|").split(" | ") for line in card.splitlines() if line.startswith("| All")]
    assert _cells([[c.strip() for c in r] for r in card_rows], 1) == CELLS
    assert "| All | 79.99 | 0.6912 | – |" in card
    # ... also when given paper units, as hub.save_pretrained passes them
    assert render_model_card({"architecture": "dirl"}, metrics=normalise_metrics(RESULTS)) == card


def test_write_and_read_back(tmp_path):
    json_path, md_path = write_results(RESULTS, tmp_path / "out", title="dirl")
    assert md_path.read_text() == results_markdown(RESULTS, "dirl")
    assert json_path.read_text() == results_to_json(RESULTS) + "\n"
    table = read_results_file(json_path)
    assert format_results_table(table) == format_results_table(RESULTS)
    assert read_metrics_file(json_path)["HCOCO"] == {"ap": 81.2345, "f1": 0.7011, "iou": 65.0249}
    assert read_metrics_file(json_path)["All"] == {"ap": 79.991, "f1": 0.6912}  # null dropped


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics file not found"):
        read_metrics_file(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_metrics_file(tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text('{"epoch": 3, "All": {"ap": null}}')
    with pytest.raises(ValueError, match="holds no 'ap', 'f1' or 'iou' values"):
        read_metrics_file(tmp_path / "empty.json")


def test_model_card_compat_names():
    assert normalise_metrics({"test/ap": 0.8, "test/f1": 0.73, "test/iou": 0.68}) == {
        "All": {"ap": 80.0, "f1": 0.73, "iou": 68.0}
    }
    assert METRIC_COLUMNS == (("ap", "AP (%)", 100.0), ("f1", "F1", 1.0), ("iou", "IoU (%)", 100.0))


def test_model_card_and_tables_need_no_torchmetrics():
    # A torch.hub user has torch, timm, huggingface_hub and safetensors only: saving a model renders
    # the card through inharmony.model_card -> inharmony.metrics.report.
    code = """
import sys
for name in ("torchmetrics", "lightning", "pytorch_lightning", "albumentations", "cv2", "litdata"):
    sys.modules[name] = None
import inharmony.models.model_card
from inharmony.models.model_card import render_model_card
card = render_model_card({"architecture": "dirl"}, metrics={"test/HCOCO/ap": 0.8123, "test/ap": 0.8},
                         reference_metrics={"ap": 80.02, "f1": 0.7317, "iou": 67.85})
assert "| HCOCO | 81.23 | – | – |" in card and "| All | 80.02 | 0.7317 | 67.85 |" in card, card
import inharmony.metrics
assert inharmony.metrics.format_results_table({"ap": 0.5})[1][2] == "50.00"
try:
    inharmony.metrics.PerSubsetMetrics
except ImportError:
    pass
else:
    raise AssertionError("torchmetrics was importable")
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
