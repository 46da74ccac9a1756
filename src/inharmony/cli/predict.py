"""``inharmony predict IMAGES ...``: masks and overlays for your own images.

Parse the options, run the library's batch loop (:meth:`inharmony.inference.Predictor.iter_masks`), write
what it gives. Outputs follow :mod:`inharmony.cli.outputs`: never replacing a file that ``inharmony
predict`` did not write (a user's file stops the run before anything is written, exit 2), a later run
replacing its own outputs for the same input, ``x_1_mask.png`` for a second ``x.jpg``. Masks and overlays
are written atomically (never a partial file under an output name) and built row band by row band in
8 bits, so a 144-megapixel photo stays well within 2 GB.

``inharmony predict`` with ``--config``, ``--ckpt_path`` or a ``--trainer.*`` / ``--data.*`` /
``--model.*`` option is LightningCLI's ``predict`` over a data module instead
(:func:`wants_lightning` decides; see :mod:`inharmony.cli.lightning`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ..errors import OutputExistsError
from .exit_codes import EXIT_OK, EXIT_PARTIAL, error, warn
from .outputs import MANIFEST_NAME

__all__ = ["LIGHTNING_FLAGS", "MANIFEST_NAME", "predict_images", "wants_lightning"]

LIGHTNING_FLAGS = ("--config", "--ckpt_path", "--print_config", "--trainer.", "--data.", "--model.")
_OUTPUT_SUFFIXES = ("_mask.png", "_overlay.png")


def wants_lightning(argv: Sequence[str]) -> bool:
    """Whether ``inharmony predict ARGV`` is LightningCLI's ``predict`` (a config or data module option)."""
    return any(arg == flag or arg.startswith(flag) for arg in argv for flag in LIGHTNING_FLAGS)


def predict_images(
    inputs: list[str],
    *,
    out: str,
    model: str = "dirl",
    weights: str | None = None,
    size: int | None = None,
    device: str | None = None,
    batch_size: int = 4,
    recursive: bool = False,
    binary: bool = False,
    threshold: float = 0.5,
    overlay: bool = True,
    trust_checkpoint: bool = False,
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "auto",
    tta: Literal["h", "v", "hv"] | None = None,
) -> int:
    """Predict inharmonious-region masks (and overlays) for images or folders of images.

    Writes ``<name>_mask.png`` (8-bit probability, 255 = 1.0) and ``<name>_overlay.png`` per image,
    at the image's own size. Nothing the command did not write is ever replaced: inputs and files of
    yours in ``--out`` stop the run before anything is written (exit 2); outputs of an earlier run for
    the same input are replaced; same-named inputs get ``<name>_1`` ... Exit code 1 when some inputs
    were skipped (unreadable, not images; warnings say which) or writing stopped part-way (disk full),
    2 when nothing was done (no inputs, unusable weights, an output folder that cannot be written, a
    clash). With ``--config``, ``--ckpt_path`` or ``--trainer.*``/``--data.*``/``--model.*`` options
    this is LightningCLI's ``predict`` over a data module instead.

    Args:
        inputs: Image files and/or folders.
        out: Output folder (created if needed).
        model: Registered model name.
        weights: Hub folder, Hub id ``org/name``, ``.safetensors``/``.pth``, Lightning ``.ckpt``, or the
            authors' DIRL folder; default: the model's published weights.
        size: Network input size (default: the weights' own, 224).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: cuda if available).
        batch_size: Images preprocessed and run through the network together (any sizes; each mask at
            its own image's size, equal to ``--batch-size 1``'s to float rounding). On CPU the network runs
            a batch in chunks of the size that costs least per image, so a big batch never costs more.
        recursive: Look into sub-folders too.
        binary: Write the mask thresholded (0/255) instead of the probability.
        threshold: Threshold for ``--binary``, strictly between 0 and 1.
        overlay: Also write the overlay (``--no-overlay``: masks only).
        trust_checkpoint: Allow pickled Python objects in a ``.ckpt`` (only for files you made).
        precision: ``auto`` (default: what is fastest on the running device, see
            :func:`inharmony.inference.auto_backend`: bf16 on CPUs with AVX512-BF16/AMX and on GPUs with bf16,
            else fp32, by ONNX Runtime when installed), ``fp32`` (BatchNorm folded, channels_last: within
            1e-5 of eager), ``bf16`` (masks move by a few hundredths) or ``fp16`` (CUDA only).
        tta: Average the masks of flipped copies of each image: ``h`` (as is + left-right, 2 passes),
            ``v`` (+ upside down, 2) or ``hv`` (all four flips, 4 passes). Default: one pass.

    Example:
        inharmony predict photos/ --model dirl --weights dirl_hub_folder --out masks/
    """
    from tqdm import tqdm

    from ..imageio import write_png
    from ..inference import Predictor, check_threshold
    from ..models import load
    from .outputs import Manifest, claim_outputs, collect_inputs, finish_writing, plan_outputs

    try:
        check_threshold(threshold, "--threshold")
    except ValueError as err:
        return error(str(err))
    if batch_size < 1:
        return error(f"--batch-size must be ≥ 1, got {batch_size}")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        return error(f"--out {out} is a file; give a folder for the masks (created if needed)")
    manifest = Manifest(out_dir)
    missing = [p for p in inputs if not Path(p).exists()]
    for path in missing:
        warn(f"{path} does not exist; skipped")
    files = collect_inputs([p for p in inputs if Path(p).exists()], out_dir, manifest, recursive)
    if not files:
        return error("no input images found in " + ", ".join(inputs))
    suffixes = _OUTPUT_SUFFIXES if overlay else _OUTPUT_SUFFIXES[:1]
    stems, clashes = plan_outputs(files, out_dir, manifest, suffixes)
    if clashes:
        shown = ", ".join(clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        inputs_only = all(c.endswith("(an input)") for c in clashes[:3])
        what = "an input" if inputs_only else "a file inharmony predict did not write"
        return error(
            f"nothing written: the outputs would overwrite {what}: {shown}",
            "Choose another --out (or move those files away).",
        )
    network = load(model, weights, trust_checkpoint=trust_checkpoint)
    try:
        predictor = Predictor(network, size=size, device=device, batch_size=batch_size, precision=precision, tta=tta)
    except ValueError as err:  # a size that is not a multiple, fp16 on a CPU ...
        return error(str(err))
    try:
        stems = claim_outputs(out_dir, manifest, files, stems, suffixes)
    except OutputExistsError as err:  # another run wrote a file of its own there since the plan above
        return error(str(err), "Choose another --out (or move those files away).")
    except OSError as err:
        return error(f"cannot write to --out {out}: {err.strerror or err}")

    skipped = written = 0
    failure: OSError | None = None
    with warnings.catch_warnings(), tqdm(total=len(files), desc="predict", unit="img", file=sys.stderr) as progress:
        warnings.simplefilter("ignore", category=UserWarning)
        results = predictor.iter_masks(files, keep_images=overlay, skip_errors=True)
        for stem, result in zip(stems, results, strict=True):
            if result.error is not None:
                warn(f"{result.error}; skipped")
                skipped += 1
                progress.update()
                continue
            source = result.source.resolve()
            image = result.take_image() if overlay else None
            mask = result.mask_uint8(threshold=threshold if binary else None, tint=image)
            try:
                # One output at a time, each array freed once written: a huge photo's arrays never coexist needlessly.
                write_png(out_dir / f"{stem}_mask.png", mask)
                del mask
                manifest.record(f"{stem}_mask.png", source, written=True)
                if image is not None:
                    write_png(out_dir / f"{stem}_overlay.png", image, reuse=True)
                    del image
                    manifest.record(f"{stem}_overlay.png", source, written=True)
            except OSError as err:
                failure = err
                break
            written += 1
            progress.update()
    stopped = finish_writing(manifest, out, out_dir, written, len(files) + len(missing), failure, "image")
    if stopped is not None:
        return stopped
    if skipped or missing:
        warn(f"{skipped + len(missing)} input(s) skipped (see warnings above)")
        return EXIT_PARTIAL
    return EXIT_OK
