"""``inharmony push``: publish a trained checkpoint to the Hugging Face Hub with a model card."""

from __future__ import annotations

import argparse
import sys

NAME = "push"
HELP = "Upload a Lightning checkpoint (or hub folder) to the Hugging Face Hub, with config and model card."
EXAMPLE = "inharmony push runs/dirl/checkpoints/best.ckpt --repo-id my-org/dirl-ihd --metrics metrics.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a .ckpt written by `inharmony fit`, or a hub folder (config.json + model.safetensors)")
    parser.add_argument("--repo-id", required=True, help="Hub repository, org/name (created if needed)")
    parser.add_argument("--metrics", default=None, help="metrics.json (e.g. from `inharmony test`) for the card")
    parser.add_argument("--training-data", default=None, help="one line on the training data, for the card")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--branch", default=None, help="branch to push to (default: main)")
    parser.add_argument("--commit-message", default="Upload inharmony model")
    parser.add_argument("--out", default=None, help="also keep the hub folder here")
    parser.add_argument("--dry-run", action="store_true", help="write the folder (--out) and do not upload")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow pickled Python objects in the .ckpt (only for files you made)")


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile
    from pathlib import Path

    from ..hub import CONFIG_NAME, HubConfigError, from_pretrained, load_lightning_checkpoint, save_pretrained
    from ..model_card import read_metrics_file
    from ..models._checkpoint import CheckpointError
    from ..models._offline import HubUnreachableError

    if args.dry_run and not args.out:
        print("error: --dry-run needs --out DIR (where to write the folder)", file=sys.stderr)
        return 2
    try:
        metrics = read_metrics_file(args.metrics) if args.metrics else None
        if Path(args.checkpoint).is_dir():
            model = from_pretrained(args.checkpoint)
            config = json.loads((Path(args.checkpoint) / CONFIG_NAME).read_text(encoding="utf-8"))
            hparams = {"model": config["architecture"], "model_kwargs": config.get("model_args", {})}
        else:
            model, hparams = load_lightning_checkpoint(args.checkpoint, trust=args.trust_checkpoint)
    except (CheckpointError, HubConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    card = {"repo_id": args.repo_id}
    if args.training_data:
        card["training_data"] = args.training_data
    push_kwargs = {"private": args.private or None, "branch": args.branch, "commit_message": args.commit_message}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out) if args.out else Path(tmp) / "model"
        try:
            save_pretrained(
                model,
                folder,
                model_name=hparams["model"],
                model_kwargs=dict(hparams.get("model_kwargs") or {}),
                metrics=metrics,
                model_card_kwargs=card,
                push_to_hub=not args.dry_run,
                repo_id=args.repo_id,
                **push_kwargs,
            )
        except HubUnreachableError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.dry_run:
        print(f"wrote {folder} (not uploaded: --dry-run); upload later with "
              f"`huggingface-cli upload {args.repo_id} {folder}`")
    else:
        kept = f" (folder kept in {folder})" if args.out else ""
        print(f"uploaded to https://huggingface.co/{args.repo_id}{kept}")
    return 0
