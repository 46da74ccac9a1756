"""Two-process CPU DDP (gloo): `fit` + `test` run, and the test table equals the single-process one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from inharmony.cli import main

# (--trainer.sync_batchnorm is GPU-only in PyTorch, so it is not exercised here.)
# 9 test composites without the le50 filter (odd on purpose: DistributedSampler pads rank 1 with a
# repeat of sample 0, which must not be scored twice).
COMMON = [
    "--model.model", "dirl_resnet18",
    "--data.image_size", "32",
    "--data.batch_size", "2",
    "--data.eval_batch_size", "2",
    "--data.num_workers", "0",
    "--data.le50", "false",
    "--trainer.accelerator", "cpu",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.num_sanity_val_steps", "0",
    "--samples.every_n_steps", "0",
]  # fmt: skip
TEST_COUNTS = [3, 2, 2, 2, 9]  # HCOCO, HAdobe5k, HFlickr, Hday2night, All (fake_ihd test split, all)


def _ddp(command: str, args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    cmd = [sys.executable, "-m", "inharmony.cli", command, *COMMON, *args]
    cmd += ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"{command} under DDP failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def test_ddp_fit_and_test_match_single_process(fake_ihd, tmp_path):
    data = ["--data.root", str(fake_ihd)]
    run_dir = tmp_path / "ddp_run"
    _ddp(
        "fit",
        [
            *data,
            "--trainer.default_root_dir",
            str(run_dir),
            "--trainer.max_epochs",
            "1",
        ],
        tmp_path,
    )
    last = sorted(run_dir.rglob("last.ckpt"))
    assert len(last) == 1, "one checkpoint, written by rank 0 only"

    ddp_out = tmp_path / "ddp_table"
    _ddp(
        "test",
        [*data, "--trainer.default_root_dir", str(tmp_path / "t"), "--ckpt_path", str(last[0]), "--out", str(ddp_out)],
        tmp_path,
    )

    single_out = tmp_path / "single_table"
    args = [*COMMON, *data, "--trainer.devices", "1", "--trainer.default_root_dir", str(tmp_path / "s")]
    assert main(["test", *args, "--ckpt_path", str(last[0]), "--out", str(single_out)]) == 0

    ddp = json.loads((ddp_out / "metrics.json").read_text())
    single = json.loads((single_out / "metrics.json").read_text())
    assert list(ddp) == list(single) == ["HCOCO", "HAdobe5k", "HFlickr", "Hday2night", "All"]
    # Every test image scored exactly once in both runs.
    assert [int(r["images"]) for r in ddp.values()] == TEST_COUNTS
    assert [int(r["images"]) for r in single.values()] == TEST_COUNTS
    for subset in single:
        for metric in ("ap", "f1", "iou"):
            assert ddp[subset][metric] == pytest.approx(single[subset][metric], abs=1e-5), (subset, metric)


def test_ddp_test_on_streaming_chunks_scores_every_image_once(fake_ihd, tmp_path):
    """The litdata source under two-process DDP gives the folder source's single-process table."""
    from inharmony.data.streaming import optimize_ihd

    chunks = tmp_path / "chunks"
    optimize_ihd(fake_ihd, chunks, le50=False, val_fraction=0.2, seed=0)
    folder = ["--data.root", str(fake_ihd)]
    run_dir = tmp_path / "run"
    fit_args = [*COMMON, *folder, "--trainer.devices", "1", "--trainer.default_root_dir", str(run_dir)]
    assert main(["fit", *fit_args, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0"]) == 0
    last = sorted(run_dir.rglob("last.ckpt"))
    assert len(last) == 1

    stream_out = tmp_path / "stream_table"
    streaming = ["--data.streaming", str(chunks)]
    _ddp(
        "test",
        [*streaming, "--trainer.default_root_dir", str(tmp_path / "t"), "--ckpt_path", str(last[0]),
         "--out", str(stream_out)],
        tmp_path,
    )
    single_out = tmp_path / "single_table"
    args = [*COMMON, *folder, "--trainer.devices", "1", "--trainer.default_root_dir", str(tmp_path / "s")]
    assert main(["test", *args, "--ckpt_path", str(last[0]), "--out", str(single_out)]) == 0

    stream = json.loads((stream_out / "metrics.json").read_text())
    single = json.loads((single_out / "metrics.json").read_text())
    assert [int(r["images"]) for r in stream.values()] == TEST_COUNTS
    for subset in single:
        for metric in ("ap", "f1", "iou"):
            assert stream[subset][metric] == pytest.approx(single[subset][metric], abs=1e-5), (subset, metric)
