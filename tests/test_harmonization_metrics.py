"""Harmonization metrics (MSE, fMSE, PSNR of the iHarmony4 protocol) against a naive per-image loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

from inharmony.metrics import (
    HarmonizationMetrics,
    PerSubsetHarmonizationMetrics,
    format_results_table,
    harmonization_scores,
    results_to_markdown,
    write_results,
)
from inharmony.metrics.report import read_results_file


def naive(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> list[tuple[float, float, float]]:
    """One image at a time, in NumPy: 8-bit images as the papers save them, skimage's MSE and PSNR."""
    rows = []
    for p, r, m in zip(pred.numpy(), real.numpy(), mask.numpy(), strict=True):
        p8 = np.rint(np.clip(p, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
        r8 = np.rint(np.clip(r, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
        mse = mean_squared_error(r8.astype(np.float64), p8.astype(np.float64))
        fg = m[0] > 0.5
        diff = (p8.astype(np.float64) - r8.astype(np.float64)) ** 2
        fmse = diff[fg].mean() if fg.any() else math.nan  # mean over foreground pixels and channels
        psnr = min(peak_signal_noise_ratio(r8, p8, data_range=255), 100.0) if mse > 0 else 100.0
        rows.append((mse, fmse, psnr))
    return rows


def batch(seed: int, n: int = 5, size: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(n, 3, size, size + 3, generator=g)
    pred = (real + 0.2 * torch.randn(real.shape, generator=g)).clamp(-0.1, 1.1)  # out of range too: clamped
    mask = (torch.rand(n, 1, size, size + 3, generator=g) > 0.6).float()
    mask[0] = 0  # an empty foreground: no fMSE for this image
    pred[1] = real[1]  # an exact match: PSNR capped
    return pred, real, mask


def test_per_image_scores_match_a_naive_loop():
    pred, real, mask = batch(0)
    scores = harmonization_scores(pred, real, mask)
    for i, (mse, fmse, psnr) in enumerate(naive(pred, real, mask)):
        assert scores["mse"][i].item() == pytest.approx(mse, rel=1e-12)
        assert scores["psnr"][i].item() == pytest.approx(psnr, rel=1e-12)
        if math.isnan(fmse):
            assert math.isnan(scores["fmse"][i].item())
        else:
            assert scores["fmse"][i].item() == pytest.approx(fmse, rel=1e-12)


def test_metric_averages_over_images_across_batches():
    metric = HarmonizationMetrics(prefix="test/")
    rows = []
    for seed in (1, 2):
        pred, real, mask = batch(seed)
        metric.update(pred, real, mask)
        rows += naive(pred, real, mask)
    got = metric.compute()
    arr = np.array(rows)
    assert got["test/mse"].item() == pytest.approx(arr[:, 0].mean(), rel=1e-12)
    assert got["test/fmse"].item() == pytest.approx(np.nanmean(arr[:, 1]), rel=1e-12)  # empty foregrounds left out
    assert got["test/psnr"].item() == pytest.approx(arr[:, 2].mean(), rel=1e-12)
    assert int(metric.images) == 10 and int(metric.empty_target) == 2


def test_per_subset_table_and_result_files(tmp_path):
    metric = PerSubsetHarmonizationMetrics()
    pred, real, mask = batch(3, n=4)
    subsets = ["HFlickr", "HCOCO", "HFlickr", "HCOCO"]
    metric.update(pred[:2], real[:2], mask[:2], subsets[:2])
    metric.update(pred[2:], real[2:], mask[2:], subsets[2:])
    results = metric.compute()
    assert list(results) == ["HCOCO", "HFlickr", "All"]  # the papers' order, "All" last
    rows = naive(pred, real, mask)
    coco = [rows[i] for i in (1, 3)]
    assert results["HCOCO"]["mse"] == pytest.approx(np.mean([r[0] for r in coco]), rel=1e-12)
    assert results["All"]["psnr"] == pytest.approx(np.mean([r[2] for r in rows]), rel=1e-12)
    assert results["HFlickr"]["images"] == 2 and results["HFlickr"]["empty_target"] == 1
    header = format_results_table(results)[0]
    assert header == ["Subset", "Images", "MSE", "fMSE", "PSNR (dB)"]
    json_path, md_path = write_results(results, tmp_path)
    assert json.loads(json_path.read_text())["All"]["mse"] == pytest.approx(results["All"]["mse"])
    assert "| HCOCO | 2 |" in md_path.read_text()
    assert read_results_file(json_path)["All"]["fmse"] == pytest.approx(results["All"]["fmse"])


def test_table_with_both_kinds_of_metrics():
    merged = {"All": {"ap": 0.4377, "f1": 0.3029, "iou": 0.2236, "mse": 20.73, "fmse": 301.5, "psnr": 31.15}}
    table = results_to_markdown(merged)
    assert table.splitlines()[0] == "| Subset | Images | AP (%) | F1 | IoU (%) | MSE | fMSE | PSNR (dB) |"
    assert "| All | - | 43.77 | 0.3029 | 22.36 | 20.73 | 301.50 | 31.15 |" in table
    with pytest.raises(ValueError, match="out of range"):
        format_results_table({"All": {"mse": -1.0}})


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        harmonization_scores(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        harmonization_scores(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 5, 4))
