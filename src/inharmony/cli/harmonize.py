"""``inharmony harmonize PHOTOS ...``: find the inharmonious region (or take ``--mask``) and harmonize it.

For each photo it writes, in ``--out``: ``<name>_harmonized.png`` (the photo at its own size, changed only in
the region: every pixel outside it is the input's, bit for bit), ``<name>_mask.png`` (the mask used, 8-bit,
0 exactly where nothing changed) and ``<name>_panel.png`` (before | mask | after). The pipeline is
:class:`inharmony.inference.harmonizer.Harmonizer` (PCTNet by default; S2AM with ``--model s2am``). Outputs follow
``inharmony predict``'s rules (:mod:`inharmony.cli.outputs`): written atomically, never replacing a file the
command did not write (a later run replaces its own outputs for the same input; same-named inputs get
``<name>_1_...``). :func:`run_harmonizer` is the loop ``inharmony fix`` shares.

Exit codes: 0 all written; 1 some photos skipped (unreadable, no region; warnings say which) or writing stopped
part-way; 2 nothing done (no readable photo, a mask that does not fit, unusable weights, an output clash).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Literal

from ..errors import OutputExistsError
from .exit_codes import EXIT_OK, EXIT_PARTIAL, error, warn

__all__ = ["OUTPUT_SUFFIXES", "harmonize_images", "run_harmonizer"]

OUTPUT_SUFFIXES = ("_harmonized.png", "_mask.png", "_panel.png")


def harmonize_images(
    inputs: list[str],
    *,
    out: str,
    mask: str | None = None,
    localizer: str = "madisnet",
    localizer_weights: str | None = None,
    model: str = "pctnet",
    weights: str | None = None,
    threshold: float = 0.5,
    device: str | None = None,
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto",
    size: int | None = None,
    batch_size: int = 4,
    panel: bool = True,
) -> int:
    """Harmonize photos: the region comes from ``--mask`` or a localizer, then PCTNet (or S2AM) fixes its colour.

    PCTNet applies its colour transform at the photo's full resolution; S2AM runs at its network size (256)
    and only its change is resized to the photo. Either way the rest of the photo is bit-identical to the
    input, the region's edge blended with the soft mask. Writes ``<name>_harmonized.png``, ``<name>_mask.png``
    and ``<name>_panel.png`` (before | mask | after) in ``--out``. Exit 2 when nothing was done (missing or
    corrupt photo, a mask of another size or empty, unusable weights, outputs that would replace files this
    command did not write), 1 when some photos were skipped.

    Args:
        inputs: Photos (files or folders).
        out: Output folder (created if needed).
        mask: The region's mask (grey PNG, the photo's size; 255 or 1 = region) for a single photo; without
            it the localizer predicts the region.
        localizer: Registered localizer used without ``--mask`` (``madisnet``, ``dirl``, ...).
        localizer_weights: Its weights (hub folder, ``.safetensors``, ``.ckpt``, ...); default: published ones.
        model: Harmonizer: ``pctnet`` (published weights, full resolution), ``s2am`` (takes the region) or
            ``s2am_maskfree`` (finds the region itself).
        weights: Harmonizer weights (libcom's ``PCTNet.pth``, hub folder, ``.safetensors``, ``.ckpt``, the
            authors' ``.pth.tar``); default: the published ones.
        threshold: Probability where the predicted region begins (the soft mask ramps around it), in (0, 1).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: cuda if available).
        precision: The localizer's fast path: ``auto`` (default: the fastest on this device, see
            :func:`inharmony.inference.auto_backend`), ``fp32``, ``bf16`` or ``fp16`` (CUDA); the harmonizer
            and the scorer run in float32.
        size: Network input size (default: the harmonizer's, 256; PCTNet: its low-resolution copy).
        batch_size: Photos the localizer reads and runs together.
        panel: Also write the before/after panel (``--no-panel``: harmonized photo and mask only).

    Example:
        inharmony harmonize photo.jpg --mask photo_mask.png --out harmonized/
    """
    options = dict(
        localizer=localizer, localizer_weights=localizer_weights, threshold=threshold, device=device,
        precision=precision,
    )  # fmt: skip
    return run_harmonizer(
        inputs, out=out, mask=mask, suffix="_harmonized.png", panel=panel, batch_size=batch_size,
        harmonizer=dict(harmonizer=model, weights=weights, size=size, **options),
    )  # fmt: skip


def _photo_record(source: Path, done: Any, written: dict[str, str] | None, region: str) -> dict[str, Any]:
    """One photo's entry in the ``--json`` report."""
    if done.error is not None:
        return {"input": str(source), "status": "skipped", "error": str(done.error)}
    result = done.result
    return {
        "input": str(source),
        "status": "written" if written else "not written",
        "region": region,
        "score_before": result.score_before,
        "score_after": result.score_after,
        "outputs": written or {},
    }


def run_harmonizer(
    inputs: list[str],
    *,
    out: str,
    mask: str | None,
    suffix: str,
    panel: bool,
    batch_size: int,
    harmonizer: dict[str, Any],
    as_json: bool = False,
    command: str = "harmonize",
) -> int:
    """The loop of ``inharmony harmonize`` and ``inharmony fix``: parse-checked options → Harmonizer → files.

    Args:
        inputs: Photos (files or folders).
        out: Output folder.
        mask: One photo's mask file, or None to predict each region.
        suffix: The harmonized photo's suffix (``_harmonized.png``, ``_fixed.png``).
        panel: Also write ``<name>_panel.png``.
        batch_size: Photos the localizer runs together.
        harmonizer: :class:`~inharmony.inference.harmonizer.Harmonizer` keyword arguments.
        as_json: Print one JSON report on stdout (instead of a line per photo with scores).
        command: The command's name, in the report.

    Returns:
        The exit code.
    """
    from ..errors import DataError, ImageReadError, InharmonyError
    from ..imageio import load_image_array, load_mask_array, write_png
    from ..inference import check_threshold
    from ..inference.harmonizer import Harmonizer
    from .outputs import Manifest, claim_outputs, collect_inputs, finish_writing, plan_outputs

    try:
        check_threshold(harmonizer.get("threshold", 0.5), "--threshold")
    except ValueError as err:
        return error(str(err))
    if batch_size < 1:
        return error(f"--batch-size must be ≥ 1, got {batch_size}")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        return error(f"--out {out} is a file; give a folder for the results (created if needed)")
    missing = [p for p in inputs if not Path(p).exists()]
    manifest = Manifest(out_dir)
    files = collect_inputs([p for p in inputs if Path(p).exists()], out_dir, manifest, recursive=False)
    if mask is not None:
        if len(inputs) != 1 or len(files) > 1:
            return error("--mask goes with one photo; give one input (or no --mask to predict each photo's region)")
        if not Path(mask).is_file():
            return error(f"--mask {mask}: no such file")
    if missing and (mask is not None or not files):
        return error(f"{', '.join(missing)}: no such file")
    for path in missing:
        warn(f"{path} does not exist; skipped")
    if not files:
        return error("no input photos found in " + ", ".join(inputs))
    suffixes = (suffix, "_mask.png", "_panel.png")[: 3 if panel else 2]
    stems, clashes = plan_outputs(files, out_dir, manifest, suffixes)
    if clashes:
        shown = ", ".join(clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        return error(
            f"nothing written: the outputs would overwrite a file inharmony did not write (or an input): {shown}",
            "Choose another --out (or move those files away).",
        )
    try:
        pipeline = Harmonizer(batch_size=batch_size, **harmonizer)
    except ValueError as err:  # a model in the wrong role, a size that is not a multiple ...
        if isinstance(err, InharmonyError):
            raise
        return error(str(err))
    given = None
    if mask is not None:
        try:
            given = load_mask_array(mask, load_image_array(files[0]).shape[:2])
        except (ImageReadError, DataError, FileNotFoundError) as err:
            return error(str(err))
    try:
        stems = claim_outputs(out_dir, manifest, files, stems, suffixes)
    except OutputExistsError as err:  # another run wrote a file of its own there since the plan above
        return error(str(err), "Choose another --out (or move those files away).")
    except OSError as err:
        return error(f"cannot write to --out {out}: {err.strerror or err}")

    skipped = written = 0
    failure: OSError | None = None
    records: list[dict[str, Any]] = []
    region = "given" if given is not None else "predicted"
    for stem, source, done in zip(stems, files, pipeline.iter_harmonized(files, given, skip_errors=True), strict=True):
        if done.error is not None:
            records.append(_photo_record(source, done, None, region))
            if len(files) == 1:
                with contextlib.suppress(OSError):
                    manifest.save()
                if as_json:
                    _print_report(command, out_dir, records, 0, 1)
                return error(str(done.error))
            warn(f"{done.error}; skipped")
            skipped += 1
            continue
        result = done.result
        outputs = {suffix: result.image, "_mask.png": result.mask_uint8()}
        if panel:
            outputs["_panel.png"] = result.panel()
        paths: dict[str, str] = {}
        try:
            for name, image in outputs.items():
                write_png(out_dir / f"{stem}{name}", image)
                manifest.record(f"{stem}{name}", done.source.resolve(), written=True)
                paths[name.removeprefix("_").removesuffix(".png")] = str(out_dir / f"{stem}{name}")
        except OSError as err:
            failure = err
            break
        records.append(_photo_record(source, done, paths, region))
        if result.score_before is not None and not as_json:
            print(f"{source}: harmony {result.score_before:.2f} -> {result.score_after:.2f}", flush=True)
        written += 1
    stopped = finish_writing(manifest, out, out_dir, written, len(files) + len(missing), failure, "photo")
    if as_json:
        _print_report(command, out_dir, records, written, skipped + len(missing))
    if stopped is not None:
        return stopped
    if not written:
        return error("no photo could be harmonized (see the warnings above)")
    if skipped or missing:
        warn(f"{skipped + len(missing)} input(s) skipped (see warnings above)")
        return EXIT_PARTIAL
    return EXIT_OK


def _print_report(command: str, out_dir: Path, records: list[dict[str, Any]], written: int, skipped: int) -> None:
    report = {"command": command, "out": str(out_dir), "written": written, "skipped": skipped, "photos": records}
    json.dump(report, sys.stdout, indent=1)
    print(flush=True)
