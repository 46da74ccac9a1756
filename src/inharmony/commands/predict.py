"""``inharmony predict``: masks and overlays for your own images.

Two modes share the command name:

* ``inharmony predict IMAGES_OR_DIRS --model dirl --weights W --out DIR`` (this module) writes
  ``<name>_mask.png`` (8-bit probability, 255 = 1.0) and ``<name>_overlay.png`` per image, at
  the image's own size.
* With ``--config``, ``--ckpt_path`` or any ``--trainer.*`` / ``--data.*`` / ``--model.*`` option
  it is LightningCLI's ``predict`` over a DataModule (see ``inharmony fit --help``).

Exit codes: 0 every image was processed; 1 some inputs were skipped (unreadable, not images, too
small; the rest were written); 2 nothing to do (usage error, no inputs found, weights unusable).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

NAME = "predict"
HELP = "Predict inharmonious-region masks (+ overlays) for images or folders of images."
EXAMPLE = "inharmony predict photos/ --model dirl --weights dirl_hub_folder --out masks/"
PASSTHROUGH = True

EXIT_OK, EXIT_SKIPPED, EXIT_USAGE = 0, 1, 2
_LIGHTNING_FLAGS = ("--config", "--ckpt_path", "--trainer.", "--data.", "--model.")
_OUTPUT_SUFFIXES = ("_mask.png", "_overlay.png")


def _wants_lightning(argv: Sequence[str]) -> bool:
    return any(arg == flag or arg.startswith(flag) for arg in argv for flag in _LIGHTNING_FLAGS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inharmony predict",
        description=HELP,
        epilog=f"example:\n  {EXAMPLE}\n\n" + (__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS", help="image files and/or folders")
    parser.add_argument("--model", default="dirl", help="registered model name (default: dirl)")
    parser.add_argument(
        "--weights",
        default=None,
        help="hub folder, Hub id org/name, .safetensors/.pth, Lightning .ckpt, or the authors' DIRL folder; "
        "default: the model's published weights",
    )
    parser.add_argument("--out", required=True, help="output folder (created if needed)")
    parser.add_argument("--size", type=int, default=None, help="network input size (default: the weights', 224)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--recursive", action="store_true", help="look into sub-folders too")
    parser.add_argument("--binary", action="store_true", help="write the mask thresholded (0/255) instead")
    parser.add_argument("--threshold", type=float, default=0.5, help="threshold for --binary (default 0.5)")
    parser.add_argument("--no-overlay", action="store_true", help="write masks only")
    parser.add_argument("--trust-checkpoint", action="store_true", help="allow pickled objects in a .ckpt")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


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


def _output_names(files: Sequence[Path], out_dir: Path) -> list[str]:
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


def run(argv: Sequence[str] | argparse.Namespace) -> int:
    if isinstance(argv, argparse.Namespace):  # called through the generic parser (not PASSTHROUGH)
        return _predict(argv)
    argv = list(argv)
    if _wants_lightning(argv):
        from .train import run_lightning

        return int(run_lightning("predict", argv) or 0)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as err:
        return int(err.code or 0)
    return _predict(args)


def _predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..inference import ImageReadError, Predictor, mask_to_image, overlay

    out_dir = Path(args.out)
    missing = [p for p in args.inputs if not Path(p).exists()]
    for path in missing:
        _warn(f"{path} does not exist; skipped")
    files = _collect([p for p in args.inputs if Path(p).exists()], out_dir, args.recursive)
    if not files:
        print("error: no input images found in " + ", ".join(args.inputs), file=sys.stderr)
        return EXIT_USAGE
    inputs = {path.resolve() for path in files}
    try:
        predictor = Predictor(args.model, size=args.size, device=args.device, batch_size=args.batch_size,
                              weights=args.weights)
    except Exception as err:  # every loading failure has a specific message; no traceback for a CLI user
        print(f"error: cannot load {args.model!r} weights: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_USAGE
    out_dir.mkdir(parents=True, exist_ok=True)

    skipped = 0
    names = _output_names(files, out_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        for path, name in tqdm(list(zip(files, names, strict=True)), desc="predict", unit="img", file=sys.stderr):
            targets = [out_dir / f"{name}{suffix}" for suffix in _OUTPUT_SUFFIXES]
            clash = [t for t in targets if t.resolve() in inputs]
            if clash:
                _warn(f"{path}: output {clash[0]} would overwrite an input; skipped")
                skipped += 1
                continue
            try:
                mask = predictor(path)
            except (ImageReadError, FileNotFoundError) as err:
                _warn(f"{err}; skipped")
                skipped += 1
                continue
            written = mask >= args.threshold if args.binary else mask
            mask_to_image(written.astype("float32")).save(targets[0])
            if not args.no_overlay:
                overlay(path, mask).save(targets[1])
    total = len(files) + len(missing)
    print(f"wrote {total - skipped - len(missing)} of {total} images to {out_dir}", file=sys.stderr)
    if skipped or missing:
        _warn(f"{skipped + len(missing)} input(s) skipped (see warnings above)")
        return EXIT_SKIPPED
    return EXIT_OK
