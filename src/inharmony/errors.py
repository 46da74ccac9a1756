"""Every exception inharmony raises on purpose, in one place.

Each one carries a message that names the file, option or value at fault and says what to do.
All derive from :class:`InharmonyError`, and each also from the built-in type that describes it
(``ValueError`` for bad input, ``RuntimeError`` for a state the library cannot proceed from), so
``except ValueError`` keeps catching what it caught before this module existed.

Example:
    >>> import inharmony
    >>> from inharmony.errors import InharmonyError
    >>> try:
    ...     inharmony.create_model("no_such_model")
    ... except InharmonyError as err:
    ...     print(type(err).__name__)
    UnknownModelError
"""

from __future__ import annotations

from typing import TypeVar

__all__ = [
    "CheckpointError",
    "DataError",
    "HubConfigError",
    "HubUnreachableError",
    "ImageReadError",
    "InharmonyError",
    "OfficialCheckpointError",
    "PretrainedWeightsUnavailableError",
    "TrainingCommandError",
    "UnknownModelError",
    "VisitorError",
]


class InharmonyError(Exception):
    """Base class of every exception inharmony raises on purpose."""


class UnknownModelError(InharmonyError, ValueError):
    """A model name (or weight tag) that is not registered; the message lists the registered ones."""


class PretrainedWeightsUnavailableError(InharmonyError, RuntimeError):
    """``pretrained=True`` asks for weights that are not published; the message shows local alternatives."""


class HubUnreachableError(InharmonyError, RuntimeError):
    """The Hugging Face Hub cannot be reached (or ``HF_HUB_OFFLINE`` is set) and the file is not cached."""


class CheckpointError(InharmonyError, RuntimeError):
    """A weights file is missing, unreadable, not a checkpoint, or does not fit the model (keys named)."""


class OfficialCheckpointError(CheckpointError):
    """An authors' checkpoint is missing, unreadable, or does not match the network it converts to."""


class HubConfigError(CheckpointError, ValueError):
    """A hub folder's ``config.json`` is missing, malformed, out of bounds, newer than this library, or of another
    model: a :class:`CheckpointError` (the folder's weights cannot be used), and a ``ValueError`` as before.
    """


class DataError(InharmonyError, ValueError):
    """A problem with a dataset on disk: the message names the file and says what to do."""


class ImageReadError(InharmonyError, ValueError):
    """An input is not a readable image, or is not an image the models can take."""


class TrainingCommandError(InharmonyError, RuntimeError):
    """A training command cannot run (bad checkpoint path, missing output folder, ...)."""


class OutputExistsError(InharmonyError, FileExistsError):
    """An output would replace a file inharmony did not write (an input, weights, a dataset); nothing was written."""


class VisitorError(InharmonyError, ValueError):
    """A value a web page's visitor sent that the page does not offer; the message is safe to show as it is."""


_E = TypeVar("_E", bound=BaseException)


def find_cause(error: BaseException | None, kind: type[_E]) -> _E | None:
    """The first exception of type ``kind`` in ``error``'s chain (``__cause__``/``__context__``), itself included.

    jsonargparse re-wraps errors raised while building classes, and torch reports a failing write as a
    ``RuntimeError`` whose context is the ``OSError``: this finds the one that says what went wrong.

    Example:
        >>> try:
        ...     try:
        ...         raise DataError("bad.png: not an image")
        ...     except DataError as err:
        ...         raise ValueError("Does not validate against any of the Union subtypes") from err
        ... except ValueError as wrapped:
        ...     print(find_cause(wrapped, InharmonyError))
        bad.png: not an image
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


__all__ += ["OutputExistsError", "find_cause"]
