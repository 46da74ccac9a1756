"""``inharmony harmonize PHOTOS ...``: find the inharmonious region (or take ``--mask``) and harmonize it.

For each photo it writes, in ``--out``: ``<name>_harmonized.png`` (the photo at its own size, changed only in
the region: every pixel outside it is the input's, bit for bit), ``<name>_mask.png`` (the mask used, 8-bit,
0 exactly where nothing changed) and ``<name>_panel.png`` (before | mask | after). The pipeline is
:class:`inharmony.inference.harmonizer.Harmonizer`. Outputs follow ``inharmony predict``'s rules: written atomically,
never replacing a file the command did not write (a later run replaces its own outputs for the same input;
same-named inputs get ``<name>_1_...``).

Exit codes: 0 all written; 1 some photos skipped (unreadable; warnings say which) or writing stopped
part-way; 2 nothing done (no readable photo, a mask that does not fit, unusable weights, an output clash).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from .exit_codes import EXIT_OK, EXIT_PARTIAL, error, warn

__all__ = ["OUTPUT_SUFFIXES", "harmonize_images"]

OUTPUT_SUFFIXES = ("_harmonized.png", "_mask.png", "_panel.png")


def _png(array: object) -> memoryview:
    import cv2
    import numpy as np

    array = np.asarray(array)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise OSError("OpenCV could not encode the PNG")
    return memoryview(buf)


def harmonize_images(
    inputs: list[str],
    *,
    out: str,
    mask: str | None = None,
    localizer: str = "madisnet",
    localizer_weights: str | None = None,
    model: str = "s2am",
    weights: str | None = None,
    threshold: float = 0.5,
    device: str | None = None,
    size: int | None = None,
    panel: bool = True,
) -> int:
    """Harmonize photos: the region comes from ``--mask`` or a localizer, then S2AM fixes its colour and lighting.

    The harmonizer runs at its network size (256) and only the region changes at the photo's own size: the
    rest of the photo is bit-identical to the input, the region's edge blended with the soft mask. Writes
    ``<name>_harmonized.png``, ``<name>_mask.png`` and ``<name>_panel.png`` (before | mask | after) in
    ``--out``. Exit 2 when nothing was done (missing or corrupt photo, a mask of another size, unusable
    weights, outputs that would replace files this command did not write), 1 when some photos were skipped.

    Args:
        inputs: Photos (files or folders).
        out: Output folder (created if needed).
        mask: The region's mask (grey PNG, the photo's size; 255 or 1 = region) for a single photo; without
            it the localizer predicts the region.
        localizer: Registered localizer used without ``--mask`` (``madisnet``, ``dirl``, ...).
        localizer_weights: Its weights (hub folder, ``.safetensors``, ``.ckpt``, ...); default: published ones.
        model: Harmonizer: ``s2am`` (takes the region) or ``s2am_maskfree`` (finds the region itself).
        weights: Harmonizer weights (hub folder, ``.safetensors``, ``.ckpt``, the authors' ``.pth.tar``).
        threshold: Probability where the predicted region begins (the soft mask ramps around it), in (0, 1).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: cuda if available).
        size: Network input size (default: the harmonizer's, 256).
        panel: Also write the before/after panel (``--no-panel``: harmonized photo and mask only).

    Example:
        inharmony harmonize photo.jpg --mask photo_mask.png --weights s2am_hub --out harmonized/
    """
    from ..errors import DataError, ImageReadError, InharmonyError
    from ..files import atomic_write_bytes
    from ..inference import check_threshold
    from ..inference.harmonizer import Harmonizer, load_mask_array
    from .predict import _claim, _collect, _finish_writing, _Manifest, _plan

    try:
        check_threshold(threshold, "--threshold")
    except ValueError as err:
        return error(str(err))
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        return error(f"--out {out} is a file; give a folder for the results (created if needed)")
    missing = [p for p in inputs if not Path(p).exists()]
    manifest = _Manifest(out_dir)
    files = _collect([p for p in inputs if Path(p).exists()], out_dir, manifest, recursive=False)
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
    suffixes = OUTPUT_SUFFIXES if panel else OUTPUT_SUFFIXES[:2]
    stems, clashes = _plan(files, out_dir, manifest, suffixes)
    if clashes:
        shown = ", ".join(clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        return error(
            f"nothing written: the outputs would overwrite a file inharmony did not write (or an input): {shown}",
            "Choose another --out (or move those files away).",
        )
    try:
        harmonizer = Harmonizer(
            model, weights, localizer, localizer_weights, device=device, threshold=threshold, size=size
        )
    except ValueError as err:  # a size that is not a multiple ...
        if isinstance(err, InharmonyError):
            raise
        return error(str(err))
    given = None
    if mask is not None:
        from ..inference import load_image_array

        try:
            photo = load_image_array(files[0])
            given = load_mask_array(mask, photo.shape[:2])
        except (ImageReadError, DataError, FileNotFoundError) as err:
            return error(str(err))
    try:
        _claim(out_dir, manifest, files, stems, suffixes)
    except OSError as err:
        return error(f"cannot write to --out {out}: {err.strerror or err}")

    skipped = written = 0
    failure: OSError | None = None
    for path, stem in zip(files, stems, strict=True):
        try:
            result = harmonizer(path, given)
        except (ImageReadError, DataError, FileNotFoundError) as err:
            if len(files) == 1:
                with contextlib.suppress(OSError):
                    manifest.save()
                return error(str(err))
            warn(f"{err}; skipped")
            skipped += 1
            continue
        outputs = {"_harmonized.png": result.image, "_mask.png": result.mask_uint8()}
        if panel:
            outputs["_panel.png"] = result.panel()
        try:
            for suffix, array in outputs.items():
                atomic_write_bytes(out_dir / f"{stem}{suffix}", _png(array))
                manifest.record(f"{stem}{suffix}", path.resolve(), written=True)
        except OSError as err:
            failure = err
            break
        written += 1
    stopped = _finish_writing(manifest, out, out_dir, written, len(files) + len(missing), failure, "photo")
    if stopped is not None:
        return stopped
    if not written:
        return error("no photo could be harmonized (see the warnings above)")
    if skipped or missing:
        warn(f"{skipped + len(missing)} input(s) skipped (see warnings above)")
        return EXIT_PARTIAL
    return EXIT_OK
