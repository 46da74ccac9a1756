"""Every value a visitor sends, checked on the server against what the page offers: :class:`Offer`.

A browser sends only what the page's widgets allow, but anyone can call the page's HTTP API with
any value (Gradio does not check a dropdown's choices for an event registered with
``preprocess=False``, and a payload that is not Gradio's file type is not checked as a path). So the
handlers trust nothing: the model must be one the page lists, the weights one of the choices it
offers for that model (or, only where the operator named weights folders, a path that resolves
inside one of them), the threshold a number within the slider's range, and the photo a file Gradio
received as an upload (or a bundled example).

Messages shown to a visitor never quote a file and never name a server path the visitor did not
type: :func:`redact` replaces every other absolute path with ``<server path>``.

Example:
    >>> offer = Offer(models=("madisnet",), start_model="madisnet", start_weights="untrained", weights_roots=())
    >>> offer.check_model("madisnet"), offer.check_threshold(0.5)
    ('madisnet', 0.5)
    >>> offer.check_model("s2am")
    Traceback (most recent call last):
    ...
    inharmony.errors.VisitorError: model 's2am' is not offered on this page (it offers: madisnet)
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import VisitorError
from .models import weight_choices

__all__ = ["THRESHOLD_RANGE", "Offer", "VisitorError", "check_upload", "redact", "safe_stem"]

THRESHOLD_RANGE = (0.01, 0.99)
"""The threshold slider's range; the server accepts nothing outside it."""
_MAX_TYPED = 300  # characters of a typed value echoed in a message
_SERVER_PATH = "<server path>"
# An absolute POSIX path (not preceded by a word character, a dot or a slash, so "1/255" and "a/b" are
# kept) or a Windows drive path.
_ABSOLUTE = re.compile(r"(?<![\w./~:-])/[^\s'\"`,;()\[\]{}<>|]+|\b[A-Za-z]:\\[^\s'\"`,;()\[\]{}<>|]+")


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:_MAX_TYPED] + ("..." if len(text) > _MAX_TYPED else ""))


def redact(message: str, keep: Iterable[str] = ()) -> str:
    """``message`` with every absolute path replaced by ``<server path>``, except the strings in ``keep``.

    Args:
        message: Text that may name server files (an exception's message).
        keep: What the visitor typed (kept where it appears verbatim).

    Example:
        >>> redact("cannot open /srv/w/x.pth for w/x.pth", keep=["w/x.pth"])
        'cannot open <server path> for w/x.pth'
    """
    kept = sorted((k for k in keep if k), key=len, reverse=True)
    placeholders = {f"\x00{i}\x00": k for i, k in enumerate(kept)}
    for marker, text in placeholders.items():
        message = message.replace(text, marker)
    message = _ABSOLUTE.sub(_SERVER_PATH, message)
    for marker, text in placeholders.items():
        message = message.replace(marker, text)
    return message


def safe_stem(name: Any) -> str:
    """A download file's stem from a visitor's file name: no folders, ASCII letters, digits, ``._-``, ≤ 100 chars.

    Example:
        >>> safe_stem("../../my photo.jpg")
        'my_photo'
    """
    if not isinstance(name, str):
        return "photo"
    stem = Path(name.replace("\\", "/")).stem
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    return stem[:100] or "photo"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class Offer:
    """What the page offers a visitor; each ``check_*`` returns the value if offered, else a :class:`VisitorError`.

    Args:
        models: The models in the page's dropdown.
        start_model: The model the page was started with.
        start_weights: Its weights as the operator gave them (offered for that model only).
        weights_roots: Folders under which visitors may name weights files or hub folders; empty: none
            (custom weights refused).
    """

    models: tuple[str, ...]
    start_model: str
    start_weights: str
    weights_roots: tuple[Path, ...] = ()

    @property
    def custom_weights(self) -> bool:
        """Whether visitors may type weights (only under :attr:`weights_roots`)."""
        return bool(self.weights_roots)

    def weights_offered(self, model: str) -> list[str]:
        """The weights choices the page lists for ``model``."""
        extra = self.start_weights if model == self.start_model else None
        return [value for _, value in weight_choices(model, extra)]

    def check_model(self, value: Any) -> str:
        """``value`` if it is a model the page lists."""
        if not isinstance(value, str) or value not in self.models:
            raise VisitorError(
                f"model {_shown(value)} is not offered on this page (it offers: {', '.join(self.models)})"
            )
        return value

    def check_weights(self, model: str, value: Any) -> tuple[str, str | None]:
        """``(cache key, typed)`` for a weights choice: an offered choice (``typed`` None) or a path under a root.

        A typed path is resolved (symlinks and ``..`` followed) and must lie inside one of the roots; a
        relative path is taken relative to each root in turn. Nothing is read here.
        """
        if not isinstance(value, str):
            raise VisitorError(f"weights {_shown(value)} is not a weights choice of this page")
        value = value.strip()
        if value in self.weights_offered(model):
            return value, None
        if not self.custom_weights:
            raise VisitorError(
                f"weights {_shown(value)}: custom weights are not accepted on this page; choose one of "
                f"{', '.join(self.weights_offered(model)) or 'the offered weights'}"
            )
        if not value or len(value) > 4096 or "\x00" in value:
            raise VisitorError(f"weights {_shown(value)} is not a path")
        for root in self.weights_roots:
            real_root = os.path.realpath(root)
            candidate = os.path.realpath(os.path.join(real_root, value))  # an absolute value replaces the root
            if _inside(candidate, real_root) and os.path.exists(candidate):
                return candidate, value
        raise VisitorError(
            f"weights {_shown(value)} is not under the weights folders of this page (or does not exist); "
            "give a file or hub folder inside them, by its path relative to the folder"
        )

    @staticmethod
    def check_threshold(value: Any) -> float:
        """``value`` if it is a finite number within :data:`THRESHOLD_RANGE` (the slider's)."""
        low, high = THRESHOLD_RANGE
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise VisitorError(f"threshold {_shown(value)} is not a number between {low} and {high}")
        if not low <= value <= high:
            raise VisitorError(f"threshold {value} is outside the slider's range {low} to {high}")
        return float(value)


def check_upload(payload: Any, upload_folders: Sequence[str | os.PathLike[str]], examples: Iterable[Path]) -> tuple[
    str, str | None
] | None:
    """``(server path, visitor's file name)`` of an image component's raw value, or None when empty.

    The file must be one Gradio received as an upload (inside ``upload_folders``) or a bundled example:
    a visitor cannot make the server read any other file by sending its path.
    """
    if payload is None:
        return None
    if isinstance(payload, dict):
        path, name = payload.get("path"), payload.get("orig_name")
    else:
        path, name = payload, None
    if not isinstance(path, str) or not path or "\x00" in path:
        raise VisitorError("the upload did not arrive; upload the photo again")
    real = os.path.realpath(path)
    allowed = any(_inside(real, os.path.realpath(folder)) for folder in upload_folders)
    allowed = allowed or any(real == os.path.realpath(example) for example in examples)
    if not allowed or not os.path.isfile(real):
        raise VisitorError("the photo did not arrive as an upload to this page; upload it again")
    return real, name if isinstance(name, str) else None
