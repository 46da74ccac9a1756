"""Smoke test of ``inharmony bench metrics`` (tiny sizes; the figures themselves are not checked)."""

from __future__ import annotations

from inharmony.benchmarks import metrics as bench
from inharmony.cli import main


def test_bench_metrics_runs_and_agrees_with_sklearn(capsys):
    assert bench.run(size=32, batch_size=4, compare_images=6, stream_images=10, repeats=1) == 0
    out = capsys.readouterr().out
    assert "images/s" in out and "Streaming 10 images of 32x32" in out and "images scored 10" in out
    diff = float(out.split("max |difference| of the means, inharmony vs scikit-learn:")[1].split()[0])
    assert diff < 1e-9


def test_bench_metrics_command_line_spellings(capsys):
    argv = ["bench", "metrics", "--size", "32", "--batch-size", "4", "--compare-images", "6", "--stream-images", "10",
            "--repeats", "1", "--protocol", "raw"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "32x32 masks, batch 4, protocol=raw" in out and "Streaming 10 images of 32x32" in out
