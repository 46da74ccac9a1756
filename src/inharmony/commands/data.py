"""``inharmony data``: check, resize or stream-optimize an iHarmony4 tree."""

from __future__ import annotations

import argparse

NAME = "data"
HELP = "iHarmony4 data tools: check a tree (counts, le50, bad files), make a resized copy, write litdata chunks."
EXAMPLE = "inharmony data resize --root data/iHarmony4 --out data/iHarmony4-1024 --max-side 1024"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="index the tree, print counts per subset (all and le50), find bad files")
    check.add_argument("--root", required=True, help="iHarmony4 root (holds HCOCO/, HAdobe5k/, ...)")
    check.add_argument("--decode", action="store_true", help="also decode every composite/mask pair (slow)")
    check.add_argument("--workers", type=int, default=4, help="threads for --decode")
    check.add_argument("--cache-dir", default=None, help="where to cache foreground fractions")

    resize = sub.add_parser("resize", help="write a copy with images no larger than --max-side (faster loading)")
    resize.add_argument("--root", required=True, help="iHarmony4 root to read")
    resize.add_argument("--out", required=True, help="folder to write the resized copy to")
    resize.add_argument("--max-side", type=int, default=1024, help="longest image side in px (default 1024)")
    resize.add_argument("--quality", type=int, default=95, help="JPEG quality of resized images")
    resize.add_argument("--workers", type=int, default=4, help="threads")

    opt = sub.add_parser("optimize", help="write litdata chunks (train/, val/, test/) for streaming")
    opt.add_argument("--root", required=True, help="iHarmony4 root to read")
    opt.add_argument("--out", required=True, help="output folder, or an object-store URL (with --workers > 1)")
    opt.add_argument("--val-fraction", type=float, default=0.05, help="train real images held out for val")
    opt.add_argument("--seed", type=int, default=0, help="seed of the val split")
    opt.add_argument("--subsets", nargs="*", default=None, help="only these subsets")
    opt.add_argument("--no-le50", action="store_true", help="keep composites with foreground > 50 %%")
    opt.add_argument("--train-list", default=None, help="explicit train list file")
    opt.add_argument("--test-list", default=None, help="explicit test list file")
    opt.add_argument("--workers", type=int, default=1, help="> 1: litdata.optimize worker processes")
    opt.add_argument("--chunk-bytes", default="64MB", help="chunk size")


def _check(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from ..data import DataError, IHarmony4, build_index
    from ..data.dataset import load_item
    from ..data.decode import read_bytes
    from ..data.le50 import filter_le50

    for split in ("train", "test"):
        samples = build_index(args.root, split)
        kept = filter_le50(samples, args.root, args.cache_dir)
        full, le50 = IHarmony4(args.root, split, samples=samples), IHarmony4(args.root, split, samples=kept)
        print(f"{split}: {len(samples)} composites, {len(kept)} with foreground ≤ 50 % (le50)")
        for subset, count in full.counts().items():
            print(f"  {subset:<12} {count:>7}  le50 {le50.counts().get(subset, 0):>7}")
        if args.decode:

            def probe(sample):
                try:
                    root = f"{args.root}/"
                    load_item(read_bytes(root + sample.composite), read_bytes(root + sample.mask), sample, None)
                except DataError as err:
                    return str(err)
                return None

            with ThreadPoolExecutor(max(1, args.workers)) as pool:
                bad = [e for e in tqdm(pool.map(probe, samples), total=len(samples), desc=f"decode {split}") if e]
            for message in bad:
                print(f"  BAD: {message}")
            print(f"  {len(bad)} bad sample(s) in {split}")
            if bad:
                return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from ..data.errors import DataError

    try:
        if args.action == "check":
            return _check(args)
        if args.action == "resize":
            from ..data.resize import resize_tree

            n = resize_tree(args.root, args.out, args.max_side, args.quality, args.workers)
            print(f"wrote {n} files to {args.out} (longest side ≤ {args.max_side}px)")
            return 0
        from ..data.streaming import optimize_ihd

        counts = optimize_ihd(
            args.root,
            args.out,
            val_fraction=args.val_fraction,
            seed=args.seed,
            subsets=args.subsets,
            le50=not args.no_le50,
            train_list=args.train_list,
            test_list=args.test_list,
            num_workers=args.workers,
            chunk_bytes=args.chunk_bytes,
            progress=True,
        )
        print(f"wrote litdata chunks to {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return 0
    except DataError as err:
        print(f"inharmony data {args.action}: error: {err}")
        return 2
