"""Synthetic inharmonious composites in the iHarmony4 layout, from any folder of photos.

The iHarmony4 composites were made by changing the colour or lighting of one region of a real photo.
:func:`synthesize` does the same: for each real image (a random crop of a photo) it draws a region mask
(ellipse, polygon, rotated rectangle or smooth blob; or one of the user's masks) covering
``min_fg``–``max_fg`` of the image, changes the region only (colour transfer from another photo,
exposure, gamma, white balance, saturation, contrast) and writes
``<out>/<subset>/{composite_images,masks,real_images}/`` with iHarmony4 names (``<real>_<fg>_1.jpg``),
the lists ``<subset>/<subset>_{train,test}.txt`` and root ``IHD_{train,test}.txt`` (merged with any
existing root lists). An existing subset that synth did not write (the real HCOCO, say) is never touched:
the call is refused; an earlier synth of the same subset is replaced. Every file is written atomically.
Test composites come from photos never used for training (``test_photos``).

With ``photos=None`` the photos bundled with scikit-image (``skimage.data``) are used: no network.

Example:
    >>> summary = synthesize("/tmp/hsynth", n=200, seed=0, size=128)  # doctest: +SKIP
    >>> summary["train"], summary["test"]  # doctest: +SKIP
    (160, 40)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import DataError, OutputExistsError
from ..files import atomic_write, atomic_write_bytes

__all__ = [
    "SKIMAGE_PHOTOS",
    "apply_appearance_change",
    "lab_stats",
    "load_photos",
    "random_region_mask",
    "synthesize",
]

# Natural photos shipped inside scikit-image (no download); grey ones are used as 3-channel images.
SKIMAGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "hubble_deep_field",
    "immunohistochemistry", "retina", "camera", "coins", "moon", "clock", "brick", "grass", "gravel",
)  # fmt: skip
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# -- photos ------------------------------------------------------------------------------------------


def _to_rgb8(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        image = np.clip(image.astype(np.float64) / max(1e-9, float(image.max())) * 255, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DataError(f"photo {name}: unsupported shape {image.shape}")
    return np.ascontiguousarray(image[..., :3])


def load_photos(
    photos: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
) -> dict[str, np.ndarray]:
    """Photos by name (file stem) as RGB ``uint8``; ``None`` = scikit-image's bundled photos."""
    if photos is None:
        import skimage.data

        out = {}
        for name in SKIMAGE_PHOTOS:
            image = getattr(skimage.data, name)()
            out[name.replace("_", "-")] = _to_rgb8(image[0] if isinstance(image, tuple) else image, name)
        return out
    if isinstance(photos, (str, os.PathLike)):
        folder = Path(photos)
        if not folder.is_dir():
            raise DataError(f"--photos {str(folder)!r} is not a folder")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_EXTS)
        if not paths:
            raise DataError(f"no images ({', '.join(_IMAGE_EXTS)}) in {folder}")
    else:
        paths = [Path(p) for p in photos]
    out = {}
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"cannot read photo {path}")
        # "_" separates the fields of iHarmony4 names; keep it out of the real-image stem.
        out[path.stem.replace("_", "-").replace(" ", "-")] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return out


def _random_crop(rng: np.random.Generator, photo: np.ndarray, size: int | None) -> np.ndarray:
    h, w = photo.shape[:2]
    side = rng.uniform(0.6, 1.0)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch = int(min(h, round(min(h, w) * side / np.sqrt(aspect))))
    cw = int(min(w, round(min(h, w) * side * np.sqrt(aspect))))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = photo[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if size:
        scale = size / max(ch, cw)
        crop = cv2.resize(crop, (max(8, round(cw * scale)), max(8, round(ch * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)


# -- region masks ------------------------------------------------------------------------------------


def _shape_mask(rng: np.random.Generator, h: int, w: int, target: float) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    kind = rng.choice(["ellipse", "polygon", "rectangle", "blob"])
    area = target * h * w
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    if kind == "blob":
        noise = rng.normal(size=(max(2, h // 16), max(2, w // 16))).astype(np.float32)
        field = cv2.GaussianBlur(cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), max(h, w) / 24)
        mask[field >= np.quantile(field, 1 - target)] = 255
        return mask
    if kind == "ellipse":
        ratio = rng.uniform(0.4, 1.0)
        a = np.sqrt(area / (np.pi * ratio))
        cv2.ellipse(mask, (round(cx), round(cy)), (round(a), round(a * ratio)), rng.uniform(0, 180), 0, 360, 255, -1)
        return mask
    if kind == "rectangle":
        ratio = rng.uniform(0.3, 1.0)
        a = np.sqrt(area / ratio)
        box = cv2.boxPoints(((cx, cy), (a, a * ratio), rng.uniform(0, 90)))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 255)
        return mask
    k = int(rng.integers(5, 12))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radii = rng.uniform(0.5, 1.0, k)
    # A star-shaped polygon with mean radius r has area ≈ ½·r²·Σ sin(Δθ)·radii_i·radii_{i+1}.
    dtheta = np.diff(np.append(angles, angles[0] + 2 * np.pi))
    unit_area = 0.5 * np.sum(np.sin(dtheta) * radii * np.roll(radii, -1))
    r = np.sqrt(area / max(unit_area, 1e-3))
    pts = np.stack([cx + r * radii * np.cos(angles), cy + r * radii * np.sin(angles)], axis=1)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    return mask


def random_region_mask(
    rng: np.random.Generator,
    height: int,
    width: int,
    min_fg: float = 0.05,
    max_fg: float = 0.5,
    user_masks: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """A ``uint8`` mask (0/255) of a random region covering between ``min_fg`` and ``max_fg`` of the image.

    Shapes vary in kind (ellipse, polygon, rotated rectangle, smooth blob), size and outline; with
    ``user_masks`` one of those (resized to the image) is drawn instead.
    """
    for _ in range(50):
        if user_masks:
            pick = user_masks[int(rng.integers(len(user_masks)))]
            mask = cv2.resize(pick, (width, height), interpolation=cv2.INTER_NEAREST)
        else:
            mask = _shape_mask(rng, height, width, rng.uniform(min_fg, max_fg))
        fraction = np.count_nonzero(mask) / mask.size
        if min_fg <= fraction <= max_fg:
            return mask
    what = "the given masks" if user_masks else "random shapes"
    raise DataError(f"could not draw a region covering {min_fg:.0%}–{max_fg:.0%} of the image from {what}")


# -- appearance changes ------------------------------------------------------------------------------


def lab_stats(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation in CIE Lab of an RGB image (``uint8`` or float in [0, 1])."""
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    if mask is None and max(image.shape[:2]) > 256:
        # Statistics of a photo barely change with size; a small copy is much cheaper to convert.
        scale = 256 / max(image.shape[:2])
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2LAB).reshape(-1, 3)
    if mask is not None:
        lab = lab[mask.reshape(-1) > 0]
    return lab.mean(0), lab.std(0) + 1e-3


def _colour_transfer(
    image: np.ndarray, mask: np.ndarray, reference: tuple[np.ndarray, np.ndarray], strength: float
) -> np.ndarray:
    # Reinhard et al. 2001: match the region's Lab mean and spread to the reference photo's.
    mu, sd = lab_stats(image, mask)
    mu_ref, sd_ref = reference
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    moved = (lab - mu) / sd * sd_ref + mu_ref
    lab = lab + strength * (moved - lab)
    lab[..., 0] = np.clip(lab[..., 0], 0, 100)
    return cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)


def _saturation(image: np.ndarray, factor: float) -> np.ndarray:
    grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
    return grey[..., None] + factor * (image - grey[..., None])


def _away_from_one(rng: np.random.Generator, low: float, high: float, gap: float) -> float:
    """A factor in [low, high] at least ``gap`` (in log scale) away from 1."""
    while True:
        value = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        if abs(np.log(value)) >= gap:
            return value


def apply_appearance_change(
    rng: np.random.Generator,
    image: np.ndarray,
    mask: np.ndarray,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
    min_change: float = 0.04,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Change colour and lighting inside ``mask`` only; returns the composite (uint8) and the ops applied.

    One to three operations are drawn from colour transfer (to ``reference``, the Lab statistics of
    another photo from :func:`lab_stats`), exposure, gamma,
    white balance, saturation and contrast, redrawn until the region's mean absolute change is at least
    ``min_change`` (on a 0–1 scale). Pixels outside the mask are returned unchanged.
    """
    real = image.astype(np.float32) / 255.0
    region = mask > 0
    names = sorted(["exposure", "gamma", "white_balance", "saturation", "contrast"])
    if reference is not None:
        names.append("colour_transfer")
    for _ in range(20):
        chosen = rng.choice(names, size=int(rng.integers(1, 4)), replace=False)
        changed, applied = real, []
        for name in chosen:
            changed, params = _apply_op(str(name), rng, changed, region, reference)
            applied.append({"op": str(name), **params})
        changed = np.clip(changed, 0, 1)
        if np.abs(changed[region] - real[region]).mean() >= min_change:
            break
    out = image.copy()
    out[region] = np.round(changed[region] * 255).astype(np.uint8)
    return out, applied


def _apply_op(
    name: str,
    rng: np.random.Generator,
    x: np.ndarray,
    region: np.ndarray,
    reference: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One appearance operation on the whole float image (the caller keeps only the region)."""
    if name == "exposure":
        ev = float(rng.choice([-1, 1]) * rng.uniform(0.3, 1.0))
        return x * 2.0**ev, {"ev": ev}
    if name == "gamma":
        g = _away_from_one(rng, 0.45, 2.2, 0.2)
        return np.clip(x, 0, 1) ** g, {"gamma": g}
    if name == "white_balance":
        gains = rng.uniform(0.65, 1.35, 3).astype(np.float32)
        return x * gains, {"gains": gains.round(3).tolist()}
    if name == "saturation":
        f = _away_from_one(rng, 0.2, 2.0, 0.3)
        return _saturation(x, f), {"factor": f}
    if name == "contrast":
        c = _away_from_one(rng, 0.45, 1.8, 0.25)
        mean = x[region].mean(0)
        return (x - mean) * c + mean, {"factor": c}
    if name == "colour_transfer" and reference is not None:
        strength = float(rng.uniform(0.6, 1.0))
        return _colour_transfer(np.clip(x, 0, 1), region, reference, strength), {"strength": strength}
    raise ValueError(f"unknown appearance operation {name!r}")


# -- writing -----------------------------------------------------------------------------------------


def _write(path: Path, image: np.ndarray, quality: int = 95) -> None:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix == ".jpg" else []
    ok, encoded = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise DataError(f"cannot encode {path}")
    atomic_write_bytes(path, encoded.tobytes())


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)


def _merge_root_list(path: Path, subset: str, entries: list[str]) -> None:
    kept = []
    if path.is_file():
        kept = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith(f"{subset}/")]
    _write_text(path, "".join(f"{ln}\n" for ln in [*kept, *entries]))


def _claim_subset(root: Path, subset: str) -> list[Path]:
    """The files an earlier ``synthesize`` run wrote in ``root/subset`` (to replace); refuse anyone else's.

    A subset folder holding files without our ``synth.json``, or root split lists naming the subset while
    its folder is not ours, is a dataset someone else made (e.g. the real HCOCO): nothing is written.
    """
    base = root / subset
    if base.exists() and not base.is_dir():
        raise OutputExistsError(f"{base} is a file; choose another --subset or --out")
    log = base / "synth.json"
    if log.is_file():
        try:
            composites = [c["composite"] for c in json.loads(log.read_text(encoding="utf-8"))["composites"]]
        except (ValueError, KeyError, TypeError) as err:
            raise OutputExistsError(
                f"{log} is not a readable synth.json ({err}); remove {base} yourself or choose another --subset"
            ) from err
        previous = [base / f"{subset}_train.txt", base / f"{subset}_test.txt", log]
        for name in composites:
            stem, fg, _ = Path(name).stem.rsplit("_", 2)
            ext = Path(name).suffix
            previous += [base / "composite_images" / name, base / "masks" / f"{stem}_{fg}.png",
                         base / "real_images" / f"{stem}{ext}"]  # fmt: skip
        _refuse_additions(root, subset, set(composites), set(previous))
        return previous
    foreign = next((p for p in base.rglob("*") if p.is_file()), None) if base.is_dir() else None
    listed = [
        f.name for f in (root / "IHD_train.txt", root / "IHD_test.txt")
        if f.is_file() and any(ln.startswith(f"{subset}/") for ln in f.read_text(errors="replace").splitlines())
    ]  # fmt: skip
    if foreign is not None or listed:
        what = f"{foreign}" if foreign is not None else f"entries of {subset} in {', '.join(listed)}"
        raise OutputExistsError(
            f"{root} already holds a {subset!r} subset that inharmony synth did not write ({what}); nothing was "
            "written. Choose another --subset (e.g. HSynth) or another --out."
        )
    return []


def _refuse_additions(root: Path, subset: str, composites: set[str], ours: set[Path]) -> None:
    """Refuse to replace a subset synth wrote once if anything beyond synth's own files is in it now.

    A file in the subset folder that ``synth.json`` does not list, or a list entry (root ``IHD_*.txt`` or the
    subset's own ``<subset>_*.txt``) naming a composite synth did not make, is someone else's work.
    """
    base = root / subset
    foreign = next((p for p in sorted(base.rglob("*")) if p.is_file() and p not in ours), None)
    if foreign is not None:
        raise OutputExistsError(
            f"{root} holds a {subset!r} subset that inharmony synth wrote, but {foreign} is not one of its files; "
            "nothing was written. Move your files out, or choose another --subset or --out."
        )
    lists = [(root / f"IHD_{split}.txt", f"{subset}/") for split in ("train", "test")]
    lists += [(base / f"{subset}_{split}.txt", "") for split in ("train", "test")]
    for path, prefix in lists:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            entry = line.strip()
            if entry and (not prefix or entry.startswith(prefix)) and Path(entry).name not in composites:
                raise OutputExistsError(
                    f"{path} lists {entry!r}, a {subset!r} composite inharmony synth did not write; nothing was "
                    f"written (replacing the {subset!r} subset would drop it from {path.name}). Choose another "
                    "--subset or --out."
                )


def _pick_test_photos(
    rng: np.random.Generator, names: list[str], test_photos: int | Sequence[str] | None, test_fraction: float
) -> list[str]:
    if test_photos is None:
        count = 0 if test_fraction <= 0 or len(names) < 2 else max(1, round(test_fraction * len(names)))
    elif isinstance(test_photos, int):
        count = test_photos
    else:
        wanted = [Path(str(p)).stem.replace("_", "-") for p in test_photos]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise DataError(f"test photos {unknown} are not among the photos: {names}")
        return wanted
    if count >= len(names) and count > 0:
        raise DataError(f"cannot hold out {count} of {len(names)} photos for test: training needs at least one")
    return sorted(rng.choice(names, size=count, replace=False).tolist()) if count else []


def synthesize(
    out: str | os.PathLike,
    n: int,
    seed: int = 0,
    photos: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    *,
    subset: str = "HSynth",
    test_fraction: float = 0.2,
    test_photos: int | Sequence[str] | None = None,
    size: int | None = 256,
    masks: str | os.PathLike | None = None,
    masks_per_image: int = 2,
    min_fg: float = 0.05,
    max_fg: float = 0.5,
    ext: str = "jpg",
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``n`` synthetic composites in the iHarmony4 layout under ``out/<subset>``.

    Args:
        out: dataset root to write (created; other subsets already there are left alone). A subset folder
            written by an earlier ``synthesize`` is replaced; one holding anyone else's files (or a subset
            named in the root lists without such a folder) raises :class:`~inharmony.errors.OutputExistsError`
            before anything is written.
        n: number of composites (train + test).
        seed: everything (crops, masks, changes, the split) follows from it.
        photos: a folder of photos, a list of paths, or ``None`` for scikit-image's bundled photos.
        subset: name of the subset folder.
        test_fraction: share of the composites listed as test.
        test_photos: photos whose composites go to test only (never seen in training): a count chosen
            with the seed, or names; ``None`` = ``round(test_fraction × #photos)`` (at least 1), ``0`` =
            split by real image instead (train and test then share photos, not real images).
        size: longer side of the real images (``None`` keeps the crop's size).
        masks: a folder of region masks to use instead of random shapes.
        masks_per_image: foreground regions (hence composites) per real image.
        min_fg: smallest foreground fraction.
        max_fg: largest foreground fraction (≤ 0.5 keeps every composite in the le50 protocol).
        ext: ``"jpg"`` (as iHarmony4) or ``"png"`` (lossless: the background is then bit-identical).
        progress: show a progress bar.

    Returns:
        A summary: ``root``, ``subset``, ``train`` and ``test`` counts, and the ``test_photos`` held out.
    """
    from tqdm.auto import tqdm

    if size is not None and size < 8:
        raise ValueError(f"size (--size) must be at least 8 px (or None to keep the crop's size), got {size}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction (--test-fraction) must be in [0, 1), got {test_fraction}")
    if masks_per_image < 1:
        raise ValueError(f"masks_per_image (--masks-per-image) must be at least 1, got {masks_per_image}")
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    if not 0 < min_fg <= max_fg <= 1:
        raise ValueError(f"need 0 < min_fg ≤ max_fg ≤ 1, got {min_fg}, {max_fg}")
    if ext not in ("jpg", "png"):
        raise ValueError(f"ext must be 'jpg' or 'png', got {ext!r}")
    if "_" in subset or "/" in subset:
        raise ValueError(f"subset name {subset!r} must not contain '_' or '/'")
    rng = np.random.default_rng(seed)
    library = load_photos(photos)
    names = sorted(library)
    stats = {name: lab_stats(photo) for name, photo in library.items()}
    held_out = _pick_test_photos(rng, names, test_photos, test_fraction)
    train_names = [p for p in names if p not in held_out] or names
    user_masks = None
    if masks is not None:
        user_masks = [(m > 127).astype(np.uint8) * 255 for m in _read_masks(Path(masks))]

    root = Path(out)
    base = root / subset
    for earlier in _claim_subset(root, subset):  # an earlier synth of this subset: replaced, not mixed in
        earlier.unlink(missing_ok=True)
    for folder in ("composite_images", "masks", "real_images"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    n_test = round(test_fraction * n) if test_fraction > 0 and n > 1 else 0
    n_test = min(n_test, n - 1)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    log = []
    # Real images are made per split, so a held-out photo never feeds a training composite.
    plan = [("train", n - n_test, train_names), ("test", n_test, held_out or names)]
    counter = 0
    with tqdm(total=n, desc=f"synth {subset}", disable=not progress, unit="img") as bar:
        for split, count, pool in plan:
            made = 0
            while made < count:
                counter += 1
                photo = pool[int(rng.integers(len(pool)))]
                real = _random_crop(rng, library[photo], size)
                stem = f"{photo}-{counter:05d}"
                _write(base / "real_images" / f"{stem}.{ext}", real)
                for fg in range(1, min(masks_per_image, count - made) + 1):
                    mask = random_region_mask(rng, *real.shape[:2], min_fg, max_fg, user_masks)
                    others = [p for p in names if p != photo]
                    reference = stats[others[int(rng.integers(len(others)))]] if others else None
                    composite, ops = apply_appearance_change(rng, real, mask, reference)
                    name = f"{stem}_{fg}_1.{ext}"
                    _write(base / "masks" / f"{stem}_{fg}.png", mask)
                    _write(base / "composite_images" / name, composite)
                    lists[split].append(name)
                    log.append(
                        {"composite": name, "split": split, "photo": photo,
                         "fg_fraction": round(float(np.count_nonzero(mask)) / mask.size, 5), "ops": ops}
                    )  # fmt: skip
                    made += 1
                    bar.update(1)
    for split, entries in lists.items():
        _write_text(base / f"{subset}_{split}.txt", "".join(f"{e}\n" for e in entries))
        _merge_root_list(root / f"IHD_{split}.txt", subset, [f"{subset}/composite_images/{e}" for e in entries])
    summary = {
        "root": str(root),
        "subset": subset,
        "train": len(lists["train"]),
        "test": len(lists["test"]),
        "test_photos": held_out,
        "seed": seed,
    }
    _write_text(base / "synth.json", json.dumps({**summary, "composites": log}, indent=1))
    return summary


def _read_masks(folder: Path) -> list[np.ndarray]:
    if not folder.is_dir():
        raise DataError(f"--masks {str(folder)!r} is not a folder")
    out = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_EXTS):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DataError(f"cannot read mask {path}")
        out.append(mask)
    if not out:
        raise DataError(f"no mask images in {folder}")
    return out
