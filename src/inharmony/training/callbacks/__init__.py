"""Lightning callbacks: the papers' localization metrics, step-budget progress, CPU thread tuning.

Example:
    >>> from lightning.pytorch import Trainer
    >>> from inharmony.training.callbacks import LocalizationMetricsCallback
    >>> trainer = Trainer(callbacks=[LocalizationMetricsCallback()], logger=False)  # doctest: +SKIP
"""

from .metrics import LocalizationMetricsCallback
from .progress import StepBudgetProgress
from .threads import AdaptiveThreads

__all__ = ["AdaptiveThreads", "LocalizationMetricsCallback", "StepBudgetProgress"]
