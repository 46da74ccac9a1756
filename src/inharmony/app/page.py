"""The Gradio page: :func:`build_app`.

Gradio is the usual way model demos are shared (a Hugging Face Space runs a Gradio ``app.py`` as it
is), so the page is a :class:`gradio.Blocks`. The work happens in :mod:`.images` and :mod:`.models`;
this module lays out the page and wires its events:

- ``localize`` (the button, an upload, an example): read the photo (downscaled over the pixel limit),
  run the network once through the cached :class:`~inharmony.inference.Predictor`, show the soft mask,
  the overlay and the binarised region, write the mask PNGs to download. The network-size probability
  map is kept in the session's ``gr.State``.
- ``rebinarize`` (the threshold slider): the region and its PNG from that kept map; the network does
  not run again.
- ``harmonize`` ("Fix the region"; PCTNet with its published weights by default): the region fixed at the
  photo's full size, before | after, the harmony score of both (BargainNet) and the fixed photo to download.

Every value a visitor sends is checked on the server by :mod:`.checks` against what the page offers
(the model, the weights choice, the threshold, the photo being an upload), whatever the widgets
allow: the HTTP API can be called with anything. Every expected problem (an unreadable upload,
weights out of reach, a refused value) becomes a :class:`gradio.Error` whose message holds no file
contents and no server path the visitor did not type; the server keeps serving. Requests are queued
and the network runs one request at a time (two would only share the same CPU cores).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import gradio as gr
except ImportError as err:  # the optional extra
    raise ImportError(
        "the inharmony web page needs Gradio: pip install 'inharmony[app]' (gradio, gradio_client)"
    ) from err

from ..errors import InharmonyError
from ..files import atomic_write_bytes
from ..inference import Predictor, resize_mask_uint8
from . import images
from .bundled import example_paths
from .checks import Offer, VisitorError, check_upload, redact, safe_stem
from .harmonizer import HarmonizerSlot
from .models import GIVEN, PUBLISHED, UNTRAINED, ModelCache, localizer_models, weight_choices, weights_key

__all__ = ["build_app"]

_IMAGE_HEIGHT = 360  # px on the page; each picture fits in it at its own aspect ratio
_KEEP_OUTPUTS_S = 3600  # downloads older than this are deleted as new ones are written
_WEIGHTS_INFO = "Published: downloaded once, then cached. Untrained: no download, the masks mean nothing."


class _Outputs:
    """A private temporary folder for the PNGs offered for download; old ones are removed as we go."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="inharmony-app-"))
        atexit.register(shutil.rmtree, self.root, True)

    def folder(self) -> Path:
        now = time.time()
        for old in self.root.iterdir():
            with contextlib.suppress(OSError):
                if now - old.stat().st_mtime > _KEEP_OUTPUTS_S:
                    shutil.rmtree(old, ignore_errors=True)
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        return folder


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an event handler; any failure becomes a :class:`gradio.Error` the page shows (the server carries on)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except VisitorError as err:  # already written for the visitor
            raise gr.Error(str(err), title="Cannot do that") from err
        except (InharmonyError, ValueError, FileNotFoundError) as err:
            raise gr.Error(redact(str(err)), title="Cannot do that") from err
        except MemoryError as err:
            raise gr.Error("out of memory; try a smaller photo", title="Too large") from err
        except Exception as err:  # the details go to the operator's log, not to the visitor
            traceback.print_exc(file=sys.stderr)
            message = f"unexpected error ({type(err).__name__}); the server's log has the details"
            raise gr.Error(message, title="Error") from err

    return wrapper


def _private() -> dict[str, Any]:
    """Keyword that keeps an event out of the API page, in Gradio 6 (``api_visibility``) and 5 (``show_api``)."""
    return {"api_visibility": "private"} if int(gr.__version__.split(".")[0]) >= 6 else {"show_api": False}


def _describe(model: str, weights: str, typed: str | None = None) -> str:
    if weights == UNTRAINED:
        return f"**{model}** with *untrained (random) weights*: the mask shows the page working, not a prediction"
    if weights == PUBLISHED:
        return f"**{model}** with its published weights"
    if weights == GIVEN:
        return f"**{model}**"
    return f"**{model}** with weights `{(typed or weights).replace('`', '')}`"


def build_app(
    model: str = "madisnet",
    weights: str | None = None,
    *,
    predictor: Predictor | None = None,
    device: str | None = None,
    precision: str | None = "auto",
    max_pixels: int = images.MAX_PIXELS,
    harmonizer: Any = "pctnet",
    harmonizer_weights: str | None = None,
    scorer: Any = "bargainnet",
    scorer_weights: str | None = None,
    allow_custom_weights: bool | None = None,
    weights_roots: Sequence[str | os.PathLike[str]] = (),
    preload: bool = True,
    loader: Callable[[str, str | None], Any] | None = None,
    title: str = "inharmony: find the inharmonious region of a photo",
) -> gr.Blocks:
    """The web page: upload a photo, see where its colour or lighting does not match the rest.

    Args:
        model: Registered model shown first (see ``inharmony models``).
        weights: Its weights: ``None`` or ``"published"`` for the published ones (downloaded once, then
            cached), ``"untrained"`` for random weights (no download; to try the page), or what
            :func:`inharmony.load` takes (a hub folder, a ``.safetensors``/``.pth`` file, a Hub id).
        predictor: A ready :class:`~inharmony.inference.Predictor` to use for ``model`` instead of loading
            one (tests pass a small random-weight model).
        device: ``"cpu"``, ``"cuda"`` ... (default: CUDA if available).
        precision: The inference fast path (:func:`inharmony.inference.optimize`): ``"auto"`` (the fastest on
            the device), ``"fp32"`` (BatchNorm folded, within 1e-5 of eager), ``"bf16"``, ``"fp16"`` (CUDA) or
            ``None`` (eager).
        max_pixels: Photos with more pixels are downscaled to this many (the page says so).
        harmonizer: The harmonizer behind the "Fix the region" button: a name (``"pctnet"``, full resolution, the
            default; ``"s2am"``), a ready :class:`inharmony.inference.harmonizer.Harmonizer`, or ``None`` for no
            button. Loaded on the first click.
        harmonizer_weights: Weights of a harmonizer given by name (``None``: published).
        scorer: The harmony scorer that scores the photo before and after the fix, for a harmonizer given by
            name (``"bargainnet"``, the default; ``None``: no scores). A ready harmonizer brings its own.
        scorer_weights: The scorer's weights (``None``: published).
        allow_custom_weights: Let visitors type weights: only paths inside ``weights_roots`` are accepted,
            never a Hub id or any other server path. Default: on exactly when ``weights_roots`` are given.
        weights_roots: Folders whose weights files and hub folders visitors may name (by a path relative
            to the folder). Default: none, so visitors choose among the offered weights only.
        preload: Load the first model now, so that a failure shows at start and the first photo is fast.
        title: The page's heading.
        loader: ``loader(model, weights) -> nn.Module`` for weights other than ``"untrained"``
            (default :func:`inharmony.load`).

    Returns:
        The page, with its queue set up; ``.launch()`` serves it.

    Raises:
        InharmonyError: with ``preload``, the first model cannot be loaded (the message says why).

    Example:
        >>> from inharmony.app import build_app
        >>> demo = build_app("madisnet", weights="untrained")  # doctest: +SKIP
        >>> demo.launch()  # http://127.0.0.1:7860  # doctest: +SKIP
    """
    roots = tuple(Path(root) for root in weights_roots)
    if allow_custom_weights is None:
        allow_custom_weights = bool(roots)
    if allow_custom_weights and not roots:
        raise ValueError(
            "allow_custom_weights=True needs weights_roots: the folders whose weights visitors may name "
            "(CLI: --weights-root DIR); a visitor may never make the server read any other path"
        )
    if not allow_custom_weights:
        roots = ()
    for root in roots:
        if not root.is_dir():
            raise ValueError(f"weights root {root} is not a folder")
    cache = ModelCache(precision=precision, device=device, loader=loader)
    if predictor is not None:
        cfg = getattr(predictor.model, "pretrained_cfg", None)
        model = getattr(cfg, "architecture", None) or model
        weights = GIVEN if weights is None else weights
        cache.put(model, weights, predictor)
    weights = PUBLISHED if weights is None else str(weights)
    if preload and predictor is None:
        cache.get(model, weights)
    slot = HarmonizerSlot(harmonizer, harmonizer_weights, device, scorer, scorer_weights)
    outputs = _Outputs()
    models = localizer_models()
    if model not in models:
        models.insert(0, model)
    offer = Offer(tuple(models), model, weights, roots)
    examples = example_paths()

    def checked_upload(payload: Any) -> tuple[str, str | None] | None:
        return check_upload(payload, [gr.utils.get_upload_folder()], examples)

    def localize(photo: Any, model_name: Any, weights_choice: Any, threshold: Any) -> tuple[Any, ...]:
        model_name = offer.check_model(model_name)
        weights_choice, typed = offer.check_weights(model_name, weights_choice)
        threshold = offer.check_threshold(threshold)
        upload_info = checked_upload(photo)
        if upload_info is None:
            return None, None, None, None, None, "Upload a photo or pick an example.", None
        started = time.perf_counter()
        upload = images.read_upload(upload_info[0], max_pixels=max_pixels, name=upload_info[1])
        stem = safe_stem(upload_info[1] or Path(upload_info[0]).name)
        try:
            predictor_now = cache.get(model_name, weights_choice)
        except (InharmonyError, ValueError, OSError) as err:
            # Name the weights as the visitor typed them, never the server's folders.
            message = str(err).replace(weights_choice, typed) if typed else str(err)
            raise VisitorError(redact(message, keep=[typed] if typed else [])) from err
        network_started = time.perf_counter()
        ((prob, (height, width)),) = predictor_now.network_masks([upload.image])
        network_s = time.perf_counter() - network_started
        shown = images.previews(upload.image, prob, threshold)
        folder = outputs.folder()
        mask_file = folder / f"{stem}_mask.png"
        atomic_write_bytes(mask_file, images.encode_png(resize_mask_uint8(prob, height, width)))
        region_file = _write_region(folder, stem, prob, (height, width), threshold)
        state = {
            "prob": prob,
            "hw": (height, width),
            "preview_hw": shown.region.shape,
            "name": stem,
            "upload": upload_info,
            "model": model_name,
            "weights": weights_choice,
        }
        lines = [
            f"{_describe(model_name, weights_key(weights_choice), typed)} · photo {width}×{height} px · "
            f"network input {predictor_now.size[1]}×{predictor_now.size[0]} · "
            f"{time.perf_counter() - started:.2f} s (network {network_s:.2f} s)"
        ]
        note = images.downscale_note(upload, max_pixels)
        if note:
            lines.append(note)
        return (
            shown.soft,
            shown.overlay,
            shown.region,
            str(mask_file),
            str(region_file),
            "\n\n".join(lines),
            state,
        )

    def rebinarize(threshold: Any, state: dict[str, Any] | None) -> tuple[Any, Any]:
        threshold = offer.check_threshold(threshold)
        if not state:
            return None, None
        region = images.region_preview(state["prob"], tuple(state["preview_hw"]), threshold)
        folder = outputs.folder()
        return region, str(_write_region(folder, state["name"], state["prob"], state["hw"], threshold))

    def harmonize(threshold: Any, state: dict[str, Any] | None) -> tuple[Any, Any, Any, Any]:
        threshold = offer.check_threshold(threshold)
        if not state:
            raise VisitorError("find the region first: upload a photo or pick an example")
        path, name = state["upload"]
        upload = images.read_upload(path, max_pixels=max_pixels, name=name)
        region = resize_mask_uint8(state["prob"], *state["hw"], threshold=threshold).astype(np.float32) / 255.0
        result = slot(upload.image, region)
        out = np.asarray(result.image)
        folder = outputs.folder()
        out_file = folder / f"{state['name']}_fixed.png"
        atomic_write_bytes(out_file, images.encode_png(out))
        hw = images.preview_size(*out.shape[:2])
        return _resize(upload.image, hw), _resize(out, hw), _scores_text(result, out.shape), str(out_file)

    def on_model(model_name: Any) -> Any:
        model_name = offer.check_model(model_name)
        given = GIVEN if cache.has(model_name, GIVEN) else None
        choices = weight_choices(model_name, given)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    # analytics off: no call to a third-party server from a page that may run offline (or on private photos)
    with gr.Blocks(title="inharmony", delete_cache=(3600, 7200), analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {title}\n"
            "Upload or drop a photo (JPEG, PNG, WebP, TIFF, BMP ...; photos over "
            f"{max_pixels / 1e6:g} megapixels are downscaled) or pick an example: the model marks the region "
            "whose colour or lighting does not match the rest. Move the threshold to change the region "
            "without running the model again."
        )
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                photo = gr.Image(
                    label="Photo", type="filepath", sources=["upload", "clipboard"], height=320, elem_id="photo"
                )
                model_box = gr.Dropdown(models, value=model, label="Model", elem_id="model")
                weights_box = gr.Dropdown(
                    weight_choices(model, weights),
                    value=weights,
                    label="Weights",
                    allow_custom_value=bool(roots),
                    info=_WEIGHTS_INFO
                    + (" Or type a hub folder or weights file inside the page's weights folders." if roots else ""),
                    elem_id="weights",
                )
                threshold = gr.Slider(0.01, 0.99, value=0.5, step=0.01, label="Threshold", elem_id="threshold")
                run = gr.Button("Find the region", variant="primary", elem_id="run")
                paths = [str(p) for p in example_paths()]
                if paths:
                    gr.Examples(
                        [[p] for p in paths],
                        inputs=[photo],
                        label="Examples (synthetic composites)",
                        cache_examples=False,
                    )
            with gr.Column(scale=3):
                with gr.Row(equal_height=True):
                    soft = _picture("Soft mask", "soft")
                    over = _picture("Overlay", "overlay")
                    region = _picture("Region (mask ≥ threshold)", "region")
                status = gr.Markdown("Upload a photo or pick an example.", elem_id="status")
                with gr.Row():
                    mask_file = gr.File(label="Mask PNG (probability × 255, photo size)", elem_id="mask_file")
                    region_file = gr.File(label="Region PNG (0/255 at the threshold)", elem_id="region_file")
                if slot.available:
                    harmonize_button = gr.Button("Fix the region", elem_id="harmonize")
                    with gr.Row(equal_height=True):  # shown once there is something to show
                        before = _picture("Before", "before", visible=False)
                        after = _picture("After (fixed)", "after", visible=False)
                    scores = gr.Markdown("", visible=False, elem_id="scores")
                    harmonized_file = gr.File(
                        label="Fixed photo (PNG, full size)", visible=False, elem_id="harmonized_file"
                    )

        localize_outputs = [soft, over, region, mask_file, region_file, status, state]
        localize_inputs = [photo, model_box, weights_box, threshold]
        # preprocess=False: the handler gets the upload's path untouched, so that a file Pillow cannot open
        # reaches our reader (and its clear message) instead of failing inside Gradio's own decoding.
        run.click(
            _guard(localize),
            localize_inputs,
            localize_outputs,
            api_name="localize",
            preprocess=False,
            concurrency_id="network",
        )
        photo.change(
            _guard(localize),
            localize_inputs,
            localize_outputs,
            preprocess=False,
            concurrency_id="network",
            **_private(),
        )
        threshold.change(
            _guard(rebinarize),
            [threshold, state],
            [region, region_file],
            api_name="rebinarize",
            trigger_mode="always_last",
            show_progress="hidden",
            concurrency_limit=4,
        )
        model_box.change(_guard(on_model), [model_box], [weights_box], queue=False, **_private())
        if slot.available:
            fixed_outputs = [before, after, scores, harmonized_file]
            harmonize_button.click(
                _guard(harmonize),
                [threshold, state],
                fixed_outputs,
                api_name="harmonize",
                concurrency_id="network",
            ).success(lambda: [gr.update(visible=True)] * 4, None, fixed_outputs, queue=False, **_private())
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.inharmony_cache = cache  # for tests and callers: which models are loaded, how many loads
    return demo


def _picture(label: str, elem_id: str, visible: bool = True) -> gr.Image:
    """An output picture, shown whole at its own aspect ratio within the row's height."""
    return gr.Image(
        label=label, format="png", interactive=False, height=_IMAGE_HEIGHT, elem_id=elem_id, visible=visible
    )


def _scores_text(result: Any, shape: tuple[int, ...]) -> str:
    """The line under before | after: the harmony scores (when the harmonizer has a scorer) and the size."""
    size = f"fixed at the photo's size, {shape[1]}×{shape[0]} px"
    before, after = getattr(result, "score_before", None), getattr(result, "score_after", None)
    if before is None or after is None:
        return f"{size} (no harmony scorer on this page)"
    return f"**harmony {before:.2f} → {after:.2f}** (BargainNet; 1 = the region fits its photo) · {size}"


def _write_region(folder: Path, name: str, prob: np.ndarray, hw: tuple[int, int], threshold: float) -> Path:
    path = folder / f"{name}_region.png"
    atomic_write_bytes(path, images.encode_png(resize_mask_uint8(prob, *hw, threshold=threshold)))
    return path


def _resize(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    import cv2

    if image.shape[:2] == tuple(hw):
        return image
    return cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
