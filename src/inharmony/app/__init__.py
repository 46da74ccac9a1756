"""``inharmony app``: a local web page to find (and fix) the inharmonious region of a photo.

Needs the optional extra: ``pip install 'inharmony[app]'`` (Gradio). :func:`build_app` returns the
page as a :class:`gradio.Blocks`; ``inharmony app`` serves it on localhost, and the same function
backs a Hugging Face Space's ``app.py``:

    from inharmony.app import build_app
    demo = build_app("madisnet", allow_custom_weights=False)
    demo.launch()

(``allow_custom_weights=False``: visitors of a public page choose among the offered weights only.)

Modules, one job each: :mod:`.page` (layout and events), :mod:`.images` (uploads to arrays, results
to pictures), :mod:`.models` (model and weight choices, the loaded-model cache), :mod:`.harmonizer`
(the optional harmonize step), :mod:`.bundled` (the example photos).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build_app"]

if TYPE_CHECKING:
    from .page import build_app


def __getattr__(name: str) -> Any:
    # Gradio is imported only when the page is built: `import inharmony.app.images` needs no extra.
    if name == "build_app":
        from .page import build_app

        return build_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
