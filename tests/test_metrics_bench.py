"""Smoke test of ``inharmony bench metrics`` (tiny sizes; the figures themselves are not checked)."""

from __future__ import annotations

import argparse

from inharmony.benchmarks import metrics as bench


def test_bench_metrics_runs_and_agrees_with_sklearn(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        ["--size", "32", "--batch-size", "4", "--compare-images", "6", "--stream-images", "10", "--repeats", "1"]
    )
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    assert "images/s" in out and "Streaming 10 images of 32x32" in out and "images scored 10" in out
    diff = float(out.split("max |difference| of the means, inharmony vs scikit-learn:")[1].split()[0])
    assert diff < 1e-9
