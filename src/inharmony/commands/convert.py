"""``inharmony convert``: turn the authors' checkpoints into a hub folder (config, safetensors, card)."""

from __future__ import annotations

import argparse
import sys

NAME = "convert"
HELP = "Convert the authors' released checkpoints into an inharmony hub folder."
EXAMPLE = "inharmony convert dirl-official --dir DIRL/checkpoints --epoch best --out dirl_hub"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    dirl = sub.add_parser(
        "dirl-official",
        help="bcmi/DIRL-Inharmonious-Region-Localization: encoder_epochX.pth + decoder_epochX.pth",
        description="Read encoder_epoch{EPOCH}.pth and decoder_epoch{EPOCH}.pth from the official DIRL code "
        "and write config.json, model.safetensors and a model card.",
    )
    dirl.add_argument("--dir", required=True, help="folder holding the official checkpoint pair")
    dirl.add_argument("--epoch", default="best", help="'best', 'latest' or an epoch number (default: best)")
    dirl.add_argument("--out", required=True, help="hub folder to write")
    dirl.add_argument("--metrics", default=None, help="metrics.json measured for these weights (model card)")
    dirl.add_argument("--force", action="store_true", help="write into a non-empty --out folder")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..convert import load_official_dirl
    from ..hub import save_pretrained
    from ..model_card import read_metrics_file
    from ..models._checkpoint import CheckpointError

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"error: {out} is not empty; choose another --out or pass --force", file=sys.stderr)
        return 2
    epoch = int(args.epoch) if str(args.epoch).isdigit() else args.epoch
    try:
        metrics = read_metrics_file(args.metrics) if args.metrics else None
        model = load_official_dirl(args.dir, epoch=epoch)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    decoder_channels = model.decoder.head.in_channels
    save_pretrained(
        model,
        out,
        model_name="dirl",
        model_kwargs={"backbone": "resnet34", "decoder_channels": decoder_channels, "pretrained_backbone": False},
        metrics=metrics,
        model_card_kwargs={
            "training_data": "iHarmony4, le50 training split; weights released by the DIRL authors "
            f"(converted from encoder/decoder_epoch{epoch}.pth by `inharmony convert dirl-official`).",
        },
    )
    print(f"wrote {out}/config.json, model.safetensors, README.md")
    return 0
