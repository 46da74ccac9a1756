"""``inharmony models``: list the registered architectures and their weight tags."""

from __future__ import annotations

import argparse

NAME = "models"
HELP = "List registered models, their weight tags and whether the weights are published."
EXAMPLE = "inharmony models --pattern 'dirl*'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pattern", default="*", help="shell-style filter on model names")


def run(args: argparse.Namespace) -> int:
    from ..models import get_pretrained_cfg, list_models, list_pretrained

    names = list_models(args.pattern)
    if not names:
        print(f"no model matches {args.pattern!r}")
        return 1
    for name in names:
        default = get_pretrained_cfg(name)
        print(f"{name}  ({default.paper_url or 'no paper link'})")
        for tagged in list_pretrained(f"{name}.*") or [name]:
            cfg = get_pretrained_cfg(tagged)
            where = f"{cfg.hf_hub_id}@{cfg.revision}" if cfg.hf_hub_id else "weights not published yet"
            scores = ", ".join(f"{k}={v}" for k, v in cfg.metrics.items())
            print(f"  {cfg.name:<28} {where}" + (f"  reference: {scores}" if scores else ""))
    return 0
