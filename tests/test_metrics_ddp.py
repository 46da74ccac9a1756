"""Two processes (gloo, CPU) give the single-process metrics: states are summed across ranks."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from inharmony.metrics import PerSubsetMetrics, localization_metrics

WORLD = 2


def _data() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    g = torch.Generator().manual_seed(3)
    target = torch.zeros(10, 1, 24, 24)
    for i in range(10):
        y, x = torch.randint(0, 16, (2,), generator=g).tolist()
        target[i, 0, y : y + 6 + i % 3, x : x + 5] = 1
    target[7] = 0  # an empty ground truth, counted separately
    preds = (0.5 * target + 0.5 * torch.rand(10, 1, 24, 24, generator=g)).clamp(0, 1)
    # rank 0 holds the only "HSynth" image, rank 1 the only "Hday2night" ones: names must be merged
    subsets = ["HCOCO", "HSynth", "HCOCO", "HFlickr", "HCOCO"]
    subsets += ["Hday2night", "HFlickr", "Hday2night", "HCOCO", "HFlickr"]
    return preds, target, subsets


def _single_process() -> tuple[dict, dict, int]:
    preds, target, subsets = _data()
    metrics = localization_metrics()
    per_subset = PerSubsetMetrics()
    metrics.update(preds, target)
    per_subset.update(preds, target, subsets)
    return {k: float(v) for k, v in metrics.compute().items()}, per_subset.compute(), int(metrics.empty_target)


def _worker(rank: int, init_file: str, out_file: str) -> None:
    torch.set_num_threads(1)  # forked from a process that used intra-op threads: stay serial
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        preds, target, subsets = _data()
        rows = [0, 1, 2, 3, 4] if rank == 0 else [5, 6, 7, 8, 9]
        metrics = localization_metrics()
        per_subset = PerSubsetMetrics()
        for i in rows[:2], rows[2:]:  # two batches of different sizes per rank
            metrics.update(preds[i], target[i])
            per_subset.update(preds[i], target[i], [subsets[j] for j in i])
        result = (
            {k: float(v) for k, v in metrics.compute().items()},
            per_subset.compute(),
            int(metrics.empty_target),
        )
        local = int(metrics.images)  # compute() restores the local (unsynced) state afterwards
        torch.save({"result": result, "local_images": local}, f"{out_file}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_sync_equals_single_process(tmp_path):
    expected_values, expected_subsets, expected_empty = _single_process()
    # fork: the children need not re-import torch (spawn costs seconds per process on a busy CI box)
    mp.start_processes(
        _worker, args=(str(tmp_path / "pg"), str(tmp_path / "out")), nprocs=WORLD, join=True, start_method="fork"
    )
    for rank in range(WORLD):
        saved = torch.load(tmp_path / f"out.{rank}", weights_only=False)
        values, per_subset, local_empty = saved["result"]
        assert expected_empty == 1 and local_empty == (0 if rank == 0 else 1)  # counts read unsynced
        assert saved["local_images"] == (5 if rank == 0 else 4)
        assert per_subset["All"]["empty_target"] == 1 and per_subset["All"]["images"] == 9  # synced
        for k, v in expected_values.items():
            assert math.isclose(values[k], v, abs_tol=1e-12), (rank, k)
        assert list(per_subset) == list(expected_subsets) == ["HCOCO", "HFlickr", "Hday2night", "HSynth", "All"]
        for subset, scores in expected_subsets.items():
            for k, v in scores.items():
                assert math.isclose(per_subset[subset][k], v, abs_tol=1e-12), (rank, subset, k)
