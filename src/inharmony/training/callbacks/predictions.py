"""Prediction pictures: ``image | ground truth | prediction`` panels, and a callback that saves them.

Example:
    >>> import torch
    >>> panel = prediction_panel(torch.zeros(3, 32, 32), torch.zeros(1, 32, 32), torch.ones(1, 32, 32))
    >>> panel.shape, panel.dtype
    ((32, 96, 3), dtype('uint8'))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from ...constants import IMAGENET_MEAN, IMAGENET_STD
from ...files import atomic_write

__all__ = ["PredictionMaskWriter", "SamplePredictionsCallback", "denormalize", "prediction_panel", "save_panel"]


def denormalize(
    image: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """An ImageNet-normalised ``(3, H, W)`` tensor back to an ``(H, W, 3)`` uint8 RGB array."""
    mean_t = torch.tensor(mean, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=image.dtype, device=image.device).view(3, 1, 1)
    rgb = (image.detach().float() * std_t + mean_t).clamp(0, 1)
    return (rgb.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def _gray(mask: torch.Tensor) -> np.ndarray:
    plane = mask.detach().float().reshape(mask.shape[-2:]).clamp(0, 1).cpu().numpy()
    return np.repeat((plane * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def prediction_panel(image: torch.Tensor, target: torch.Tensor, pred: torch.Tensor) -> np.ndarray:
    """Side by side: the composite, its ground-truth mask, the predicted mask (``H × 3W × 3`` uint8).

    Args:
        image: ImageNet-normalised ``(3, H, W)`` composite.
        target: ``(1, H, W)`` ground truth in {0, 1}.
        pred: ``(1, H, W)`` predicted probabilities in [0, 1].
    """
    return np.concatenate([denormalize(image), _gray(target), _gray(pred)], axis=1)


def save_panel(
    path: str | Path, image: torch.Tensor, target: torch.Tensor, pred: torch.Tensor, min_height: int = 0
) -> Path:
    """Write :func:`prediction_panel` as a PNG, enlarged (nearest, integer factor) to ``min_height``."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    panel = Image.fromarray(prediction_panel(image, target, pred))
    factor = max(1, -(-min_height // panel.height))
    if factor > 1:
        panel = panel.resize((panel.width * factor, panel.height * factor), Image.Resampling.NEAREST)
    _save_png(panel, path)
    return path


def _save_png(image: Any, path: Path) -> None:
    """A PIL image as PNG, atomically (never a partial file under ``path``)."""
    with atomic_write(path) as fh:
        image.save(fh, format="PNG")


class SamplePredictionsCallback(L.Callback):
    """Every ``every_n_steps`` training steps, save prediction panels for a few training images.

    The panels (one PNG per step, images stacked vertically) go to ``<log_dir>/samples/``, and to
    TensorBoard too when that is the logger.

    Args:
        every_n_steps: Period in optimizer steps; 0 turns the callback off.
        max_images: How many images of the current batch to draw.
    """

    def __init__(self, every_n_steps: int = 500, max_images: int = 4) -> None:
        if every_n_steps < 0 or max_images < 1:
            raise ValueError("every_n_steps must be >= 0 and max_images >= 1")
        self.every_n_steps = every_n_steps
        self.max_images = max_images

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if not self.every_n_steps or step % self.every_n_steps or not trainer.is_global_zero:
            return
        images = batch["image"][: self.max_images]
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            preds = pl_module(images)["mask"]
        pl_module.train(was_training)
        rows = [prediction_panel(i, t, p) for i, t, p in zip(images, batch["mask"], preds, strict=False)]
        grid = np.concatenate(rows, axis=0)
        from PIL import Image

        folder = Path(trainer.log_dir or trainer.default_root_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        _save_png(Image.fromarray(grid), folder / f"step_{step:07d}.png")
        experiment = getattr(trainer.logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            experiment.add_image("samples", grid, step, dataformats="HWC")


class PredictionMaskWriter(BasePredictionWriter):
    """Write each predicted mask (network resolution, 8-bit PNG) under ``out_dir``, mirroring the input paths.

    Used by ``inharmony predict --config ... --out DIR``; for masks at each image's own size use
    ``inharmony predict IMAGES --weights ...`` (:mod:`inharmony.inference`). Each mask is written
    atomically; a file that exists and was not written by this writer in this run (an input PNG when
    ``--out`` is the data root, an earlier run's mask) is never replaced unless ``overwrite``: the
    prediction stops with :class:`~inharmony.errors.OutputExistsError` naming it.

    Args:
        out_dir: Output folder.
        overwrite: Replace existing files (never one written earlier in this run for another input).
    """

    def __init__(self, out_dir: str | Path, overwrite: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.overwrite = overwrite
        self._written: dict[Path, str] = {}

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        from PIL import Image

        from ...errors import OutputExistsError

        for mask, path in zip(prediction["mask"], prediction["path"], strict=True):
            target = (self.out_dir / path).with_suffix(".png")
            earlier = self._written.get(target)
            if earlier is not None and earlier != str(path):
                raise OutputExistsError(f"{path} and {earlier} both map to {target}; rename one of them")
            if earlier is None and target.exists() and not self.overwrite:
                raise OutputExistsError(
                    f"{target} exists and was not written by this run (an input, or an earlier run's mask); "
                    "nothing replaced it. Choose another --out, or remove it."
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            _save_png(Image.fromarray(_gray(mask)[..., 0]), target)
            self._written[target] = str(path)
