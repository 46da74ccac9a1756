"""``inharmony predict IMAGES ...``: masks and overlays for your own images.

``inharmony predict`` with ``--config``, ``--ckpt_path`` or a ``--trainer.*`` / ``--data.*`` /
``--model.*`` option is LightningCLI's ``predict`` over a data module instead
(:func:`wants_lightning` decides; see :mod:`inharmony.cli.lightning`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from .exit_codes import EXIT_OK, EXIT_PARTIAL, error, warn

__all__ = ["LIGHTNING_FLAGS", "predict_images", "wants_lightning"]

LIGHTNING_FLAGS = ("--config", "--ckpt_path", "--print_config", "--trainer.", "--data.", "--model.")
_OUTPUT_SUFFIXES = ("_mask.png", "_overlay.png")


def wants_lightning(argv: Sequence[str]) -> bool:
    """Whether ``inharmony predict ARGV`` is LightningCLI's ``predict`` (a config or data module option)."""
    return any(arg == flag or arg.startswith(flag) for arg in argv for flag in LIGHTNING_FLAGS)


def _collect(inputs: Sequence[str], out_dir: Path, recursive: bool) -> list[Path]:
    """Files named on the command line, plus the files of named folders, except our earlier outputs.

    A ``*_mask.png`` / ``*_overlay.png`` found *by listing the output folder* is taken for the output
    of an earlier run and left out (and may be rewritten); a file named explicitly is always an input.
    """
    from ..inference import iter_image_files

    files = []
    for entry in inputs:
        if not Path(entry).is_dir():
            files.append(Path(entry))
            continue
        for path in iter_image_files([entry], recursive=recursive):
            earlier_output = path.name.endswith(_OUTPUT_SUFFIXES) and path.resolve().parent == out_dir.resolve()
            if not earlier_output:
                files.append(path)
    return files


def _output_names(files: Sequence[Path]) -> list[str]:
    """One distinct stem per input: ``x``, then ``x_1``, ``x_2`` for same-named files from other folders."""
    used: set[str] = set()
    names = []
    for path in files:
        stem, n = path.stem, 0
        while (stem if n == 0 else f"{stem}_{n}") in used:
            n += 1
        name = stem if n == 0 else f"{stem}_{n}"
        used.add(name)
        names.append(name)
    return names


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
) -> int:
    """Predict inharmonious-region masks (and overlays) for images or folders of images.

    Writes ``<name>_mask.png`` (8-bit probability, 255 = 1.0) and ``<name>_overlay.png`` per image,
    at the image's own size; inputs are never overwritten. Exit code 1 when some inputs were skipped
    (unreadable, not images; warnings say which), 2 when there is nothing to do or the weights are
    unusable. With ``--config``, ``--ckpt_path`` or ``--trainer.*``/``--data.*``/``--model.*`` options
    this is LightningCLI's ``predict`` over a data module instead.

    Args:
        inputs: Image files and/or folders.
        out: Output folder (created if needed).
        model: Registered model name.
        weights: Hub folder, Hub id ``org/name``, ``.safetensors``/``.pth``, Lightning ``.ckpt``, or the
            authors' DIRL folder; default: the model's published weights.
        size: Network input size (default: the weights' own, 224).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: cuda if available).
        batch_size: Images per forward pass.
        recursive: Look into sub-folders too.
        binary: Write the mask thresholded (0/255) instead of the probability.
        threshold: Threshold for ``--binary``.
        overlay: Also write the overlay (``--no-overlay``: masks only).
        trust_checkpoint: Allow pickled Python objects in a ``.ckpt`` (only for files you made).

    Example:
        inharmony predict photos/ --model dirl --weights dirl_hub_folder --out masks/
    """
    from tqdm import tqdm

    from ..errors import ImageReadError
    from ..hub import load
    from ..inference import Predictor, mask_to_image
    from ..inference import overlay as draw_overlay

    out_dir = Path(out)
    missing = [p for p in inputs if not Path(p).exists()]
    for path in missing:
        warn(f"{path} does not exist; skipped")
    files = _collect([p for p in inputs if Path(p).exists()], out_dir, recursive)
    if not files:
        return error("no input images found in " + ", ".join(inputs))
    inputs_resolved = {path.resolve() for path in files}
    network = load(model, weights, trust_checkpoint=trust_checkpoint)
    predictor = Predictor(network, size=size, device=device, batch_size=batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)

    skipped = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        pairs = list(zip(files, _output_names(files), strict=True))
        for path, name in tqdm(pairs, desc="predict", unit="img", file=sys.stderr):
            targets = [out_dir / f"{name}{suffix}" for suffix in _OUTPUT_SUFFIXES]
            clash = [t for t in targets if t.resolve() in inputs_resolved]
            if clash:
                warn(f"{path}: output {clash[0]} would overwrite an input; skipped")
                skipped += 1
                continue
            try:
                mask = predictor(path)
            except (ImageReadError, FileNotFoundError) as err:
                warn(f"{err}; skipped")
                skipped += 1
                continue
            written = mask >= threshold if binary else mask
            mask_to_image(written.astype("float32")).save(targets[0])
            if overlay:
                draw_overlay(path, mask).save(targets[1])
    total = len(files) + len(missing)
    print(f"wrote {total - skipped - len(missing)} of {total} images to {out_dir}", file=sys.stderr)
    if skipped or missing:
        warn(f"{skipped + len(missing)} input(s) skipped (see warnings above)")
        return EXIT_PARTIAL
    return EXIT_OK
