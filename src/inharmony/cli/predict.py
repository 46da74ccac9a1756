"""``inharmony predict IMAGES ...``: masks and overlays for your own images.

Outputs never replace a file that ``inharmony predict`` did not write: the files it writes in ``--out``
are recorded in :data:`MANIFEST_NAME` there (name, input, size and time), so a later run may replace its
own outputs for the same input, while a user's file (or one of ours edited since) stops the run before
anything is written (exit 2). Two inputs with the same name (``a/x.jpg``, ``b/x.jpg``, in one run or in
two) get distinct outputs: ``x_mask.png``, then ``x_1_mask.png``. Masks and overlays are written
atomically (never a partial file under an output name) and built row band by row band in 8 bits, so a
144-megapixel photo stays well within 2 GB.

``inharmony predict`` with ``--config``, ``--ckpt_path`` or a ``--trainer.*`` / ``--data.*`` /
``--model.*`` option is LightningCLI's ``predict`` over a data module instead
(:func:`wants_lightning` decides; see :mod:`inharmony.cli.lightning`).
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from .exit_codes import EXIT_OK, EXIT_PARTIAL, error, warn

__all__ = ["LIGHTNING_FLAGS", "MANIFEST_NAME", "predict_images", "wants_lightning"]

LIGHTNING_FLAGS = ("--config", "--ckpt_path", "--print_config", "--trainer.", "--data.", "--model.")
MANIFEST_NAME = ".inharmony-predict.json"
"""The record, in ``--out``, of the files ``inharmony predict`` wrote there (and for which input)."""
_OUTPUT_SUFFIXES = ("_mask.png", "_overlay.png")
_HELD_OVERLAY_BYTES = 256 * 2**20  # full-size decodes a batch keeps for its overlays; beyond, decoded again


def wants_lightning(argv: Sequence[str]) -> bool:
    """Whether ``inharmony predict ARGV`` is LightningCLI's ``predict`` (a config or data module option)."""
    return any(arg == flag or arg.startswith(flag) for arg in argv for flag in LIGHTNING_FLAGS)


class _Manifest:
    """What earlier ``inharmony predict`` runs wrote in ``folder``: ``{file name: {source, size, mtime_ns}}``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.entries = {str(k): dict(v) for k, v in data.get("outputs", {}).items()}
            except (ValueError, AttributeError, TypeError, UnicodeDecodeError):
                self.entries = {}  # unreadable: nothing is taken for ours, so nothing is overwritten

    def owner(self, name: str) -> str | None:
        """The input an existing output ``name`` was written for, or None when it is not ours (as it is now)."""
        entry = self.entries.get(name)
        if entry is None:
            return None
        if entry.get("size") is not None:
            try:
                stat = (self.path.parent / name).stat()
            except OSError:
                return None
            if (stat.st_size, stat.st_mtime_ns) != (entry["size"], entry.get("mtime_ns")):
                return None  # changed since we wrote it: someone's edit, not ours any more
        return str(entry.get("source"))

    def record(self, name: str, source: Path, written: bool) -> None:
        entry: dict[str, Any] = {"source": str(source), "size": None, "mtime_ns": None}
        if written:
            stat = (self.path.parent / name).stat()
            entry.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        self.entries[name] = entry

    def save(self) -> None:
        from ..files import atomic_write

        folder = self.path.parent
        # Names planned for inputs that were then skipped are dropped once nothing holds them.
        self.entries = {k: v for k, v in self.entries.items() if v.get("size") is not None or (folder / k).exists()}

        with atomic_write(self.path, "w") as fh:
            json.dump({"format": 1, "written_by": "inharmony predict", "outputs": self.entries}, fh, indent=1)


def _collect(inputs: Sequence[str], out_dir: Path, manifest: _Manifest, recursive: bool) -> list[Path]:
    """Files named on the command line, plus the files of named folders, except our earlier outputs.

    A file found *by listing the output folder* that an earlier run recorded as its output is left out;
    a file named explicitly is always an input.
    """
    from ..inference import iter_image_files

    files = []
    out_resolved = out_dir.resolve()
    for entry in inputs:
        if not Path(entry).is_dir():
            files.append(Path(entry))
            continue
        for path in iter_image_files([entry], recursive=recursive):
            ours = path.resolve().parent == out_resolved and manifest.owner(path.name) is not None
            if not ours:
                files.append(path)
    return files


def _claim(
    out_dir: Path, manifest: _Manifest, files: Sequence[Path], stems: Sequence[str], suffixes: Sequence[str]
) -> None:
    """Create ``out_dir`` and record every planned output in the manifest before anything is written, so
    that a run killed part-way still owns (and a re-run replaces) its outputs. Raises ``OSError``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, stem in zip(files, stems, strict=True):
        for suffix in suffixes:
            if not (out_dir / f"{stem}{suffix}").exists():
                manifest.record(f"{stem}{suffix}", path.resolve(), written=False)
    manifest.save()


def _finish_writing(
    manifest: _Manifest, out: str, out_dir: Path, written: int, total: int, failure: OSError | None, noun: str
) -> int | None:
    """Save the manifest, say how many inputs were written, and give the exit code if writing failed
    (2 when nothing was written, 1 when it stopped part-way); ``None`` when writing did not fail."""
    with contextlib.suppress(OSError):  # on a full disk the planned names recorded before writing stay ours
        manifest.save()
    print(f"wrote {written} of {total} {noun}s to {out_dir}", file=sys.stderr)
    if failure is None:
        return None
    message = f"cannot write to --out {out}: {failure.strerror or failure}"
    if not written:
        return error(message)
    warn(f"{message}; stopped after {written} {noun}(s)")
    return EXIT_PARTIAL


def _plan(
    files: Sequence[Path], out_dir: Path, manifest: _Manifest, suffixes: Sequence[str]
) -> tuple[list[str], list[str]]:
    """One output stem per input, and the outputs that would replace a file we did not write.

    The stem is the input's (``x``), else ``x_1``, ``x_2`` ... when another input of this run took it or an
    earlier run wrote it for another input; a suffixed name also steps over files that are not ours. An
    unsuffixed name held by a file we did not write is a clash (the run is refused).
    """
    inputs = {path.resolve() for path in files}
    used: set[str] = set()
    stems, clashes = [], []
    for path in files:
        source = str(path.resolve())
        n = 0
        while True:
            stem = path.stem if n == 0 else f"{path.stem}_{n}"
            names = [f"{stem}{suffix}" for suffix in suffixes]
            targets = [out_dir / name for name in names]
            if stem not in used and not any(t.resolve() in inputs for t in targets):
                owners = [
                    manifest.owner(name) if target.exists() else source
                    for name, target in zip(names, targets, strict=True)
                ]
                if all(owner == source for owner in owners):
                    break  # free, or ours for this very input: a re-run replaces its own outputs
                if n == 0 and None in owners:
                    clashes += [str(t) for t, owner in zip(targets, owners, strict=True) if owner is None]
                    break
            elif n == 0 and any(t.resolve() in inputs for t in targets):
                clashes += [f"{t} (an input)" for t in targets if t.resolve() in inputs]
                break
            n += 1
        used.add(stem)
        stems.append(stem)
    return stems, clashes


def _rgb_to_bgr_inplace(image: Any, rows: int = 256) -> Any:
    """Swap the channels band by band (cv2.cvtColor with dst=src still copies the whole image)."""
    for start in range(0, image.shape[0], rows):
        band = image[start : start + rows]
        band[...] = band[..., ::-1]
    return image


def _encode_png(array: Any) -> Any:
    import cv2

    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise OSError("OpenCV could not encode the PNG")
    return buf


def predict_images(
    inputs: list[str],
    *,
    out: str,
    model: str = "dirl",
    weights: str | None = None,
    size: int | None = None,
    device: str | None = None,
    batch_size: int = 4,
    recursive: bool = False,
    binary: bool = False,
    threshold: float = 0.5,
    overlay: bool = True,
    trust_checkpoint: bool = False,
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32",
    tta: Literal["h", "v", "hv"] | None = None,
) -> int:
    """Predict inharmonious-region masks (and overlays) for images or folders of images.

    Writes ``<name>_mask.png`` (8-bit probability, 255 = 1.0) and ``<name>_overlay.png`` per image,
    at the image's own size. Nothing the command did not write is ever replaced: inputs and files of
    yours in ``--out`` stop the run before anything is written (exit 2); outputs of an earlier run for
    the same input are replaced; same-named inputs get ``<name>_1`` ... Exit code 1 when some inputs
    were skipped (unreadable, not images; warnings say which) or writing stopped part-way (disk full),
    2 when nothing was done (no inputs, unusable weights, an output folder that cannot be written, a
    clash). With ``--config``, ``--ckpt_path`` or ``--trainer.*``/``--data.*``/``--model.*`` options
    this is LightningCLI's ``predict`` over a data module instead.

    Args:
        inputs: Image files and/or folders.
        out: Output folder (created if needed).
        model: Registered model name.
        weights: Hub folder, Hub id ``org/name``, ``.safetensors``/``.pth``, Lightning ``.ckpt``, or the
            authors' DIRL folder; default: the model's published weights.
        size: Network input size (default: the weights' own, 224).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: cuda if available).
        batch_size: Images preprocessed and run through the network together (any sizes; each mask at
            its own image's size, equal to ``--batch-size 1``'s to float rounding). On CPU the network runs
            a batch in chunks of the size that costs least per image, so a big batch never costs more.
        recursive: Look into sub-folders too.
        binary: Write the mask thresholded (0/255) instead of the probability.
        threshold: Threshold for ``--binary``, strictly between 0 and 1.
        overlay: Also write the overlay (``--no-overlay``: masks only).
        trust_checkpoint: Allow pickled Python objects in a ``.ckpt`` (only for files you made).
        precision: ``fp32`` (BatchNorm folded, channels_last: within 1e-5 of eager), ``bf16`` (faster on
            CPUs with AVX512-BF16/AMX and on GPUs; masks move by a few hundredths), ``fp16`` (CUDA only) or
            ``auto`` (bf16 on CPUs with AVX512-BF16/AMX and on GPUs with bf16, else fp32).
        tta: Average the masks of flipped copies of each image: ``h`` (as is + left-right, 2 passes),
            ``v`` (+ upside down, 2) or ``hv`` (all four flips, 4 passes). Default: one pass.

    Example:
        inharmony predict photos/ --model dirl --weights dirl_hub_folder --out masks/
    """
    import torch
    from tqdm import tqdm

    from ..errors import ImageReadError
    from ..files import atomic_write_bytes
    from ..hub import load
    from ..inference import Predictor, check_threshold, load_image_array, resize_mask_uint8

    try:
        check_threshold(threshold, "--threshold")
    except ValueError as err:
        return error(str(err))
    if batch_size < 1:
        return error(f"--batch-size must be ≥ 1, got {batch_size}")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        return error(f"--out {out} is a file; give a folder for the masks (created if needed)")
    manifest = _Manifest(out_dir)
    missing = [p for p in inputs if not Path(p).exists()]
    for path in missing:
        warn(f"{path} does not exist; skipped")
    files = _collect([p for p in inputs if Path(p).exists()], out_dir, manifest, recursive)
    if not files:
        return error("no input images found in " + ", ".join(inputs))
    suffixes = _OUTPUT_SUFFIXES if overlay else _OUTPUT_SUFFIXES[:1]
    stems, clashes = _plan(files, out_dir, manifest, suffixes)
    if clashes:
        shown = ", ".join(clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        inputs_only = all(c.endswith("(an input)") for c in clashes[:3])
        what = "an input" if inputs_only else "a file inharmony predict did not write"
        return error(
            f"nothing written: the outputs would overwrite {what}: {shown}",
            "Choose another --out (or move those files away).",
        )
    network = load(model, weights, trust_checkpoint=trust_checkpoint)
    try:
        predictor = Predictor(
            network, size=size, device=device, batch_size=batch_size, precision=precision, tta=tta
        )
    except ValueError as err:  # a size that is not a multiple, fp16 on a CPU ...
        return error(str(err))
    reduced_decoding = bool(getattr(getattr(predictor.preprocessing, "pixels", None), "reduced_decoding", True))
    try:
        _claim(out_dir, manifest, files, stems, suffixes)
    except OSError as err:
        return error(f"cannot write to --out {out}: {err.strerror or err}")

    skipped = written = 0
    failure: OSError | None = None
    pairs = list(zip(files, stems, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        progress = tqdm(total=len(pairs), desc="predict", unit="img", file=sys.stderr)
        for first in range(0, len(pairs), batch_size):
            group = pairs[first : first + batch_size]
            ready, held = [], 0
            for path, stem in group:
                try:
                    image = load_image_array(path) if overlay else None
                    # Without reduced JPEG decoding the network's input is built from this very full-size
                    # decode, so one decode serves both; with it, from the file.
                    source = image if image is not None and not reduced_decoding else path
                    tensor, (height, width) = predictor.preprocess(source)
                except (ImageReadError, FileNotFoundError) as err:
                    warn(f"{err}; skipped")
                    skipped += 1
                    progress.update()
                    continue
                if image is not None:
                    # Beyond the first, decodes past the budget are dropped and decoded again when written:
                    # a batch of huge photos stays small, and a lone huge photo is decoded once.
                    if held and held + image.size > _HELD_OVERLAY_BYTES:
                        image = None
                    else:
                        held += image.size
                ready.append([path, stem, tensor, height, width, image])
                del image, source
            if not ready:
                continue
            probs = predictor.forward_batch(torch.stack([item[2] for item in ready])).cpu().numpy()
            for item, prob in zip(ready, probs, strict=True):
                path, stem, _, height, width, image = item
                item[5] = None  # the batch no longer holds this image: freed once written
                if overlay and image is None:
                    image = load_image_array(path)
                if image is not None and not image.flags.writeable:
                    image = image.copy()
                mask = resize_mask_uint8(prob[0], height, width, threshold=threshold if binary else None, tint=image)
                try:
                    # Encoded one at a time and freed at once: a huge image's arrays never coexist needlessly.
                    encoded = _encode_png(mask)
                    del mask
                    atomic_write_bytes(out_dir / f"{stem}_mask.png", memoryview(encoded))
                    manifest.record(f"{stem}_mask.png", path.resolve(), written=True)
                    if image is not None:
                        encoded = _encode_png(_rgb_to_bgr_inplace(image))
                        del image
                        atomic_write_bytes(out_dir / f"{stem}_overlay.png", memoryview(encoded))
                        manifest.record(f"{stem}_overlay.png", path.resolve(), written=True)
                    del encoded
                except OSError as err:
                    failure = err
                    break
                written += 1
                progress.update()
            ready.clear()
            if failure is not None:
                break
        progress.close()
    stopped = _finish_writing(manifest, out, out_dir, written, len(files) + len(missing), failure, "image")
    if stopped is not None:
        return stopped
    if skipped or missing:
        warn(f"{skipped + len(missing)} input(s) skipped (see warnings above)")
        return EXIT_PARTIAL
    return EXIT_OK
