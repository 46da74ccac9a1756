"""Lightning callbacks: the papers' metrics (localization, harmonization), step-budget progress, CPU threads.

Example:
    >>> from lightning.pytorch import Trainer
    >>> from inharmony.training.callbacks import LocalizationMetricsCallback
    >>> trainer = Trainer(callbacks=[LocalizationMetricsCallback()], logger=False)  # doctest: +SKIP
"""

from .metrics import HarmonizationMetricsCallback, LocalizationMetricsCallback
from .progress import StepBudgetProgress
from .threads import AdaptiveThreads

__all__ = ["AdaptiveThreads", "HarmonizationMetricsCallback", "LocalizationMetricsCallback", "StepBudgetProgress"]
