"""``inharmony demo``: synthesize data, train, test and draw predictions, on a CPU, offline."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Literal

from ..errors import TrainingCommandError
from ..files import atomic_write

__all__ = ["demo", "find_config", "read_recipe", "trivial_scores"]


def find_config(name: str) -> Path:
    """A packaged config: ``inharmony/configs/<name>`` in a wheel, ``<repo>/configs/<name>`` in a checkout."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "configs" / name, here.parents[3] / "configs" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"config {name!r} not found beside the package; pass --config PATH")


def read_recipe(path: str | Path) -> dict[str, Any]:
    """What the demo prints about a training config: model, step budget, size, batch, precision, schedule.

    Example:
        >>> read_recipe(find_config("demo.yaml"))["max_steps"] > 0
        True
    """
    import yaml

    config = yaml.safe_load(Path(path).read_text()) or {}
    trainer, model = config.get("trainer") or {}, config.get("model") or {}
    data = (config.get("data") or {}).get("init_args") or config.get("data") or {}
    scheduler = model.get("lr_scheduler") or {}
    callbacks = trainer.get("callbacks") or []
    return {
        "model": model.get("model", "dirl"),
        "max_steps": trainer.get("max_steps"),
        "image_size": data.get("image_size", 224),
        "batch_size": data.get("batch_size", 8),
        "precision": trainer.get("precision") or "32-true",
        "one_cycle": isinstance(scheduler, dict) and str(scheduler.get("class_path", "")).endswith("OneCycleLR"),
        "has_progress": any(
            isinstance(c, dict) and str(c.get("class_path", "")).endswith("StepBudgetProgress") for c in callbacks
        ),
    }


def _wants_precision(overrides: list[str] | None) -> bool:
    return any(arg.split("=", 1)[0] == "--trainer.precision" for arg in overrides or [])


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
    panel_size: int = 256,
    test_checkpoint: Literal["last", "best"] = "last",
    tta: Literal["none", "h", "v", "hv"] = "hv",
    verbose: bool = False,
    overrides: list[str] | None = None,
) -> int:
    """Train and test a small model on synthetic composites (CPU, offline, a few minutes).

    Steps: (1) write synthetic composites from scikit-image's bundled photos (no download), some
    photos held out for test only; (2) train ``configs/demo.yaml`` for its step budget
    (``trainer.max_steps``; no time cap: a busy machine takes longer, it never trains less), printing
    progress with an ETA; (3) test the trained weights on the held-out photos' composites, one pass per
    image and with flip test-time augmentation (``tta``), and print the tables next to an "all
    foreground" predictor; (4) save ``image | ground truth | prediction``
    panels, enlarged to ``panel_size`` pixels high (nearest neighbour, so the network's pixels stay
    visible). Everything goes to ``--out``.

    Args:
        out: Output folder.
        config: Training config (default: the packaged ``demo.yaml``).
        n: Synthetic composites to make (train + test).
        seed: Seed of the data and of training.
        steps: Step budget: overrides the config's ``trainer.max_steps`` (and the length of a
            one-cycle learning-rate schedule, which follows the budget).
        panels: Prediction panels to write.
        panel_size: Height in pixels of each panel's tiles (enlarged by an integer factor, nearest).
        test_checkpoint: Which weights to test: ``last`` (the final ones, where the one-cycle schedule anneals
            to) or ``best`` (the checkpoint with the best validation IoU, scored on a few dozen
            composites of the training photos: too few to choose well, see demo.yaml).
        tta: The headline score's test-time augmentation: ``hv`` (default) averages the masks of the four
            flips of each image (:class:`~inharmony.inference.tta.FlipAverage`; 4 passes, +2.6 IoU points on average on
            this test set, see demo.yaml), ``h`` / ``v`` two of them, ``none`` one pass. The one-pass
            table is always printed and saved too.
        verbose: Also show Lightning's own output (info lines, model summary, raw metric tables) and
            third-party warnings; off by default so the progress and inharmony's tables stand out.
        overrides: Extra LightningCLI options, given after ``--``, e.g. ``-- --trainer.precision 32-true``.

    Example:
        inharmony demo --out ./inharmony-demo
    """
    import torch

    from ..data.synth import synthesize
    from ..inference import bf16_is_fast
    from ..metrics.report import print_results_table, results_markdown
    from ..training.callbacks.predictions import save_panel
    from .lightning import lightning_cli

    for option, value, least in (("--n", n, 10), ("--panels", panels, 0), ("--panel-size", panel_size, 8)):
        if value < least:
            raise TrainingCommandError(f"{option} {value}: must be at least {least}")
    if steps is not None and steps < 1:
        raise TrainingCommandError(f"--steps {steps}: the step budget must be at least 1")
    start = time.perf_counter()
    root = Path(out).resolve()
    recipe = Path(config) if config else find_config("demo.yaml")
    data = root / "data"
    print(f"[1/4] synthesizing {n} composites from scikit-image's photos into {data}")
    summary = synthesize(data, n=n, seed=seed, size=64, test_fraction=0.2, progress=False)
    print(f"      train {summary['train']}, test {summary['test']} (photos held out: {summary['test_photos']})")

    # One checkpoint folder for fit and test: the test's checkpoint callback then matches the state saved at
    # fit (otherwise Lightning warns that the dirpath changed, naming a folder that never exists).
    common = ["--config", str(recipe), "--data.root", str(data), "--trainer.default_root_dir", str(root / "run"),
              "--checkpoint.dirpath", str(root / "run" / "checkpoints"), "--seed_everything", str(seed)]  # fmt: skip
    if verbose:
        common.append("--verbose")
    plan = read_recipe(recipe)
    budget = plan["max_steps"] if steps is None else steps
    if budget is None or budget < 1:
        raise TrainingCommandError(f"the demo needs a step budget: set trainer.max_steps in {recipe} or pass --steps N")
    common += ["--trainer.max_steps", str(budget)]
    if plan["one_cycle"]:
        common += ["--model.lr_scheduler.init_args.total_steps", str(budget)]
    if plan["precision"].startswith("bf16") and not _wants_precision(overrides) and not bf16_is_fast("cpu"):
        # bf16 pays only where the CPU has native bf16 dot products; elsewhere it is emulated and slower.
        common += ["--trainer.precision", "32-true"]
        plan["precision"] = "32-true (this CPU has no AVX512-BF16/AMX; the recipe's bf16-mixed would be slower)"
    common += list(overrides or [])
    fit_args = ["fit", *common]
    if not plan["has_progress"]:  # a config of the user's own: progress lines all the same
        fit_args += ["--trainer.callbacks+=inharmony.training.callbacks.StepBudgetProgress"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"[2/4] training {recipe.name}: {plan['model']}, {budget} steps (the budget: no time cap), "
        f"{plan['image_size']} px, batch {plan['batch_size']}, {plan['precision']}; load average {load:.1f} "
        f"on {os.cpu_count()} CPUs (a busy machine makes it slower, never shorter)"
    )
    fit_start = time.perf_counter()
    fit = lightning_cli(fit_args)
    from ..training.checkpointing import LastCheckpoint

    last = next((c.last_model_path for c in fit.trainer.callbacks if isinstance(c, LastCheckpoint)), "")
    best = fit.trainer.checkpoint_callback.best_model_path or last
    tested = last if test_checkpoint == "last" and last else best
    fit_seconds = time.perf_counter() - fit_start
    trained_steps = fit.trainer.global_step
    if trained_steps < budget:
        print(f"WARNING: training stopped after {trained_steps} of {budget} steps (a time limit or an early stop)")

    print(f"[3/4] testing {Path(tested).name} on composites of photos not used in training")
    test_args = ["test", *common, "--ckpt_path", tested, "--trainer.logger", "false"]
    one_pass_dir = root / "test-one-pass" if tta != "none" else root
    test = lightning_cli([*test_args, "--out", str(one_pass_dir)])
    one_pass = test.test_results
    results = one_pass
    if tta != "none":
        print(f"      and again with flip test-time augmentation ({tta}: the masks of flipped copies averaged)")
        test = lightning_cli([*test_args, "--out", str(root), "--tta", tta])
        results = test.test_results

    shown = min(panels, summary["test"])
    print(
        f"[4/4] writing {shown} prediction panels for {shown} of the {summary['test']} test images (image | ground "
        f"truth | prediction, {plan['image_size']}-px network input enlarged to {panel_size} px, nearest; "
        f"--panels N for more) to {root / 'predictions'}"
    )
    model = test.model.eval()
    if tta != "none":
        from ..inference.tta import FlipAverage

        model = FlipAverage(model, flips=tta)
    datamodule = test.datamodule
    datamodule.setup("test")
    masks, written = [], 0
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            preds = model(batch["image"])["mask"]
            for image, target, pred, path in zip(batch["image"], batch["mask"], preds, batch["path"], strict=True):
                masks.append(target)
                if written < panels:
                    save_panel(root / "predictions" / f"{Path(path).stem}.png", image, target, pred, panel_size)
                    written += 1

    trivial = trivial_scores(masks)
    print_results_table({"all foreground (trivial)": trivial}, title="trivial predictor, same test images")
    model_iou, trivial_iou = results["All"]["iou"], trivial["iou"]
    how = f"with flip TTA {tta} (one pass: {one_pass['All']['iou']:.3f})" if tta != "none" else "one pass"
    verdict = (
        f"IoU {model_iou:.3f} {how} vs {trivial_iou:.3f} for predicting all foreground "
        f"({model_iou / trivial_iou:.1f}×, {100 * (model_iou - trivial_iou):+.1f} points)"
    )
    total = time.perf_counter() - start
    report = {
        "results": results,
        "tta": tta,
        "results_one_pass": one_pass,
        "trivial_all_foreground": trivial,
        "train_steps": trained_steps,
        "step_budget": budget,
        "train_seconds": round(fit_seconds, 1),
        "seconds_per_step": round(fit_seconds / max(1, trained_steps), 3),
        "load_average": [load, os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")],
        "total_seconds": round(total, 1),
        "tested_checkpoint": tested,
        "best_checkpoint": best,
        "config": str(recipe),
        "data": summary,
    }
    with atomic_write(root / "demo.json", "w") as fh:
        fh.write(json.dumps(report, indent=2, default=str) + "\n")
    title = f"demo: {fit.model.model_name}, {trained_steps} steps, {fit_seconds / 60:.1f} min"
    md = results_markdown(results, title=title + (f", flip TTA {tta}" if tta != "none" else ""))
    if tta != "none":
        md += "\n" + results_markdown(one_pass, title=title + ", one pass per image")
    md += "\n" + results_markdown({"all foreground (trivial)": trivial}, title="trivial predictor") + f"\n{verdict}\n"
    with atomic_write(root / "metrics.md", "w") as fh:
        fh.write(md)
    print(f"\n{verdict}")
    print(f"done in {total / 60:.1f} min ({trained_steps} training steps in {fit_seconds / 60:.1f} min)")
    print(f"table: {root / 'metrics.md'} and {root / 'metrics.json'}; panels: {root / 'predictions'}")
    print(f"checkpoint: {tested}; everything: {root}")
    return 0
