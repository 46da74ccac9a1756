"""``inharmony predict`` runs that are killed or overlap never lose or mix up each other's outputs (issue #24).

Each case runs the real command in a subprocess whose ``write_png`` is wrapped to misbehave at a chosen
point: ``kill -9`` of itself after N files, or a pause before its first write so that a second run starts
while the first holds its claims. Before the fix a killed run's claims were dropped at once (its re-run
was refused), overlapping runs saved only their own entries (the last one won), and two inputs with one
stem in overlapping runs left one mask.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import inharmony
from inharmony.cli import main

MANIFEST_NAME = ".inharmony-predict.json"
TINY = {"decoder_channels": 8}

RUNNER = textwrap.dedent(
    """
    import os, signal, sys, time
    import inharmony.imageio as imageio

    real = imageio.write_png
    calls = 0

    def write_png(*args, **kwargs):
        global calls
        if calls == 0 and os.environ.get("PAUSE_FIRST"):
            open(os.environ["PAUSE_FIRST"] + ".ready", "w").close()
            time.sleep(float(os.environ.get("PAUSE_S", "4")))
        result = real(*args, **kwargs)
        calls += 1
        if calls == int(os.environ.get("KILL_AFTER", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    imageio.write_png = write_png
    from inharmony.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = inharmony.create_model("dirl_resnet18", **TINY).eval()
    return model.save_pretrained(tmp_path_factory.mktemp("w") / "dirl18", model_kwargs=TINY)


def _photos(folder: Path, names: list[str], seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _args(inputs: Path, out: Path, weights: Path) -> list[str]:
    return ["predict", str(inputs), "--out", str(out), "--model", "dirl_resnet18", "--weights", str(weights),
            "--size", "32", "--device", "cpu", "--batch-size", "1", "--no-overlay"]  # fmt: skip


def _start(tmp_path: Path, args: list[str], **env: str) -> subprocess.Popen:
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen([sys.executable, str(runner), *args], env=environment, stderr=subprocess.PIPE, text=True)


def _entries(out: Path) -> dict:
    return json.loads((out / MANIFEST_NAME).read_text())["outputs"]


def test_a_rerun_after_kill_9_replaces_the_killed_runs_outputs(weights, tmp_path):
    photos = _photos(tmp_path / "photos", [f"p{i}.png" for i in range(6)])
    out = tmp_path / "out"
    run = _start(tmp_path, _args(photos, out, weights), KILL_AFTER="3")
    _, err = run.communicate(timeout=300)
    assert run.returncode == -signal.SIGKILL, err
    written = sorted(p.name for p in out.glob("*_mask.png"))
    assert len(written) == 3  # killed part-way, its files complete (atomic writes)
    assert main(_args(photos, out, weights)) == 0  # the same command again: its own outputs, replaced
    assert sorted(p.name for p in out.glob("*_mask.png")) == [f"p{i}_mask.png" for i in range(6)]
    assert all(entry["size"] is not None for entry in _entries(out).values())


def test_overlapping_runs_keep_each_others_records(tmp_path, weights):
    a = _photos(tmp_path / "a", ["a1.png", "a2.png"])
    b = _photos(tmp_path / "b", ["b1.png", "b2.png"], seed=1)
    out = tmp_path / "out"
    ready = tmp_path / "first"
    first = _start(tmp_path, _args(a, out, weights), PAUSE_FIRST=str(ready), PAUSE_S="4")
    deadline = time.monotonic() + 120
    while not Path(str(ready) + ".ready").exists():  # the first run has claimed its names and is about to write
        assert time.monotonic() < deadline and first.poll() is None, first.stderr.read() if first.stderr else ""
        time.sleep(0.05)
    assert main(_args(b, out, weights)) == 0  # the second run, start to end, while the first is paused
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert set(_entries(out)) == {"a1_mask.png", "a2_mask.png", "b1_mask.png", "b2_mask.png"}
    assert main(_args(a, out, weights)) == 0 and main(_args(b, out, weights)) == 0  # both still own theirs


def test_one_stem_in_overlapping_runs_gets_two_masks(tmp_path, weights):
    a = _photos(tmp_path / "dirA", ["photo.png"])
    b = _photos(tmp_path / "dirB", ["photo.png"], seed=1)
    out = tmp_path / "out"
    ready = tmp_path / "first"
    first = _start(tmp_path, _args(a, out, weights), PAUSE_FIRST=str(ready), PAUSE_S="4")
    deadline = time.monotonic() + 120
    while not Path(str(ready) + ".ready").exists():
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    assert main(_args(b, out, weights)) == 0
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert sorted(p.name for p in out.glob("*_mask.png")) == ["photo_1_mask.png", "photo_mask.png"]
    sources = {name: Path(entry["source"]).parent.name for name, entry in _entries(out).items()}
    assert sources == {"photo_mask.png": "dirA", "photo_1_mask.png": "dirB"}
