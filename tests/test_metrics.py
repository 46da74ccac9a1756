"""Metrics against independent references: scikit-learn AP and F1/IoU written here in NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from inharmony.metrics import (
    LocalizationMetrics,
    PerImageAveragePrecision,
    PerSubsetMetrics,
    average_precision_per_image,
    format_results_table,
    localization_metrics,
    per_image_scores,
    results_to_markdown,
)

# ---------------------------------------------------------------------------------------------
# Reference: the authors' per-image procedure, re-stated with NumPy and scikit-learn
# ---------------------------------------------------------------------------------------------


def ref_normalise(p: np.ndarray) -> np.ndarray:
    p = p.astype(np.float32)
    lo, hi = p.min(), p.max()
    return p - lo if hi - lo < np.float32(0.01) else (p - lo) / (hi - lo)


def ref_scores(pred: np.ndarray, gt: np.ndarray, protocol: str = "official", thr: float = 0.5):
    """AP, F1, IoU of one image (H, W) as the official evaluation computes them."""
    p = ref_normalise(pred) if protocol == "official" else pred.astype(np.float32)
    g = (gt > 0.5).astype(np.float64)
    ap = average_precision_score(g.ravel(), p.ravel())
    b = (p > thr).astype(np.float64)
    tp = (b * g).sum()
    prec, rec = tp / (b.sum() + 1e-6), tp / (g.sum() + 1e-6)
    f1 = 2 * prec * rec / (prec + rec + 1e-6)
    iou = tp / (b.sum() + g.sum() - tp + 1e-6)
    return ap, f1, iou


def ref_mean(preds: torch.Tensor, target: torch.Tensor, protocol: str = "official") -> np.ndarray:
    rows = [ref_scores(p[0].numpy(), t[0].numpy(), protocol) for p, t in zip(preds, target, strict=True)]
    return np.mean(rows, axis=0)


def blobs(n: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Structured masks (rectangles and discs) and noisy, blurred predictions of them."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    target = torch.zeros(n, 1, h, w)
    for i in range(n):
        cy, cx = torch.randint(0, h, (1,), generator=g).item(), torch.randint(0, w, (1,), generator=g).item()
        r = 2 + torch.randint(0, max(3, min(h, w) // 3), (1,), generator=g).item()
        if i % 2:
            target[i, 0] = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).float()
        else:
            target[i, 0, max(0, cy - r) : cy + r, max(0, cx - r) : cx + 2 * r] = 1
    noise = torch.rand(n, 1, h, w, generator=g)
    preds = (0.6 * torch.nn.functional.avg_pool2d(target, 5, 1, 2) + 0.4 * noise).clamp(0, 1)
    return preds, target


def random_case(n: int, h: int, w: int, seed: int, levels: int | None = None):
    g = torch.Generator().manual_seed(seed)
    preds = torch.rand(n, 1, h, w, generator=g)
    if levels:  # many ties
        preds = torch.round(preds * levels) / levels
    target = (torch.rand(n, 1, h, w, generator=g) < 0.3).float()
    return preds, target


CASES = {
    "random": random_case(5, 32, 32, 0),
    "ties": random_case(5, 24, 40, 1, levels=7),
    "heavy_ties": random_case(4, 16, 16, 2, levels=2),
    "odd_size": random_case(3, 37, 53, 3),
    "blobs": blobs(6, 48, 64, 4),
    "blobs_odd": blobs(5, 33, 29, 5),
}


# ---------------------------------------------------------------------------------------------
# Agreement with the references
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("protocol", ["official", "raw"])
def test_per_image_scores_match_reference(case, protocol):
    preds, target = CASES[case]
    ours = per_image_scores(preds, target, protocol)
    for i in range(preds.shape[0]):
        ap, f1, iou = ref_scores(preds[i, 0].numpy(), target[i, 0].numpy(), protocol)
        assert abs(float(ours["ap"][i]) - ap) < 1e-6
        assert abs(float(ours["f1"][i]) - f1) < 1e-6
        assert abs(float(ours["iou"][i]) - iou) < 1e-6


@pytest.mark.parametrize("case", sorted(CASES))
def test_collection_means_match_reference(case):
    preds, target = CASES[case]
    metrics = localization_metrics()
    metrics.update(preds, target)
    values = metrics.compute()
    expected = ref_mean(preds, target)
    for k, name in enumerate(["ap", "f1", "iou"]):
        assert abs(float(values[name]) - expected[k]) < 1e-6


def test_ap_kernel_ties_exhaustive_small():
    # Every labelling of 6 pixels with 3 score levels: the tie handling must equal scikit-learn's.
    g = torch.Generator().manual_seed(7)
    scores = torch.randint(0, 3, (64, 6), generator=g).float() / 2
    labels = torch.tensor([[(m >> b) & 1 for b in range(6)] for m in range(64)], dtype=torch.bool)
    ours = average_precision_per_image(scores, labels)
    for i in range(1, 64):  # row 0 has no positive
        ref = average_precision_score(labels[i].numpy(), scores[i].numpy())
        assert abs(float(ours[i]) - ref) < 1e-12
    assert math.isnan(float(ours[0]))


def test_ap_kernel_chunked_equals_unchunked(monkeypatch):
    import inharmony.metrics.functional as m

    scores, labels = torch.rand(9, 500), torch.rand(9, 500) < 0.4
    whole = average_precision_per_image(scores, labels)
    monkeypatch.setattr(m, "_AP_CHUNK_PIXELS", 1000)  # two rows per chunk
    assert torch.equal(average_precision_per_image(scores, labels), whole)


def test_cpu_kernel_chunks_buffers_and_the_tensor_kernel_agree(monkeypatch):
    # The CPU path (a radix sort per row, chunks of rows, buffers kept between calls) against the
    # batched tensor path used on GPUs and against scikit-learn, with many ties and several sizes.
    import inharmony.metrics.functional as m

    g = torch.Generator().manual_seed(11)
    scores = (torch.randint(0, 40, (7, 300), generator=g).float() / 39).clamp(0, 1)
    labels = torch.rand(7, 300, generator=g) < 0.3
    labels[2] = False  # no positive: NaN
    batched = m._average_precision_rows_batched(scores, labels)
    whole = average_precision_per_image(scores, labels)
    monkeypatch.setattr(m, "_CPU_CHUNK_PIXELS", 600)  # two rows per chunk
    chunked = average_precision_per_image(scores, labels)
    assert torch.equal(chunked.nan_to_num(-1), whole.nan_to_num(-1))
    assert torch.allclose(whole, batched, atol=1e-12, equal_nan=True)
    for i in (0, 1, 3, 6):
        ref = average_precision_score(labels[i].numpy(), scores[i].numpy())
        assert abs(float(whole[i]) - ref) < 1e-12
    assert math.isnan(float(whole[2]))
    # a different row length after the buffers were kept for 300 pixels
    small = average_precision_per_image(scores[:, :50], labels[:, :50])
    assert abs(float(small[0]) - average_precision_score(labels[0, :50].numpy(), scores[0, :50].numpy())) < 1e-12


@pytest.mark.parametrize("target_dtype", [torch.bool, torch.float32, torch.int64, torch.float16])
def test_cpu_numpy_path_equals_the_tensor_path_of_gpus(target_dtype):
    # The CPU path checks, normalises and keys with NumPy; GPUs take torch's normalize_per_image and the
    # batched tensor kernel. Same values: ties after normalisation, a row whose range is under the
    # official 0.01 (only shifted), a constant row, -0.0, values on the threshold.
    import inharmony.metrics.functional as m

    g = torch.Generator().manual_seed(3)
    preds = (torch.randint(0, 21, (6, 1, 12, 12), generator=g).float() / 20).clamp(0, 1)
    preds[1] = 0.4 + preds[1] * 0.009  # span < 0.01
    preds[2] = 0.25  # constant
    preds[3, 0, 0, :4] = -0.0
    preds[4] = torch.rand(1, 12, 12, generator=g) * 0.3 + 0.1
    target = torch.rand(6, 1, 12, 12, generator=g) < 0.35
    target[5] = False  # empty ground truth: NaN
    ours = per_image_scores(preds, target.to(target_dtype))
    flat, labels = preds.flatten(1), target.flatten(1)
    normalised = m.normalize_per_image(flat)
    expected_ap = m._average_precision_rows_batched(normalised, labels)
    binary = normalised > 0.5
    assert torch.allclose(ours["ap"], expected_ap, atol=1e-12, rtol=0, equal_nan=True)
    assert torch.equal(ours["f1"].nan_to_num(-1), m.f1_per_image(binary, labels).masked_fill(~labels.any(1), -1))
    assert torch.equal(ours["iou"].nan_to_num(-1), m.iou_per_image(binary, labels).masked_fill(~labels.any(1), -1))
    for i in range(5):
        ref = average_precision_score(labels[i].numpy(), normalised[i].numpy())
        assert abs(float(ours["ap"][i]) - ref) < 1e-12


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7])
def test_f1_iou_counts_at_any_threshold_equal_the_float32_comparison(threshold):
    # F1/IoU counts come from the sorted keys on CPU: compare with torch's own `preds > threshold`.
    g = torch.Generator().manual_seed(5)
    preds = (torch.randint(0, 11, (4, 1, 16, 16), generator=g).float() / 10).clamp(0, 1)  # values on the threshold
    target = (torch.rand(4, 1, 16, 16, generator=g) < 0.4).float()
    ours = per_image_scores(preds, target, protocol="raw", threshold=threshold)
    alone = per_image_scores(preds, target, protocol="raw", threshold=threshold, metrics=("f1", "iou"))  # no sort
    binary, truth = (preds > threshold).flatten(1), target.flatten(1) > 0.5
    tp = (binary & truth).sum(1).double()
    iou = tp / (binary.sum(1) + truth.sum(1) - tp + 1e-6)
    assert torch.allclose(ours["iou"], iou, atol=0, rtol=0) and torch.equal(ours["f1"], alone["f1"])


def test_minus_zero_and_extremes_are_ordinary_scores():
    scores = torch.tensor([[-0.0, 0.0, 1.0, 1e-30, 0.5]])
    labels = torch.tensor([[True, False, True, False, False]])
    ref = average_precision_score(labels[0].numpy(), np.abs(scores[0].numpy()))
    assert abs(float(average_precision_per_image(scores, labels)[0]) - ref) < 1e-12


def test_half_precision_predictions_are_scored_as_float32():
    preds, target = CASES["blobs"]
    half = preds.to(torch.bfloat16)
    ours = per_image_scores(half, target)
    ref = [ref_scores(p[0].float().numpy(), t[0].numpy()) for p, t in zip(half, target, strict=True)]
    assert np.allclose(ours["ap"].numpy(), [r[0] for r in ref], atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Streaming: batch-size invariance, reset, no state shared between metrics
# ---------------------------------------------------------------------------------------------


def test_batch_size_invariance():
    preds = torch.cat([CASES["blobs"][0][:, :, :32, :32], CASES["random"][0][:, :, :32, :32]])
    target = torch.cat([CASES["blobs"][1][:, :, :32, :32], CASES["random"][1][:, :, :32, :32]])
    target[3] = 0  # at least one empty ground truth in the mix
    empty = int((target.flatten(1).amax(1) == 0).sum())
    assert 1 <= empty < len(target)
    results = []
    for batch in (1, 3, 7):
        metrics = localization_metrics()
        for i in range(0, len(preds), batch):
            metrics.update(preds[i : i + batch], target[i : i + batch])
        results.append({k: float(v) for k, v in metrics.compute().items()})
        assert int(metrics.images) == len(preds) - empty
        assert int(metrics.empty_target) == empty
    for other in results[1:]:
        for k in results[0]:
            assert abs(results[0][k] - other[k]) < 1e-12


def test_reset_forgets_everything():
    preds, target = CASES["random"]
    metrics = localization_metrics()
    metrics.update(torch.zeros_like(preds), target)
    metrics.reset()
    metrics.update(preds, target)
    assert abs(float(metrics.compute()["ap"]) - ref_mean(preds, target)[0]) < 1e-6


def test_metrics_are_not_merged_when_first_values_coincide():
    # A first batch where AP = F1 = IoU = 1 must not make torchmetrics share one state for all three.
    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:12, 4:12] = 1
    preds, _ = CASES["random"]
    metrics = localization_metrics()
    metrics.update(target, target)
    metrics.update(preds[:2, :, :16, :16], target)
    values = metrics.compute()
    assert len({round(float(v), 8) for v in values.values()}) == 3


# ---------------------------------------------------------------------------------------------
# Edge cases (rules documented in inharmony.metrics)
# ---------------------------------------------------------------------------------------------


def test_empty_ground_truth_is_skipped_and_counted():
    preds, target = CASES["blobs"]
    target = target.clone()
    target[1] = 0
    scores = per_image_scores(preds, target)
    assert all(math.isnan(float(scores[k][1])) for k in ("ap", "f1", "iou"))
    metrics = localization_metrics()
    metrics.update(preds, target)
    keep = [0, 2, 3, 4, 5]
    expected = ref_mean(preds[keep], target[keep])
    for k, name in enumerate(["ap", "f1", "iou"]):
        assert abs(float(metrics.compute()[name]) - expected[k]) < 1e-6
        assert int(metrics.empty_target) == 1 and int(metrics.images) == 5


def test_only_empty_ground_truth_gives_nan():
    metrics = localization_metrics()
    metrics.update(torch.rand(2, 1, 8, 8), torch.zeros(2, 1, 8, 8))
    assert all(math.isnan(float(v)) for v in metrics.compute().values())


def test_constant_prediction():
    target = torch.zeros(1, 1, 10, 10)
    target[..., :3, :5] = 1  # 15 % foreground
    official = per_image_scores(torch.full_like(target, 0.8), target)
    assert abs(float(official["ap"][0]) - 0.15) < 1e-12  # one tied threshold: precision = fraction
    assert float(official["f1"][0]) == 0.0 and float(official["iou"][0]) == 0.0  # normalised to 0
    raw = per_image_scores(torch.full_like(target, 0.8), target, protocol="raw")
    _, f1, iou = ref_scores(np.full((10, 10), 0.8, np.float32), target[0, 0].numpy(), "raw")
    assert abs(float(raw["f1"][0]) - f1) < 1e-9 and abs(float(raw["iou"][0]) - iou) < 1e-9
    assert abs(float(raw["iou"][0]) - 0.15) < 1e-6


def test_nearly_constant_prediction_only_subtracts_min():
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4, :4] = 1
    preds = 0.6 + 0.005 * target  # range 0.005 < 0.01: shifted, not stretched → nothing above 0.5
    scores = per_image_scores(preds, target)
    assert float(scores["f1"][0]) == 0.0
    assert abs(float(scores["ap"][0]) - 1.0) < 1e-12
    stretched = per_image_scores(0.6 + 0.02 * target, target)  # range 0.02: stretched to [0, 1]
    assert abs(float(stretched["f1"][0]) - 1.0) < 1e-5


def test_all_foreground_ground_truth():
    preds = torch.rand(1, 1, 12, 12)
    scores = per_image_scores(preds, torch.ones(1, 1, 12, 12))
    assert float(scores["ap"][0]) == 1.0
    frac = float((ref_normalise(preds[0, 0].numpy()) > 0.5).mean())
    assert abs(float(scores["iou"][0]) - frac) < 1e-5


def test_non_binary_target_is_binarised_at_half():
    preds, target = CASES["blobs"]
    soft = torch.nn.functional.avg_pool2d(target, 3, 1, 1)  # values in [0, 1]
    ours = per_image_scores(preds, soft)
    hard = per_image_scores(preds, (soft > 0.5).float())
    for k in ours:
        assert torch.equal(ours[k], hard[k])
    assert torch.equal(per_image_scores(preds, target.bool())["ap"], per_image_scores(preds, target)["ap"])
    assert torch.equal(per_image_scores(preds, target.long())["ap"], per_image_scores(preds, target)["ap"])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_inf_prediction_is_a_clear_error(bad):
    preds, target = random_case(3, 8, 8, 0)
    preds[2, 0, 1, 1] = bad
    with pytest.raises(ValueError, match=r"NaN .* inf values \(images \[2\]"):
        localization_metrics().update(preds, target)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"preds \(2, 1, 8, 8\) and target \(2, 1, 16, 16\)"):
        localization_metrics().update(torch.rand(2, 1, 8, 8), torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        per_image_scores(torch.rand(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))


def test_other_bad_inputs():
    preds, target = random_case(2, 8, 8, 0)
    with pytest.raises(ValueError, match="sigmoid"):
        per_image_scores(preds * 4 - 2, target)  # logits
    with pytest.raises(ValueError, match="255"):
        per_image_scores(preds, target * 255)
    with pytest.raises(ValueError, match="float probabilities"):
        per_image_scores((preds > 0.5).long(), target)
    with pytest.raises(ValueError, match="protocol"):
        localization_metrics(protocol="pooled")
    with pytest.raises(TypeError):
        per_image_scores(preds.numpy(), target)


def test_three_dimensional_masks_and_empty_batch():
    preds, target = CASES["random"]
    a = per_image_scores(preds[:, 0], target[:, 0])
    b = per_image_scores(preds, target)
    assert torch.equal(a["ap"], b["ap"])
    empty = per_image_scores(torch.zeros(0, 1, 8, 8), torch.zeros(0, 1, 8, 8))
    assert all(v.shape == (0,) for v in empty.values())


def test_metric_class_alone():
    preds, target = CASES["ties"]
    metric = PerImageAveragePrecision(protocol="raw")
    metric.update(preds, target)
    assert abs(float(metric.compute()) - ref_mean(preds, target, "raw")[0]) < 1e-6


# ---------------------------------------------------------------------------------------------
# Per-subset results and tables
# ---------------------------------------------------------------------------------------------


def test_per_subset_metrics_match_subsets_scored_alone():
    preds, target = CASES["blobs"]
    names = ["HFlickr", "HSynth", "HCOCO", "HFlickr", "Hday2night", "HCOCO"]
    per_subset = PerSubsetMetrics()
    per_subset.update(preds[:4], target[:4], names[:4])
    per_subset.update(preds[4:], target[4:], names[4:])
    results = per_subset.compute()
    assert list(results) == ["HCOCO", "HFlickr", "Hday2night", "HSynth", "All"]
    for subset in results:
        rows = [i for i, n in enumerate(names) if subset in ("All", n)]
        expected = ref_mean(preds[rows], target[rows])
        assert results[subset]["images"] == len(rows)
        for k, name in enumerate(["ap", "f1", "iou"]):
            assert abs(results[subset][name] - expected[k]) < 1e-6


def test_per_subset_bad_subset_list_and_reset():
    preds, target = CASES["random"]
    per_subset = PerSubsetMetrics()
    with pytest.raises(ValueError, match="one name per image"):
        per_subset.update(preds, target, ["HCOCO"])
    with pytest.raises(ValueError, match="one name per image"):
        per_subset.update(preds, target, "HCOCO")
    per_subset.update(preds, target, ["HCOCO"] * len(preds))
    per_subset.reset()
    per_subset.update(preds[:1], target[:1], ["HAdobe5k"])
    assert list(per_subset.compute()) == ["HAdobe5k", "All"]


def test_results_table_units():
    results = {
        "HCOCO": {"ap": 0.81234, "f1": 0.7, "iou": 0.6, "images": 4256.0},
        "All": {"ap": 0.8002, "f1": 0.7317, "iou": 0.6785, "images": 7237.0},
    }
    rows = format_results_table(results)
    assert rows[0] == ["Subset", "Images", "AP (%)", "F1", "IoU (%)"]
    assert rows[1] == ["HCOCO", "4256", "81.23", "0.7000", "60.00"]
    assert rows[2] == ["All", "7237", "80.02", "0.7317", "67.85"]
    md = results_to_markdown(results).splitlines()
    assert md[0].startswith("| Subset |") and md[-1] == "| All | 7237 | 80.02 | 0.7317 | 67.85 |"
    assert format_results_table({"All": {"ap": math.nan, "f1": math.nan, "iou": math.nan}})[1][2] == "-"


def test_collection_forward_prefix_and_precomputed_scores():
    preds, target = CASES["blobs"]
    expected = ref_mean(preds, target)
    metrics = localization_metrics()
    batch_values = metrics(preds, target)  # Metric.forward: batch value and accumulation
    for k, name in enumerate(["ap", "f1", "iou"]):
        assert abs(float(batch_values[name]) - expected[k]) < 1e-6
        assert abs(float(metrics.compute()[name]) - expected[k]) < 1e-6
    prefixed = LocalizationMetrics(prefix="val/")
    prefixed.update(preds, target)
    assert sorted(prefixed.compute()) == ["val/ap", "val/f1", "val/iou"]
    metric = PerImageAveragePrecision()
    metric.update(scores=torch.tensor([0.5, math.nan, 1.0], dtype=torch.float64))
    assert float(metric.compute()) == 0.75 and int(metric.empty_target) == 1
    with pytest.raises(TypeError, match="needs preds and target"):
        metric.update(preds)


def test_nan_target_is_a_clear_error():
    preds, target = random_case(2, 8, 8, 0)
    target[1, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="target contains NaN"):
        per_image_scores(preds, target)
    target[1, 0, 0, 0] = math.inf
    with pytest.raises(ValueError, match=r"target must hold values in \[0, 1\]"):
        per_image_scores(preds, target)


def test_buffers_first_made_under_inference_mode_serve_later_calls_outside_it():
    # The CPU kernel keeps its sort buffers between calls; made under inference_mode (a test loop),
    # they must still be writable by a training-time update afterwards.
    import inharmony.metrics.functional as m

    m._BUFFERS.__dict__.clear()
    preds, target = torch.rand(2, 1, 24, 24), (torch.rand(2, 1, 24, 24) > 0.5).float()
    with torch.inference_mode():
        first = per_image_scores(preds, target)
    again = per_image_scores(preds, target)
    assert torch.equal(first["ap"], again["ap"])
