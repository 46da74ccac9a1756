"""The ``README.md`` model card of the Hub format, written next to the weights by ``save_pretrained``.

The card is plain Markdown with the Hub's YAML metadata header. It is generated from the
model's registry config (paper, licence, reference scores) and the metrics the publisher gives,
so it needs no template engine. Score tables are rendered by :mod:`inharmony.metrics.report`, like
every other results table: ``inharmony.metrics`` imports its torchmetrics classes only on first
access, so the card needs torch, numpy, huggingface_hub (when rendering) and the standard library,
and saving a model works without torchmetrics or lightning. The Hub format imports this module only
when it writes a card, so building or loading a model never imports the metrics package.

Example:
    >>> normalise_metrics({"ap": 0.8})
    {'All': {'ap': 80.0}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..constants import METRIC_SPECS, SUBSET_ORDER
from ..metrics.report import Results, normalise_results, read_results_file, results_to_markdown
from ._registry import reference_scores_text

__all__ = ["METRIC_COLUMNS", "SUBSET_ORDER", "normalise_metrics", "read_metrics_file", "render_model_card"]

#: Deprecated: ``(key, column title, scale to paper units)``; use :data:`inharmony.constants.METRIC_SPECS`.
METRIC_COLUMNS = tuple((spec.name, spec.title, spec.scale) for spec in METRIC_SPECS)


def normalise_metrics(metrics: Results | None) -> dict[str, dict[str, float]]:
    """Bring the metric layouts found in practice to ``{subset: {"ap", "f1", "iou"}}`` in paper units.

    Accepts every layout of :func:`inharmony.metrics.report.normalise_results` (flat, per subset,
    Lightning's ``test/...`` keys, a list of dicts), with its unit rule: AP and IoU up to 1 are
    fractions and become %, above 1 they are already in %. Missing values (``None``, NaN) and counts
    are dropped; values are rounded to 4 decimals.

    Example:
        >>> normalise_metrics({"test/ap": 0.8, "test/f1": 0.73, "test/iou": 0.68})
        {'All': {'ap': 80.0, 'f1': 0.73, 'iou': 68.0}}
    """
    table = {}
    for subset, values in normalise_results(metrics).items():
        row = {
            spec.name: round(values[spec.name] * spec.scale, 4)
            for spec in METRIC_SPECS
            if not math.isnan(values.get(spec.name, math.nan))
        }
        if row:
            table[subset] = row
    return table


def read_metrics_file(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a ``metrics.json`` in any layout :func:`normalise_metrics` accepts (paper units out)."""
    return normalise_metrics(read_results_file(path))


def _metrics_table(table: Results) -> str:
    return results_to_markdown(table, images=False, missing="–")


def render_model_card(
    config: Mapping[str, Any],
    metrics: Results | None = None,
    repo_id: str | None = None,
    training_data: str | None = None,
    extra: str | None = None,
    reference_metrics: Mapping[str, float] | None = None,
) -> str:
    """The model card for a saved model.

    Args:
        config: The ``config.json`` dict written by :meth:`inharmony.models.HubMixin.save_pretrained`.
        metrics: Scores in any layout :func:`inharmony.metrics.report.normalise_results` accepts
            (fractions or paper units, e.g. the output of :func:`normalise_metrics`).
            ``None`` leaves the card with the paper's reference scores only, labelled as such.
        repo_id: Hub repository the card will live in (used in the loading snippet).
        training_data: One line on what the weights were trained on.
        extra: Free Markdown appended at the end (e.g. the training command).
        reference_metrics: The paper's scores for the architecture (``{"ap", "f1", "iou"}``), shown
            apart from the measured ones.
    """
    from huggingface_hub import ModelCardData

    architecture = config["architecture"]
    cfg = config.get("pretrained_cfg", {})
    license_id = cfg.get("license") or "apache-2.0"
    harmonizer = cfg.get("task") == "harmonization"
    card_data = ModelCardData(
        library_name="inharmony",
        license=license_id,
        pipeline_tag="image-to-image" if harmonizer else "image-segmentation",
        tags=[
            "image-harmonization" if harmonizer else "inharmonious-region-localization",
            "image-composition",
            "pytorch",
            architecture,
        ],
    )
    where = repo_id or "path/to/this_folder"
    args = ", ".join(f"{k}={v!r}" for k, v in config.get("model_args", {}).items()) or "default arguments"
    lines = [
        "---",
        card_data.to_yaml(),
        "---",
        "",
        f"# {architecture} — " + ("image harmonization" if harmonizer else "inharmonious region localization"),
        "",
        "Given a composite image (and the mask of the pasted region, unless the model finds it itself), "
        "the model changes the region's colour and lighting to match the rest of the image."
        if harmonizer
        else "Given a composite image, the model predicts a mask of the region whose colour or lighting "
        "does not match the rest of the image (the pasted or retouched object).",
        "",
        "## Model",
        "",
        f"- Architecture: `{architecture}` ({args})",
        f"- Paper: {cfg.get('paper') or 'n/a'}" + (f" <{cfg['paper_url']}>" if cfg.get("paper_url") else ""),
        f"- Input: RGB, resized to {tuple(cfg.get('input_size', (3, 224, 224)))[1:]}, normalised with "
        f"mean {tuple(cfg.get('mean', ()))} and std {tuple(cfg.get('std', ()))}; "
        + (
            "`inharmony.inference.harmonizer.Harmonizer` changes only the region, at the photo's own size."
            if harmonizer
            else "the mask is returned at the image's own size by `inharmony.Predictor`."
        ),
        f"- Library: inharmony {config.get('inharmony_version', '?')}",
        f"- Licence: {license_id}",
        "",
        "## Training data",
        "",
        training_data
        or "iHarmony4 (HCOCO, HAdobe5k, HFlickr, Hday2night), le50 split (foreground ≤ 50 % of the image), "
        "unless stated otherwise by the publisher.",
        "",
        "## Results",
        "",
    ]
    if metrics:
        lines += [
            "Measured on the test split with the official protocol (per-image scores averaged over images, "
            "threshold 0.5):",
            "",
            _metrics_table(metrics),
        ]
    else:
        lines.append("No scores were given for these weights.")
    reference = dict(reference_metrics or {})
    if reference and harmonizer:
        lines += [
            "",
            f"Reference scores reported by the architecture's authors (iHarmony4 test): "
            f"{reference_scores_text(reference)}",
        ]
    elif reference:
        lines += [
            "",
            "Reference scores reported in the paper (iHarmony4 le50 test, all images):",
            "",
            _metrics_table({"All": reference}),
        ]
    lines += [
        "",
        "## How to load",
        "",
    ]
    if harmonizer:
        lines += [
            "```python",
            "from inharmony.inference.harmonizer import Harmonizer",
            "",
            f'harmonizer = Harmonizer("{architecture}", weights="{where}")  # a localizer finds the region',
            'result = harmonizer("photo.jpg", mask="photo_mask.png")  # or without mask=',
            'result.panel().save("before_after.png")  # result.image: changed only inside result.mask',
            "```",
            "",
            "From the command line:",
            "",
            "```bash",
            f"inharmony harmonize photo.jpg --model {architecture} --weights {where} --out harmonized/",
            "```",
        ]
    else:
        lines += [
            "```python",
            "import inharmony",
            "",
            f'model = inharmony.from_pretrained("{where}")',
            "predictor = inharmony.Predictor(model)",
            'mask = predictor("photo.jpg")  # float32 H×W in [0, 1], at the photo\'s own size',
            "```",
            "",
            "From the command line:",
            "",
            "```bash",
            f"inharmony predict photo.jpg --model {architecture} --weights {where} --out masks/",
            "```",
        ]
    if extra:
        lines += ["", extra]
    return "\n".join(lines) + "\n"
