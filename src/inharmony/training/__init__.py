"""The training system: the LightningModules, checkpointing that never loses work, and callbacks.

Everything here builds on Lightning; the networks themselves (:mod:`inharmony.models`) do not.

- :mod:`.localization`: :class:`LocalizationTask`, trains and evaluates every localizer.
- :mod:`.harmonization`: :class:`HarmonizationTask`, the same for harmonizers (S2AM).
- :mod:`._base`: :class:`TaskBase`, what both share (network, loss, optimizers, evaluation loop, checkpoints);
  each task names its metrics callback (``metrics_callback``) and the metric that picks its best checkpoint
  (``monitor``).
- :mod:`.checkpointing`: atomic checkpoints, ``last.ckpt``, safe resume.
- :mod:`.callbacks`: the papers' metrics, progress, CPU threads, prediction pictures.

Example:
    >>> from inharmony.models import create_model
    >>> from inharmony.training import LocalizationTask
    >>> task = LocalizationTask(create_model("dirl_tiny"))
    >>> task.metrics_callback.__name__, task.monitor
    ('LocalizationMetricsCallback', 'val/iou')
"""

from ._base import TaskBase
from .harmonization import HarmonizationTask
from .localization import LocalizationTask

__all__ = ["HarmonizationTask", "LocalizationTask", "TaskBase"]
