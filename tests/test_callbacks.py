"""LocalizationMetricsCallback in a real Trainer: logged values equal the metrics on the same outputs."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader, Dataset

from inharmony.metrics import PerSubsetMetrics, localization_metrics
from inharmony.training.callbacks import LocalizationMetricsCallback

SUBSETS = ["HCOCO", "HFlickr", "HSynth"]


class _Masks(Dataset):
    def __init__(self, n: int = 7, size: int = 32) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, size, size, generator=g)
        self.masks = torch.zeros(n, 1, size, size)
        for i in range(n):
            self.masks[i, 0, 4 + i : 16 + i, 6 : 14 + 2 * i] = 1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "mask": self.masks[i], "subset": SUBSETS[i % 3]}


class _TinyModule(LightningModule):
    def __init__(self, returns: str = "dict") -> None:
        super().__init__()
        self.net = torch.nn.Conv2d(3, 1, 3, padding=1)
        self.returns = returns
        self.seen: list[tuple[torch.Tensor, torch.Tensor, list[str]]] = []

    def _step(self, batch: dict) -> dict | None:
        mask = torch.sigmoid(self.net(batch["image"]) + 3 * batch["mask"] - 1.5)
        self.seen.append((mask.detach().clone(), batch["mask"].clone(), list(batch["subset"])))
        if self.returns == "none":
            return None
        return {"mask": mask, "target": batch["mask"], "subset": batch["subset"]}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy(torch.sigmoid(self.net(batch["image"])), batch["mask"])

    def validation_step(self, batch: dict, batch_idx: int) -> dict | None:
        return self._step(batch)

    def test_step(self, batch: dict, batch_idx: int) -> dict | None:
        return self._step(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _trainer(callback: LocalizationMetricsCallback, tmp_path) -> Trainer:
    return Trainer(
        callbacks=[callback],
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )


def _loader() -> DataLoader:
    return DataLoader(_Masks(), batch_size=3)


def test_validation_logs_the_metrics_of_the_returned_outputs(tmp_path):
    callback = LocalizationMetricsCallback()
    module = _TinyModule()
    trainer = _trainer(callback, tmp_path)
    trainer.validate(module, dataloaders=_loader(), verbose=False)
    expected = localization_metrics()
    for mask, target, _ in module.seen:
        expected.update(mask, target)
    values = expected.compute()
    assert len(module.seen) == 3  # 7 images in batches of 3
    for name in ("ap", "f1", "iou"):
        assert math.isclose(float(trainer.callback_metrics[f"val/{name}"]), float(values[name]), abs_tol=1e-6)
    # a second run starts from zero (no state carried over from the first)
    module.seen.clear()
    trainer.validate(module, dataloaders=_loader(), verbose=False)
    assert math.isclose(float(trainer.callback_metrics["val/ap"]), float(values["ap"]), abs_tol=1e-6)


def test_test_logs_per_subset_keys_and_keeps_results(tmp_path):
    callback = LocalizationMetricsCallback()
    module = _TinyModule()
    trainer = _trainer(callback, tmp_path)
    trainer.test(module, dataloaders=_loader(), verbose=False)
    expected = PerSubsetMetrics()
    for mask, target, subsets in module.seen:
        expected.update(mask, target, subsets)
    want = expected.compute()
    assert list(callback.test_results) == ["HCOCO", "HFlickr", "HSynth", "All"]
    for subset, scores in want.items():
        prefix = "test" if subset == "All" else f"test/{subset}"
        for name in ("ap", "f1", "iou"):
            assert math.isclose(callback.test_results[subset][name], scores[name], abs_tol=1e-12)
            assert math.isclose(float(trainer.callback_metrics[f"{prefix}/{name}"]), scores[name], abs_tol=1e-6)
    assert callback.test_results["All"]["images"] == 7
    assert "| HSynth | 2 |" in callback.test_table


def test_step_without_outputs_is_a_clear_error(tmp_path):
    trainer = _trainer(LocalizationMetricsCallback(), tmp_path)
    with pytest.raises(ValueError, match="validation_step to return a dict with 'mask'"):
        trainer.validate(_TinyModule(returns="none"), dataloaders=_loader(), verbose=False)


def test_callback_holds_no_pixels_between_batches(tmp_path):
    shapes = []
    for n in (7, 14):  # twice the images: the same state
        callback = LocalizationMetricsCallback()
        trainer = _trainer(callback, tmp_path)
        trainer.test(_TinyModule(), dataloaders=DataLoader(_Masks(n), batch_size=3), verbose=False)
        assert callback.test_results["All"]["images"] == n
        metrics = [callback.test_metrics, callback.val_metrics]
        shapes.append({f"{i}.{k}": tuple(v.shape) for i, m in enumerate(metrics) for k, v in m.metric_state.items()})
        # sums of ap/f1/iou and counts: no per-pixel or per-image storage; one row per subset (HCOCO,
        # HFlickr, HSynth; "All" is their sum) on test, one vector on validation
        assert callback.test_metrics.sums.shape == (3, 3) and callback.test_metrics.subset_names.shape[0] == 3
        assert callback.val_metrics.sums.shape == (3,)
        assert max(v.numel() for m in metrics for k, v in m.metric_state.items() if k != "subset_names") <= 3 * 3
    assert shapes[0] == shapes[1]


def test_nothing_scorable_logs_nothing(tmp_path):
    class _Empty(_Masks):
        def __getitem__(self, i: int) -> dict:
            item = super().__getitem__(i)
            return {**item, "mask": torch.zeros_like(item["mask"])}

    trainer = _trainer(LocalizationMetricsCallback(), tmp_path)
    trainer.validate(_TinyModule(), dataloaders=DataLoader(_Empty(), batch_size=4), verbose=False)
    assert not any(k.startswith("val/") for k in trainer.callback_metrics)


def test_several_outputs_give_one_table_each(tmp_path):
    # A module naming its scored outputs (eval_outputs) and returning them under "masks".
    class _TwoOutputs(_TinyModule):
        eval_outputs = ("mask", "flipped")

        def _step(self, batch: dict) -> dict:
            out = super()._step(batch)
            out["masks"] = {"mask": out["mask"], "flipped": out["mask"].flip(-1)}
            return out

    callback = LocalizationMetricsCallback()
    module = _TwoOutputs()
    trainer = _trainer(callback, tmp_path)
    trainer.test(module, dataloaders=_loader(), verbose=False)
    expected = {"mask": PerSubsetMetrics(), "flipped": PerSubsetMetrics()}
    for mask, target, subsets in module.seen:
        expected["mask"].update(mask, target, subsets)
        expected["flipped"].update(mask.flip(-1), target, subsets)
    assert list(callback.results_by_output) == ["mask", "flipped"]
    for name, metrics in expected.items():
        want = metrics.compute()
        for subset, scores in want.items():
            assert math.isclose(callback.results_by_output[name][subset]["iou"], scores["iou"], abs_tol=1e-12)
    assert callback.test_results == callback.results_by_output["mask"]
    assert math.isclose(float(trainer.callback_metrics["test/flipped/iou"]), want["All"]["iou"], abs_tol=1e-6)
    assert "test/flipped/HCOCO/ap" in trainer.callback_metrics and "test/mask/ap" not in trainer.callback_metrics
