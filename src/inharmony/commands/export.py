"""``inharmony export``: ONNX with dynamic batch and size, verified against eager PyTorch."""

from __future__ import annotations

import argparse
import sys

NAME = "export"
HELP = "Export a model to ONNX (dynamic batch, height, width) and check it against PyTorch with ONNX Runtime."
EXAMPLE = "inharmony export --model dirl --weights dirl_hub_folder --format onnx --out dirl.onnx"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="dirl", help="registered model name (default: dirl)")
    parser.add_argument("--weights", default=None,
                        help="hub folder, Hub id, state dict, .ckpt; default: published weights")
    parser.add_argument("--random-weights", action="store_true", help="export an untrained model (for tests)")
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="export format (default: onnx)")
    parser.add_argument("--out", required=True, help="output file, e.g. dirl.onnx")
    parser.add_argument("--size", type=int, default=224, help="example input size for tracing (default 224)")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--check-sizes", default="224x224,160x288",
                        help="HxW sizes compared against eager after export ('' to skip); default 224x224,160x288")
    parser.add_argument("--atol", type=float, default=1e-4)


def _sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        height, _, width = item.partition("x")
        sizes.append((int(height), int(width or height)))
    return sizes


def run(args: argparse.Namespace) -> int:
    from ..export import check_onnx, export_onnx

    try:
        sizes = _sizes(args.check_sizes)
        if args.random_weights:
            if args.weights:
                raise ValueError("give --weights or --random-weights, not both")
            from ..models import create_model

            model = create_model(args.model).eval()
        else:
            from ..hub import load

            model = load(args.model, weights=args.weights)
        path = export_onnx(model, args.out, size=args.size, opset=args.opset)
    except (ImportError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if sizes:
        try:
            report = check_onnx(model, path, sizes=sizes, atol=args.atol)
        except AssertionError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        for (height, width), diff in report.items():
            print(f"checked {height}x{width}: max |onnx - eager| = {diff:.2e}")
    print(f"wrote {path}")
    return 0
