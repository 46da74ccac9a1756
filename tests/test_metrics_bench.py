"""``inharmony bench metrics`` at tiny sizes: the report's sections, and inharmony agreeing with the authors' loop."""

from __future__ import annotations

import json

from inharmony.benchmarks import metrics as bench
from inharmony.cli import main


def test_bench_metrics_sections_and_identical_values(tmp_path, capsys):
    path = tmp_path / "m.json"
    assert bench.run(size=32, update_sizes="1,3", images=6, stream_images=10, repeats=1, json=str(path)) == 0
    out = capsys.readouterr().out
    assert "updates of 1 image, 1 thread" in out and "updates of 3 images" in out
    data = json.loads(path.read_text())
    assert [s["title"] for s in data["sections"]] == ["32² masks, updates of 1 image, 1 thread",
                                                      "32² masks, updates of 3 images, 1 thread"]  # fmt: skip
    for section in data["sections"]:
        assert section["baseline"] == bench.BASELINE
        names = [row["name"] for row in section["contenders"]]
        assert names == [bench.BASELINE, bench.ALL_THREE, bench.AP_ONLY]
        for row in section["contenders"]:
            assert row["extra"]["max |Δ mean|"] < 1e-12  # the same values as scikit-learn's loop
    stream = data["results"]["streaming"]
    assert stream["images"] == 10 and stream["images_scored"] == 10 and stream["state_bytes"] <= 64


def test_bench_metrics_command_line_spellings(tmp_path, capsys):
    argv = ["bench", "metrics", "--size", "32", "--update-sizes", "2", "--images", "4", "--stream-images", "0",
            "--repeats", "1", "--protocol", "raw", "--threads", "1,2", "--json", str(tmp_path / "m.json")]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((tmp_path / "m.json").read_text())
    assert [s["title"] for s in data["sections"]] == ["32² masks, updates of 2 images, 1 thread",
                                                      "32² masks, updates of 2 images, 2 threads"]  # fmt: skip
    assert "raw protocol" in data["sections"][0]["notes"][0] and "streaming" not in data["results"]
