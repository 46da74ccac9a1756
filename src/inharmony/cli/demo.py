"""``inharmony demo``: synthesize data, train, test and draw predictions, on a CPU, offline."""

from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["demo", "find_config", "trivial_scores"]


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


def demo(
    out: str = "inharmony-demo",
    config: str | None = None,
    n: int = 480,
    seed: int = 0,
    steps: int | None = None,
    panels: int = 16,
    overrides: list[str] | None = None,
) -> int:
    """Train and test a small model on synthetic composites (CPU, offline, a few minutes).

    Steps: (1) write synthetic composites from scikit-image's bundled photos (no download), some
    photos held out for test only; (2) train ``configs/demo.yaml``; (3) test the best checkpoint on
    the held-out photos' composites and print the table next to an "all foreground" predictor;
    (4) save ``image | ground truth | prediction`` panels. Everything goes to ``--out``.

    Args:
        out: Output folder.
        config: Training config (default: the packaged ``demo.yaml``).
        n: Synthetic composites to make (train + test).
        seed: Seed of the data and of training.
        steps: Override the config's ``trainer.max_steps``.
        panels: Prediction panels to write.
        overrides: Extra LightningCLI options, given after ``--``, e.g. ``-- --trainer.max_time 00:00:05:00``.

    Example:
        inharmony demo --out ./inharmony-demo
    """
    import torch

    from ..data.synth import synthesize
    from ..metrics.report import print_results_table, results_markdown
    from ..visualize import save_panel
    from .lightning import lightning_cli

    start = time.perf_counter()
    root = Path(out).resolve()
    recipe = Path(config) if config else find_config("demo.yaml")
    data = root / "data"
    print(f"[1/4] synthesizing {n} composites from scikit-image's photos into {data}")
    summary = synthesize(data, n=n, seed=seed, size=64, test_fraction=0.2, progress=False)
    print(f"      train {summary['train']}, test {summary['test']} (photos held out: {summary['test_photos']})")

    common = ["--config", str(recipe), "--data.root", str(data), "--trainer.default_root_dir", str(root / "run"),
              "--seed_everything", str(seed)]  # fmt: skip
    if steps is not None:
        common += ["--trainer.max_steps", str(steps)]
    common += list(overrides or [])
    print(f"[2/4] training {recipe.name}")
    fit_start = time.perf_counter()
    fit = lightning_cli(["fit", *common])
    from ..checkpointing import LastCheckpoint

    last = next((c.last_model_path for c in fit.trainer.callbacks if isinstance(c, LastCheckpoint)), "")
    best = fit.trainer.checkpoint_callback.best_model_path or last
    fit_seconds = time.perf_counter() - fit_start
    trained_steps = fit.trainer.global_step

    print(f"[3/4] testing {Path(best).name} on composites of photos not used in training")
    test = lightning_cli(["test", *common, "--ckpt_path", best, "--out", str(root), "--trainer.logger", "false"])
    results = test.test_results

    print(f"[4/4] writing prediction panels (image | ground truth | prediction) to {root / 'predictions'}")
    model = test.model.eval()
    datamodule = test.datamodule
    datamodule.setup("test")
    masks, written = [], 0
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            preds = model(batch["image"])["mask"]
            for image, target, pred, path in zip(batch["image"], batch["mask"], preds, batch["path"], strict=True):
                masks.append(target)
                if written < panels:
                    save_panel(root / "predictions" / f"{Path(path).stem}.png", image, target, pred, 128)
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
        "train_steps": trained_steps,
        "train_seconds": round(fit_seconds, 1),
        "total_seconds": round(total, 1),
        "best_checkpoint": best,
        "config": str(recipe),
        "data": summary,
    }
    (root / "demo.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    title = f"demo: {fit.model.model_name}, {trained_steps} steps, {fit_seconds / 60:.1f} min"
    md = results_markdown(results, title=title)
    md += "\n" + results_markdown({"all foreground (trivial)": trivial}, title="trivial predictor") + f"\n{verdict}\n"
    (root / "metrics.md").write_text(md)
    print(f"\n{verdict}")
    print(f"done in {total / 60:.1f} min ({trained_steps} training steps in {fit_seconds / 60:.1f} min)")
    print(f"table: {root / 'metrics.md'} and {root / 'metrics.json'}; panels: {root / 'predictions'}")
    print(f"checkpoint: {best}; everything: {root}")
    return 0
