"""``inharmony app``: serve the web page of :func:`inharmony.app.build_app` on this machine."""

from __future__ import annotations

from typing import Literal

from .exit_codes import EXIT_OK, error

__all__ = ["app"]


def app(
    model: str = "madisnet",
    weights: str | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str | None = None,
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto",
    max_pixels: int = 16_000_000,
    harmonizer_weights: str | None = None,
    max_file_size: str = "200mb",
    weights_root: list[str] | None = None,
) -> int:
    """A local web page: upload a photo, see its inharmonious region (soft mask, overlay, region), download the mask.

    The model is loaded once at start and reused; requests are queued. Serves on localhost only unless
    ``--host 0.0.0.0`` is given. Needs the extra: ``pip install 'inharmony[app]'``. Exit code 2 when the
    page cannot start (Gradio missing, the model's weights out of reach: offline, try ``--weights untrained``
    or a local weights folder).

    Args:
        model: Registered model shown first (the page offers every registered localizer).
        weights: ``untrained`` (random weights: try the page with no download), a hub folder,
            ``.safetensors``/``.pth`` file or Hub id; default: the model's published weights.
        host: Address to listen on (``127.0.0.1``: this machine only).
        port: Port to listen on.
        device: ``cpu``, ``cuda`` ... (default: cuda if available).
        precision: Inference fast path: ``auto`` (default: the fastest on this device, see
            :func:`inharmony.inference.auto_backend`), ``fp32`` (BatchNorm folded, within 1e-5 of eager),
            ``bf16`` (faster on CPUs with AVX512-BF16/AMX; masks move by a few hundredths) or ``fp16`` (CUDA).
        max_pixels: Photos with more pixels are downscaled to this many before the model sees them.
        harmonizer_weights: Weights of the harmonizer (PCTNet) behind the "Fix the region" button (default: published).
        max_file_size: Largest upload Gradio accepts (e.g. ``200mb``).
        weights_root: A folder whose weights files and hub folders visitors may choose by typing their
            path relative to it (repeat for several). Default: none: visitors choose among the offered
            weights only, and no value they send makes the server read another file.

    Only the page's own messages reach a visitor (``show_error=False``): an unexpected failure's details
    go to this terminal.

    Example:
        inharmony app --model madisnet --port 7860
    """
    problem = _check_options(port, max_pixels, weights_root or [])
    if problem:
        return error(problem)
    try:
        from ..app import build_app

        demo = build_app(
            model,
            weights,
            device=device,
            precision=precision,
            max_pixels=max_pixels,
            harmonizer_weights=harmonizer_weights,
            weights_roots=weights_root or (),
        )
    except ImportError as err:
        if "gradio" not in str(err).lower():
            raise
        return error(
            "the web page needs Gradio, which is not installed",
            "pip install 'inharmony[app]'",
        )
    except (ValueError, RuntimeError, FileNotFoundError) as err:  # InharmonyError subclasses both
        return error(
            f"cannot load {model} ({weights or 'published weights'}): {err}",
            "Give local weights with --weights PATH, or try the page with --weights untrained.",
        )
    print(f"inharmony app: serving {model} on http://{host}:{port} (Ctrl+C to stop)")
    demo.launch(server_name=host, server_port=port, max_file_size=max_file_size, show_error=False, quiet=True)
    return EXIT_OK


def _check_options(port: int, max_pixels: int, weights_roots: list[str]) -> str | None:
    """The first option value that cannot work, as a message naming the option; None when all can."""
    import os

    from ..imageio import MIN_SIDE

    if not 0 <= port <= 65535:
        return f"--port {port}: give a TCP port from 1 to 65535 (0: any free port)"
    if max_pixels < MIN_SIDE * MIN_SIDE:
        return f"--max-pixels {max_pixels}: photos are downscaled to this many pixels; give at least {MIN_SIDE**2}"
    for root in weights_roots:
        if not os.path.isdir(root):
            return f"--weights-root {root}: not a folder (give the folder whose weights visitors may choose)"
    return None
