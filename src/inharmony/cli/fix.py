"""``inharmony fix PHOTOS ...`` and ``inharmony score PHOTOS ...``: find, fix and score a composite's region.

``fix``: MadisNet finds the region (or ``--mask`` gives it), PCTNet fixes its colour and lighting at the photo's
full resolution and BargainNet scores the photo before and after (libcom's harmony score, higher is more
harmonious). For each photo it writes ``<name>_fixed.png``, ``<name>_mask.png`` and ``<name>_panel.png``
(before | mask | after) with ``inharmony predict``'s output rules (atomic, never replacing a file it did not
write, a manifest in ``--out``) and prints ``photo.jpg: harmony 0.41 -> 0.83``; ``--json`` prints one JSON
report instead. The pipeline is :class:`inharmony.inference.harmonizer.Harmonizer` with a
:class:`~inharmony.inference.scorer.HarmonyScorer`; the loop is :func:`inharmony.cli.harmonize.run_harmonizer`.

``score``: the harmony score of each photo in the region ``--mask`` gives, or the region the localizer finds.

JSON (``--json``), on stdout: ``fix``: ``{"command", "out", "written", "skipped", "photos": [{"input",
"status": "written" | "skipped", "region": "given" | "predicted", "score_before", "score_after", "outputs":
{"fixed", "mask", "panel"}} or {"input", "status": "skipped", "error"}]}``; ``score``: ``{"command", "scored",
"skipped", "photos": [{"input", "status": "scored", "region", "score"} or {"input", "status": "skipped",
"error"}]}``.

Exit codes: 0 all done; 1 some photos skipped (unreadable, no region found, a mask with no background;
warnings say which); 2 nothing done (one line ``inharmony: error: ...``).
"""

from __future__ import annotations

import json as json_module
import sys
from pathlib import Path
from typing import Any, Literal

from .exit_codes import EXIT_OK, EXIT_PARTIAL, error, warn
from .harmonize import run_harmonizer

__all__ = ["fix_images", "score_images"]


def fix_images(
    inputs: list[str],
    *,
    out: str,
    mask: str | None = None,
    localizer: str = "madisnet",
    localizer_weights: str | None = None,
    model: str = "pctnet",
    weights: str | None = None,
    scorer: str = "bargainnet",
    scorer_weights: str | None = None,
    threshold: float = 0.5,
    device: str | None = None,
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto",
    batch_size: int = 4,
    panel: bool = True,
    json: bool = False,
) -> int:
    """Find the inharmonious region, fix it at full resolution and say how much more harmonious the photo got.

    Writes ``<name>_fixed.png`` (changed only in the region, bit-identical elsewhere), ``<name>_mask.png`` and
    ``<name>_panel.png`` (before | mask | after) in ``--out`` and prints ``harmony BEFORE -> AFTER`` per photo
    (libcom's BargainNet score in (0, 1], higher is more harmonious). Exit 2 when nothing was done (missing or
    corrupt photo, a mask of another size, empty or covering the whole photo, unusable weights, an output
    clash), 1 when some photos were skipped.

    Args:
        inputs: Photos (files or folders).
        out: Output folder (created if needed).
        mask: The region's mask (grey PNG, the photo's size; 255 or 1 = region) for a single photo; without
            it the localizer finds the region.
        localizer: Registered localizer used without ``--mask`` (``madisnet``, ``dirl``, ...).
        localizer_weights: Its weights; default: the published ones.
        model: Harmonizer: ``pctnet`` (full resolution) or ``s2am``.
        weights: Harmonizer weights (libcom's ``PCTNet.pth``, a hub folder ...); default: the published ones.
        scorer: Harmony scorer (``bargainnet``).
        scorer_weights: Its weights (libcom's ``BargainNet.pth`` ...); default: the published ones.
        threshold: Probability where the predicted region begins (the soft mask ramps around it), in (0, 1).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: cuda if available).
        precision: The localizer's fast path: ``auto`` (default: the fastest on this device, see
            :func:`inharmony.inference.auto_backend`), ``fp32``, ``bf16`` or ``fp16`` (CUDA); the harmonizer
            and the scorer run in float32.
        batch_size: Photos the localizer reads and runs together.
        panel: Also write the before/after panel (``--no-panel``: fixed photo and mask only).
        json: Print one JSON report on stdout instead of a line per photo.

    Example:
        inharmony fix photo.jpg --out fixed/
    """
    options = dict(
        localizer=localizer, localizer_weights=localizer_weights, threshold=threshold, device=device,
        precision=precision,
    )  # fmt: skip
    return run_harmonizer(
        inputs, out=out, mask=mask, suffix="_fixed.png", panel=panel, batch_size=batch_size, as_json=json,
        command="fix", harmonizer=dict(harmonizer=model, weights=weights, scorer=scorer,
                                       scorer_weights=scorer_weights, **options),
    )  # fmt: skip


def score_images(
    inputs: list[str],
    *,
    mask: str | None = None,
    localizer: str = "madisnet",
    localizer_weights: str | None = None,
    scorer: str = "bargainnet",
    weights: str | None = None,
    threshold: float = 0.5,
    device: str | None = None,
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto",
    batch_size: int = 4,
    json: bool = False,
) -> int:
    """Print the harmony score of each photo (libcom's BargainNet score in (0, 1], higher is more harmonious).

    The region is ``--mask``'s, or the one the localizer finds. A region that is empty or covers the whole
    photo has no score (nothing to compare): the photo is skipped with a message. Exit 2 when no photo was
    scored, 1 when some were skipped.

    Args:
        inputs: Photos (files or folders).
        mask: The region's mask (grey PNG, the photo's size; 255 or 1 = region) for a single photo; without
            it the localizer finds the region.
        localizer: Registered localizer used without ``--mask``.
        localizer_weights: Its weights; default: the published ones.
        scorer: Harmony scorer (``bargainnet``).
        weights: The scorer's weights (libcom's ``BargainNet.pth`` ...); default: the published ones.
        threshold: Probability where the predicted region begins, in (0, 1).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: cuda if available).
        precision: The localizer's fast path: ``auto`` (default: the fastest on this device, see
            :func:`inharmony.inference.auto_backend`), ``fp32``, ``bf16`` or ``fp16`` (CUDA); the scorer
            runs in float32.
        batch_size: Photos the localizer reads and runs together.
        json: Print one JSON report on stdout instead of a line per photo.

    Example:
        inharmony score photo.jpg --mask photo_mask.png
    """
    from ..errors import DataError, ImageReadError, InharmonyError
    from ..imageio import iter_image_files, load_image_array, load_mask_array
    from ..inference import check_threshold
    from ..inference.scorer import HarmonyScorer

    try:
        check_threshold(threshold, "--threshold")
    except ValueError as err:
        return error(str(err))
    if batch_size < 1:
        return error(f"--batch-size must be ≥ 1, got {batch_size}")
    missing = [p for p in inputs if not Path(p).exists()]
    files = iter_image_files([p for p in inputs if Path(p).exists()])
    if mask is not None:
        if len(inputs) != 1 or len(files) > 1:
            return error("--mask goes with one photo; give one input (or no --mask to find each photo's region)")
        if not Path(mask).is_file():
            return error(f"--mask {mask}: no such file")
    if missing and (mask is not None or not files):
        return error(f"{', '.join(missing)}: no such file")
    for path in missing:
        warn(f"{path} does not exist; skipped")
    if not files:
        return error("no input photos found in " + ", ".join(inputs))
    try:
        harmony = HarmonyScorer(
            scorer, weights, localizer=localizer, localizer_weights=localizer_weights, device=device,
            threshold=threshold, batch_size=batch_size, precision=precision,
        )  # fmt: skip
        given = None if mask is None else load_mask_array(mask, load_image_array(files[0]).shape[:2])
    except (ImageReadError, DataError, FileNotFoundError) as err:
        return error(str(err))
    except ValueError as err:  # a model in the wrong role
        if isinstance(err, InharmonyError):
            raise
        return error(str(err))

    records: list[dict[str, Any]] = []
    scored = skipped = 0
    for source, done in zip(files, harmony.iter_scores(files, given, skip_errors=True), strict=True):
        if done.error is not None:
            records.append({"input": str(source), "status": "skipped", "error": str(done.error)})
            if len(files) == 1:
                if json:
                    _print(records, 0, 1)
                return error(str(done.error))
            warn(f"{done.error}; skipped")
            skipped += 1
            continue
        region = "predicted" if done.predicted else "given"
        records.append({"input": str(source), "status": "scored", "region": region, "score": done.score})
        if not json:
            print(f"{source}: harmony {done.score:.2f}", flush=True)
        scored += 1
    if json:
        _print(records, scored, skipped + len(missing))
    if not scored:
        return error("no photo could be scored (see the warnings above)")
    if skipped or missing:
        warn(f"{skipped + len(missing)} input(s) skipped (see warnings above)")
        return EXIT_PARTIAL
    return EXIT_OK


def _print(records: list[dict[str, Any]], scored: int, skipped: int) -> None:
    report = {"command": "score", "scored": scored, "skipped": skipped, "photos": records}
    json_module.dump(report, sys.stdout, indent=1)
    print(flush=True)
