"""The ``README.md`` model card written next to hub weights.

The card is plain Markdown with the Hub's YAML metadata header. It is generated from the
model's registry config (paper, licence, reference scores) and the metrics the publisher gives,
so it needs no template engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["METRIC_COLUMNS", "SUBSET_ORDER", "normalise_metrics", "read_metrics_file", "render_model_card"]

SUBSET_ORDER = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night")
# (key, column title, scale to paper units): AP and IoU are reported in %, F1 as a fraction.
METRIC_COLUMNS = (("ap", "AP (%)", 100.0), ("f1", "F1", 1.0), ("iou", "IoU (%)", 100.0))
_METRIC_KEYS = {key for key, _, _ in METRIC_COLUMNS}


def normalise_metrics(metrics: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """Bring the metric layouts found in practice to ``{subset: {"ap", "f1", "iou"}}`` in paper units.

    Accepted layouts: flat ``{"ap": .., "f1": .., "iou": ..}`` (taken as "All");
    ``{subset: {metric: value}}`` (``PerSubsetMetrics.compute()``); Lightning's logged keys
    ``{"test/ap": .., "test/HCOCO/ap": ..}`` or a list of such dicts (``trainer.test`` output).
    AP and IoU given as fractions (≤ 1) are converted to %.

    Example:
        >>> normalise_metrics({"test/ap": 0.8, "test/f1": 0.73, "test/iou": 0.68})
        {'All': {'ap': 80.0, 'f1': 0.73, 'iou': 68.0}}
    """
    if not metrics:
        return {}
    if isinstance(metrics, list):
        merged: dict[str, Any] = {}
        for item in metrics:
            merged.update(item)
        metrics = merged
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            for metric, number in value.items():
                _put(table, str(key), str(metric), number)
            continue
        parts = str(key).split("/")
        if parts[0] in ("test", "val", "validate"):
            parts = parts[1:]
        if len(parts) == 1:
            _put(table, "All", parts[0], value)
        elif len(parts) == 2:
            _put(table, parts[0], parts[1], value)
    return {name: table[name] for name in _ordered(table)}


def _put(table: dict[str, dict[str, float]], subset: str, metric: str, value: Any) -> None:
    metric = metric.lower()
    if metric not in _METRIC_KEYS or value is None:  # None: NaN written as null (e.g. no positive pixel)
        return
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"metric {subset}/{metric} is not a number: {value!r}") from err
    if metric in ("ap", "iou") and number <= 1.0:
        number *= 100.0
    table.setdefault(subset, {})[metric] = round(number, 4)


def _ordered(table: Mapping[str, Any]) -> list[str]:
    known = [s for s in SUBSET_ORDER if s in table]
    others = sorted(s for s in table if s not in SUBSET_ORDER and s != "All")
    return known + others + (["All"] if "All" in table else [])


def read_metrics_file(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a ``metrics.json`` in any layout :func:`normalise_metrics` accepts."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"metrics file not found: {path}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    table = normalise_metrics(data)
    if not table:
        raise ValueError(
            f"{path} holds no 'ap', 'f1' or 'iou' values; expected e.g. "
            '{"ap": 0.80, "f1": 0.73, "iou": 0.68} or {"HCOCO": {"ap": ...}, "All": {...}}'
        )
    return table


def _metrics_table(table: Mapping[str, Mapping[str, float]]) -> str:
    header = "| Subset | " + " | ".join(title for _, title, _ in METRIC_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(METRIC_COLUMNS)
    rows = []
    for subset, values in table.items():
        cells = []
        for key, _, _ in METRIC_COLUMNS:
            value = values.get(key)
            cells.append("–" if value is None else (f"{value:.4f}" if key == "f1" else f"{value:.2f}"))
        rows.append(f"| {subset} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def render_model_card(
    config: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    repo_id: str | None = None,
    training_data: str | None = None,
    extra: str | None = None,
    reference_metrics: Mapping[str, float] | None = None,
) -> str:
    """The model card for a saved model.

    Args:
        config: The ``config.json`` dict written by :func:`inharmony.hub.save_pretrained`.
        metrics: ``{subset: {"ap", "f1", "iou"}}`` in paper units (see :func:`normalise_metrics`).
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
    card_data = ModelCardData(
        library_name="inharmony",
        license=license_id,
        pipeline_tag="image-segmentation",
        tags=["inharmonious-region-localization", "image-composition", "pytorch", architecture],
    )
    where = repo_id or "path/to/this_folder"
    args = ", ".join(f"{k}={v!r}" for k, v in config.get("model_args", {}).items()) or "default arguments"
    lines = [
        "---",
        card_data.to_yaml(),
        "---",
        "",
        f"# {architecture} — inharmonious region localization",
        "",
        "Given a composite image, the model predicts a mask of the region whose colour or lighting "
        "does not match the rest of the image (the pasted or retouched object).",
        "",
        "## Model",
        "",
        f"- Architecture: `{architecture}` ({args})",
        f"- Paper: {cfg.get('paper') or 'n/a'}" + (f" <{cfg['paper_url']}>" if cfg.get("paper_url") else ""),
        f"- Input: RGB, resized to {tuple(cfg.get('input_size', (3, 224, 224)))[1:]}, normalised with "
        f"mean {tuple(cfg.get('mean', ()))} and std {tuple(cfg.get('std', ()))}; "
        "the mask is returned at the image's own size by `inharmony.Predictor`.",
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
    if reference:
        lines += [
            "",
            "Reference scores reported in the paper (iHarmony4 le50 test, all images):",
            "",
            _metrics_table(normalise_metrics({"All": reference})),
        ]
    lines += [
        "",
        "## How to load",
        "",
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
