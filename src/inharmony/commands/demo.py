"""``inharmony demo``: synthesize data, train, test and draw predictions, on a CPU, offline.

Steps: (1) write synthetic composites from scikit-image's bundled photos (no download), some
photos held out for test only; (2) train ``configs/demo.yaml``; (3) test the best checkpoint on the
held-out photos' composites and print the table next to an "all foreground" predictor; (4) save
``image | ground truth | prediction`` panels. Everything goes to ``--out`` (``./inharmony-demo``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

NAME = "demo"
HELP = "Train and test a small model on synthetic composites (CPU, offline, a few minutes)."
EXAMPLE = "inharmony demo --out ./inharmony-demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="inharmony-demo", help="output folder (default: ./inharmony-demo)")
    parser.add_argument("--config", default=None, help="training config (default: the packaged demo.yaml)")
    parser.add_argument("--n", type=int, default=480, help="synthetic composites to make (train + test)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of training")
    parser.add_argument("--steps", type=int, default=None, help="override the config's trainer.max_steps")
    parser.add_argument("--panels", type=int, default=16, help="prediction panels to write")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="extra LightningCLI options after '--', e.g. -- --trainer.max_time 00:00:05:00",
    )


def find_config(name: str) -> Path:
    """A packaged config: ``inharmony/configs/<name>`` in a wheel, ``<repo>/configs/<name>`` in a checkout."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "configs" / name, here.parents[3] / "configs" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"config {name!r} not found beside the package; pass --config PATH")


def trivial_scores(masks: list) -> dict[str, float]:
    """Per-image AP, F1 and IoU of predicting every pixel as foreground, averaged over images.

    With a constant score, AP equals the foreground fraction f; at threshold 0.5 the binary
    prediction is all ones, so IoU = f and F1 = 2f / (1 + f).
    """
    fractions = [float((m > 0.5).float().mean()) for m in masks]
    fractions = [f for f in fractions if f > 0]
    n = len(fractions)
    return {
        "ap": sum(fractions) / n,
        "f1": sum(2 * f / (1 + f) for f in fractions) / n,
        "iou": sum(fractions) / n,
        "images": float(n),
    }


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data.synth import synthesize
    from ..results import print_results_table, results_markdown
    from ..visualize import save_panel
    from .train import build_cli, execute

    start = time.perf_counter()
    out = Path(args.out).resolve()
    config = Path(args.config) if args.config else find_config("demo.yaml")
    data = out / "data"
    print(f"[1/4] synthesizing {args.n} composites from scikit-image's photos into {data}")
    summary = synthesize(data, n=args.n, seed=args.seed, size=64, test_fraction=0.2, progress=False)
    print(f"      train {summary['train']}, test {summary['test']} (photos held out: {summary['test_photos']})")

    common = [
        "--config",
        str(config),
        "--data.root",
        str(data),
        "--trainer.default_root_dir",
        str(out / "run"),
        "--seed_everything",
        str(args.seed),
    ]
    if args.steps is not None:
        common += ["--trainer.max_steps", str(args.steps)]
    common += list(args.overrides)
    print(f"[2/4] training {config.name}")
    fit_start = time.perf_counter()
    fit = build_cli("fit", common)
    best = execute(fit, "fit")["best_model_path"] or fit.trainer.checkpoint_callback.last_model_path
    fit_seconds = time.perf_counter() - fit_start
    steps = fit.trainer.global_step

    print(f"[3/4] testing {Path(best).name} on composites of photos not used in training")
    test = build_cli("test", [*common, "--ckpt_path", best, "--out", str(out), "--trainer.logger", "false"])
    results = execute(test, "test")["results"]

    print(f"[4/4] writing prediction panels (image | ground truth | prediction) to {out / 'predictions'}")
    model = test.model.eval()
    datamodule = test.datamodule
    datamodule.setup("test")
    masks, written = [], 0
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            preds = model(batch["image"])["mask"]
            for image, target, pred, path in zip(batch["image"], batch["mask"], preds, batch["path"], strict=True):
                masks.append(target)
                if written < args.panels:
                    save_panel(out / "predictions" / f"{Path(path).stem}.png", image, target, pred, 128)
                    written += 1

    trivial = trivial_scores(masks)
    print_results_table({"all foreground (trivial)": trivial}, title="trivial predictor, same test images")
    model_iou, trivial_iou = results["All"]["iou"], trivial["iou"]
    verdict = (
        f"IoU {model_iou:.3f} vs {trivial_iou:.3f} for predicting all foreground "
        f"({model_iou / trivial_iou:.1f}×, {100 * (model_iou - trivial_iou):+.1f} points)"
    )
    total = time.perf_counter() - start
    report = {
        "results": results,
        "trivial_all_foreground": trivial,
        "train_steps": steps,
        "train_seconds": round(fit_seconds, 1),
        "total_seconds": round(total, 1),
        "best_checkpoint": best,
        "config": str(config),
        "data": summary,
    }
    (out / "demo.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    md = results_markdown(results, title=f"demo: {fit.model.model_name}, {steps} steps, {fit_seconds / 60:.1f} min")
    md += "\n" + results_markdown({"all foreground (trivial)": trivial}, title="trivial predictor") + f"\n{verdict}\n"
    (out / "metrics.md").write_text(md)
    print(f"\n{verdict}")
    print(f"done in {total / 60:.1f} min ({steps} training steps in {fit_seconds / 60:.1f} min)")
    print(f"table: {out / 'metrics.md'} and {out / 'metrics.json'}; panels: {out / 'predictions'}")
    print(f"checkpoint: {best}; everything: {out}")
    return 0
