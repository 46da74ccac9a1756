"""Facts shared across the package: input normalisation, the iHarmony4 subsets, the metric table.

Example:
    >>> from inharmony.constants import METRIC_SPECS
    >>> [spec.title for spec in METRIC_SPECS]
    ['AP (%)', 'F1', 'IoU (%)']
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALL_ROW",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "METRIC_NAMES",
    "METRIC_SPECS",
    "SUBSET_ORDER",
    "MetricSpec",
]

#: ImageNet statistics (RGB, 0–1 scale); both papers normalise their inputs with them.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: The iHarmony4 sub-datasets in the order of the papers' tables.
SUBSET_ORDER: tuple[str, ...] = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night")
#: Name of the row that averages over every image.
ALL_ROW = "All"


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is named and printed.

    Attributes:
        name: Key in result dicts (values are stored as fractions).
        title: Column title in tables.
        scale: Factor from the stored fraction to the papers' unit (100 for %).
        digits: Decimals printed in the papers' unit.
    """

    name: str
    title: str
    scale: float
    digits: int

    def format(self, value: float | None) -> str:
        """``value`` (a fraction) in the papers' unit, or ``"-"`` when missing or NaN."""
        if value is None or value != value:
            return "-"
        return f"{float(value) * self.scale:.{self.digits}f}"


#: The localization metrics of the papers: AP and IoU in %, F1 as a fraction.
METRIC_SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("ap", "AP (%)", 100.0, 2),
    MetricSpec("f1", "F1", 1.0, 4),
    MetricSpec("iou", "IoU (%)", 100.0, 2),
)
METRIC_NAMES: tuple[str, ...] = tuple(spec.name for spec in METRIC_SPECS)
