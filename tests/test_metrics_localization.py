"""The streaming metrics as torchmetrics Metrics: one vector state, per-subset rows, collections, devices."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics import Metric, MetricCollection

from inharmony.metrics import (
    LocalizationMetrics,
    PerImageAveragePrecision,
    PerImageF1Score,
    PerImageIoU,
    PerSubsetMetrics,
    localization_metrics,
    per_image_scores,
)

NAMES = ["HFlickr", "HSynth", "HCOCO", "HFlickr", "Hday2night", "HCOCO", "All", "HCOCO", "HSynth"]


def _data(n: int = 9, size: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.zeros(n, 1, size, size)
    for i in range(n):
        y, x = torch.randint(0, size - 8, (2,), generator=g).tolist()
        target[i, 0, y : y + 3 + i % 5, x : x + 4 + i % 3] = 1
    target[4] = 0  # one empty ground truth
    preds = (0.5 * target + 0.5 * torch.rand(n, 1, size, size, generator=g)).clamp(0, 1)
    return preds, target


def _reference(preds: torch.Tensor, target: torch.Tensor, rows: list[int]) -> dict[str, float]:
    """Means of the per-image scores, each image scored alone (batch of one)."""
    scored = [per_image_scores(preds[i : i + 1], target[i : i + 1]) for i in rows]
    scored = [s for s in scored if not math.isnan(float(s["ap"][0]))]
    if not scored:
        return {k: math.nan for k in ("ap", "f1", "iou")}
    return {k: sum(float(s[k][0]) for s in scored) / len(scored) for k in ("ap", "f1", "iou")}


def test_one_metric_with_a_vector_state():
    metrics = localization_metrics()
    assert isinstance(metrics, Metric) and type(metrics) is LocalizationMetrics
    state = metrics.metric_state
    assert sorted(state) == ["empty_target", "images", "sums"]
    assert state["sums"].shape == (3,) and state["sums"].dtype == torch.float64
    assert state["images"].shape == () and state["empty_target"].shape == ()


@pytest.mark.parametrize("batch", [1, 2, 4, 9])
def test_batch_size_invariance_against_per_image_reference(batch):
    preds, target = _data()
    expected = _reference(preds, target, list(range(len(preds))))
    metrics = LocalizationMetrics()
    for i in range(0, len(preds), batch):
        metrics.update(preds[i : i + batch], target[i : i + batch])
    values = metrics.compute()
    for k, v in expected.items():
        assert abs(float(values[k]) - v) < 1e-12
    assert int(metrics.images) == 8 and int(metrics.empty_target) == 1
    assert all(t.numel() <= 3 for t in metrics.metric_state.values())  # constant in the number of images


def test_specialisations_select_one_metric():
    preds, target = _data()
    together = localization_metrics()
    together.update(preds, target)
    values = together.compute()
    for cls, name in ((PerImageAveragePrecision, "ap"), (PerImageF1Score, "f1"), (PerImageIoU, "iou")):
        alone = cls()
        alone.update(preds, target)
        assert alone.metric_names == (name,) and alone.sums.shape == (1,)
        assert float(alone.compute()) == float(values[name])
    pair = LocalizationMetrics(metrics=("iou", "ap"), prefix="val/")
    pair.update(preds, target)
    assert list(pair.compute()) == ["val/iou", "val/ap"]
    assert float(pair.compute()["val/ap"]) == float(values["ap"])
    with pytest.raises(ValueError, match="subset of"):
        LocalizationMetrics(metrics=("ap", "dice"))
    with pytest.raises(ValueError, match=r"scores must be \(N, 3\)"):
        together.update(scores=torch.zeros(2, 2, dtype=torch.float64))


def test_forward_returns_the_batch_and_accumulates():
    preds, target = _data()
    metrics = LocalizationMetrics()
    first = metrics(preds[:4], target[:4])
    metrics(preds[4:], target[4:])
    for k, v in _reference(preds, target, [0, 1, 2, 3]).items():
        assert abs(float(first[k]) - v) < 1e-12
    for k, v in _reference(preds, target, list(range(9))).items():
        assert abs(float(metrics.compute()[k]) - v) < 1e-12


def _per_subset_reference(preds, target, names):
    expected = {}
    for subset in {*names} - {"All"}:
        expected[subset] = _reference(preds, target, [i for i, n in enumerate(names) if n == subset])
    expected["All"] = _reference(preds, target, list(range(len(names))))
    return expected


def _assert_results(results, expected):
    assert sorted(results) == sorted(expected)
    for subset, values in expected.items():
        for k, v in values.items():
            got = results[subset][k]
            assert (math.isnan(got) and math.isnan(v)) or abs(got - v) < 1e-12, (subset, k)


def test_per_subset_is_a_metric_with_rows_per_subset():
    preds, target = _data()
    per_subset = PerSubsetMetrics()
    assert isinstance(per_subset, Metric)
    per_subset.update(preds[:5], target[:5], NAMES[:5])
    per_subset.update(preds[5:], target[5:], NAMES[5:])
    results = per_subset.compute()
    assert list(results) == ["HCOCO", "HFlickr", "Hday2night", "HSynth", "All"]
    _assert_results(results, _per_subset_reference(preds, target, NAMES))
    assert results["Hday2night"]["images"] == 0 and results["Hday2night"]["empty_target"] == 1
    assert results["All"]["images"] == 8 and results["All"]["empty_target"] == 1
    # state: one row per name seen ("All" images have a row of their own, added to the total only)
    assert per_subset.sums.shape == (5, 3) and per_subset.images.shape == (5,)


def test_per_subset_reset_forward_and_to():
    preds, target = _data()
    per_subset = PerSubsetMetrics().to("cpu")
    per_subset.update(preds, target, ["HCOCO"] * 9)
    per_subset.reset()
    assert per_subset.sums.shape == (0, 3) and per_subset.subset_names.shape[0] == 0
    batch = per_subset(preds[:3], target[:3], NAMES[:3])
    _assert_results(batch, _per_subset_reference(preds[:3], target[:3], NAMES[:3]))
    batch = per_subset(preds[3:], target[3:], NAMES[3:])
    _assert_results(batch, _per_subset_reference(preds[3:], target[3:], NAMES[3:]))
    _assert_results(per_subset.compute(), _per_subset_reference(preds, target, NAMES))
    if torch.cuda.is_available():
        moved = per_subset.to("cuda")
        assert moved.sums.device.type == "cuda"
        _assert_results(moved.compute(), _per_subset_reference(preds, target, NAMES))


def test_per_subset_inside_a_metric_collection():
    preds, target = _data()
    collection = MetricCollection({"all": LocalizationMetrics(), "subsets": PerSubsetMetrics()})
    collection.update(preds[:4], target[:4], subsets=NAMES[:4])
    collection.update(preds[4:], target[4:], subsets=NAMES[4:])
    values = collection.compute()
    expected = _per_subset_reference(preds, target, NAMES)
    _assert_results({k: values[k] for k in expected}, expected)
    for k in ("ap", "f1", "iou"):
        assert abs(float(values[k]) - expected["All"][k]) < 1e-12
    collection.reset()
    collection.update(preds[:1], target[:1], subsets=["HAdobe5k"])
    assert "HCOCO" not in collection.compute() and "HAdobe5k" in collection.compute()


def test_per_subset_merge_state():
    preds, target = _data()
    a, b = PerSubsetMetrics(), PerSubsetMetrics()
    a.update(preds[:4], target[:4], NAMES[:4])
    b.update(preds[4:], target[4:], NAMES[4:])
    a.merge_state(b)
    _assert_results(a.compute(), _per_subset_reference(preds, target, NAMES))
    with pytest.raises(ValueError, match="expected a PerSubsetMetrics"):
        a.merge_state(LocalizationMetrics())


def test_unicode_and_dotted_subset_names():
    preds, target = _data()
    per_subset = PerSubsetMetrics()
    per_subset.update(preds[:3], target[:3], ["my.set", "Ünïcode", "my.set"])
    assert list(per_subset.compute()) == ["my.set", "Ünïcode", "All"]
