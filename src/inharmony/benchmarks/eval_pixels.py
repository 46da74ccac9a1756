"""``inharmony bench eval_pixels``: how much the fast evaluation pixels change a model's scores, and save.

The official evaluation pixels (:data:`inharmony.preprocessing.OFFICIAL_PIXELS`, the DIRL authors' test
loader) decode every photo at full size; the fast ones (:data:`~inharmony.preprocessing.FAST_PIXELS`)
decode large JPEGs at 1/2–1/8 scale, shrink with ``INTER_AREA`` and keep mask ``>= 0.5``. This bench makes
synthetic composites from LARGE photos (scikit-image's bundled photos, or ``--photos``, upscaled to
``--sizes``; one region of :func:`~inharmony.data.synth.random_region_mask` recoloured), evaluates one
model on them both ways with the official metrics (per-image AP, F1, IoU, as ``inharmony test`` scores
them), and prints both rows, their difference, and the decode + preprocess time per image each way.
Everything stays in memory.
"""

from __future__ import annotations

import time

from ._options import NonNegativeInt, PositiveInt, parse_sizes

NAME = "eval_pixels"
HELP = "Scores and decode time of one model with the official (authors') vs the fast evaluation pixels."
SMOKE_ARGS = ["--n", "1", "--sizes", "96x128", "--image-size", "32"]


def _composites(n: int, sizes: list[tuple[int, int]], photos: str | None, seed: int) -> list[tuple[str, bytes, bytes]]:
    """``(name, composite JPEG bytes, mask PNG bytes)`` for ``n`` composites per size."""
    import cv2
    import numpy as np

    from ..data.synth import load_photos, random_region_mask

    rng = np.random.default_rng(seed)
    if photos:
        pictures = list(load_photos(photos).items())
    else:
        import skimage.data

        pictures = [(name, getattr(skimage.data, name)()) for name in ("astronaut", "coffee", "chelsea", "rocket")]
    out = []
    for h, w in sizes:
        for i in range(n):
            name, photo = pictures[len(out) % len(pictures)]
            # Upscaled with a little noise so the JPEG compresses like a photo, not like a smooth blow-up.
            real = cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC)
            real = np.clip(real + rng.integers(-4, 5, real.shape, dtype=np.int16), 0, 255).astype(np.uint8)
            # Drawn at ≤ 1024 px (drawing at 6000 px takes seconds), enlarged with smooth edges.
            scale = min(1.0, 1024 / max(h, w))
            small = random_region_mask(rng, max(8, round(h * scale)), max(8, round(w * scale)), 0.05, 0.5)
            mask = np.where(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) > 127, 255, 0).astype(np.uint8)
            # The region's colour and lighting change (per-channel gain and a gamma), as iHarmony4's do.
            region = mask > 0
            values = real[region].astype(np.float32) / 255
            changed = values ** rng.uniform(0.6, 1.5) * rng.uniform(0.6, 1.4, 3).astype(np.float32)
            real[region] = np.clip(np.rint(changed * 255), 0, 255).astype(np.uint8)
            jpeg = cv2.imencode(".jpg", real[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            out.append((f"{name}-{h}x{w}-{i}", jpeg, cv2.imencode(".png", mask)[1].tobytes()))
    return out


def _evaluate(model, items, preps: dict, device: str) -> tuple[dict, dict, dict]:
    """Per preset: mean AP/F1/IoU, decode + preprocess seconds of every image, and the (image, target) tensors.

    The presets take turns image by image, so that load changes hit both alike.
    """
    import torch

    from ..data.decode import decode_pair
    from ..metrics import per_image_scores

    scores: dict[str, dict[str, list[float]]] = {name: {"ap": [], "f1": [], "iou": []} for name in preps}
    seconds: dict[str, list[float]] = {name: [] for name in preps}
    tensors: dict[str, list] = {name: [] for name in preps}
    for item_name, composite, mask in items:
        for name, prep in preps.items():
            start = time.perf_counter()
            image, target = decode_pair(composite, mask, item_name, item_name, min_side=prep.min_source_side)
            x, y = prep(image, target)
            seconds[name].append(time.perf_counter() - start)
            tensors[name].append((x, y))
            with torch.inference_mode():
                out = model(x[None].to(device))
            pred = (out["mask"] if isinstance(out, dict) else out).float().cpu()
            for key, value in per_image_scores(pred, y[None]).items():
                if not torch.isnan(value).any():
                    scores[name][key].append(float(value[0]))
    means = {
        name: {key: sum(v) / len(v) if v else float("nan") for key, v in per_key.items()}
        for name, per_key in scores.items()
    }
    return means, seconds, tensors


def run(
    weights: str | None = None,
    model: str = "dirl_resnet18",
    n: PositiveInt = 1,
    sizes: str = "1200x1600",
    image_size: PositiveInt | None = None,
    photos: str | None = None,
    seed: NonNegativeInt = 0,
    device: str = "cpu",
    trust_checkpoint: bool = False,
    json: str | None = None,
) -> int:
    """Scores and decode time of one model with the official (authors') vs the fast evaluation pixels.

    Without ``--weights`` the model is randomly initialised: the command then only shows that it runs
    (the scores mean nothing). Give a checkpoint of a trained model (``inharmony fit`` / ``inharmony demo``
    write ``.ckpt`` files) to measure a real difference.

    Args:
        weights: The model's weights (a ``.ckpt``, a hub folder, a state dict; see ``inharmony.load``).
        model: Registered model name the weights belong to.
        n: Synthetic composites per size.
        sizes: ``HxW`` of the photos, comma-separated (iHarmony4's HAdobe5k photos reach ~4000x6000).
        image_size: Network input side (default: the model's ``pretrained_cfg`` input size).
        photos: A folder of photos to upscale (default: scikit-image's bundled photos, no download).
        seed: Seed of the synthetic composites.
        device: Where the model runs.
        trust_checkpoint: Allow pickled objects in a ``.ckpt`` you made yourself.
        json: Also write the report as JSON to this path.

    Example:
        inharmony bench eval_pixels --weights runs/demo/best.ckpt --n 8 --sizes 2000x3000,3000x4000
    """
    from ..models import create_model, load
    from ..preprocessing import PIXEL_PRESETS, EvalPreprocess
    from ._report import BenchReport, environment

    report = BenchReport(NAME, environment(device))
    if weights:
        net = load(model, weights, trust_checkpoint=trust_checkpoint)
    else:
        net = create_model(model, pretrained=False)
        report.notes.append("no --weights: a randomly initialised model (the scores mean nothing)")
    net = net.eval().to(device)
    cfg = getattr(net, "pretrained_cfg", None)
    if image_size is None:
        image_size = int(cfg.input_size[-1]) if cfg is not None else 224
    shapes = parse_sizes(sizes, "--sizes")
    start = time.perf_counter()
    items = _composites(n, shapes, photos, seed)
    report.notes.append(f"{len(items)} synthetic composites ({sizes}) made in {time.perf_counter() - start:.1f}s; "
                        f"model {model}, input {image_size}px")  # fmt: skip
    mean = getattr(cfg, "mean", None) or (0.485, 0.456, 0.406)
    std = getattr(cfg, "std", None) or (0.229, 0.224, 0.225)
    preps = {name: EvalPreprocess(image_size, mean=mean, std=std, pixels=px) for name, px in PIXEL_PRESETS.items()}
    scores, seconds, tensors = _evaluate(net, items, preps, device)
    section = report.section(
        f"{model} at {image_size}px on {sizes} photos: decode+preprocess (ms/image), AP (%), F1, IoU (%)",
        unit="ms",
        baseline="official" if "official" in seconds else None,
        per="/img",
    )
    for name, times in seconds.items():
        row = scores[name]
        section.add(name, times, **{"AP (%)": round(100 * row["ap"], 2), "F1": round(row["f1"], 4),
                                    "IoU (%)": round(100 * row["iou"], 2)})  # fmt: skip
    report.results["scores"] = scores
    if {"official", "fast"} <= set(scores):
        official, fast = scores["official"], scores["fast"]
        delta = {key: fast[key] - official[key] for key in official}
        report.results["fast - official"] = delta
        section.notes.append(f"fast - official: AP {100 * delta['ap']:+.2f} points, F1 {delta['f1']:+.4f}, "
                             f"IoU {100 * delta['iou']:+.2f} points")  # fmt: skip
        pairs = list(zip(tensors["official"], tensors["fast"], strict=True))
        input_diff = max(float((a[0] - b[0]).abs().max()) for a, b in pairs)
        mask_diff = [int((a[1] != b[1]).sum()) for a, b in pairs]
        report.results["input_max_abs_diff"] = input_diff
        report.results["ground_truth_pixels_differing"] = mask_diff
        section.notes.append(f"inputs differ by up to {input_diff:.3f} (normalised units); ground-truth pixels that "
                             f"differ at {image_size}px: {sum(mask_diff) / len(mask_diff):.1f} per image "
                             f"(max {max(mask_diff)})")  # fmt: skip
    return report.finish(json)
