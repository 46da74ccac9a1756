"""``inharmony synth``: write synthetic inharmonious composites in the iHarmony4 layout."""

from __future__ import annotations

import argparse

NAME = "synth"
HELP = (
    "Make synthetic composites (colour/lighting changed inside a random region) from a folder of photos, "
    "in the iHarmony4 layout with train/test lists; without --photos, scikit-image's bundled photos."
)
EXAMPLE = "inharmony synth --photos my_photos/ --out data/hsynth --n 2000 --seed 0 --size 512"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="dataset root to write (the subset folder goes inside)")
    parser.add_argument("--n", type=int, required=True, help="number of composites (train + test)")
    parser.add_argument("--photos", default=None, help="folder of photos (default: scikit-image's sample photos)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    parser.add_argument("--subset", default="HSynth", help="subset folder name (default: HSynth)")
    parser.add_argument("--size", type=int, default=256, help="longer side of the images in px (0 = keep crop size)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of composites in the test list")
    parser.add_argument(
        "--test-photos",
        type=int,
        default=None,
        help="number of photos held out for test only (default: round(test_fraction × photos), ≥ 1; "
        "0 = split by real image)",
    )
    parser.add_argument("--masks", default=None, help="folder of region masks to use instead of random shapes")
    parser.add_argument("--masks-per-image", type=int, default=2, help="foreground regions per real image")
    parser.add_argument("--min-fg", type=float, default=0.05, help="smallest foreground fraction")
    parser.add_argument("--max-fg", type=float, default=0.5, help="largest foreground fraction (≤ 0.5 for le50)")
    parser.add_argument("--ext", choices=("jpg", "png"), default="jpg", help="image format (png is lossless)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..data.errors import DataError
    from ..data.synth import synthesize

    try:
        summary = synthesize(
            args.out,
            args.n,
            seed=args.seed,
            photos=args.photos,
            subset=args.subset,
            test_fraction=args.test_fraction,
            test_photos=args.test_photos,
            size=args.size or None,
            masks=args.masks,
            masks_per_image=args.masks_per_image,
            min_fg=args.min_fg,
            max_fg=args.max_fg,
            ext=args.ext,
            progress=not args.quiet,
        )
    except (DataError, ValueError) as err:
        print(f"inharmony synth: error: {err}")
        return 2
    held = ", ".join(summary["test_photos"]) or "none (split by real image)"
    print(
        f"wrote {summary['train']} train + {summary['test']} test composites to "
        f"{summary['root']}/{summary['subset']} (test-only photos: {held})"
    )
    return 0
