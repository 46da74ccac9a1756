"""The table of foreign checkpoint formats, in the order :func:`inharmony.load` tries them."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ...errors import OfficialCheckpointError

__all__ = [
    "ConvertCommand",
    "Converter",
    "check_epoch",
    "find_converter",
    "get_converter",
    "list_converters",
    "refuse_other_format",
    "register_converter",
]


@dataclass(frozen=True)
class ConvertCommand:
    """The ``inharmony convert NAME`` subcommand of a format: files in that format → a hub folder.

    Attributes:
        function: A typed function whose signature and Google docstring declare the options; it writes the
            hub folder and returns the exit code (0).
        summary: One line for ``inharmony convert --help``.
        example: A command line shown in the subcommand's ``--help``.
    """

    function: Callable[..., int]
    summary: str
    example: str

    @property
    def target(self) -> str:
        """``"module:function"``, as the command line's tool table names what it runs."""
        return f"{self.function.__module__}:{self.function.__name__}"


@dataclass(frozen=True)
class Converter:
    """How to recognise and load one foreign checkpoint format.

    Attributes:
        name: Short name, also the ``inharmony convert NAME`` subcommand where there is one.
        description: One line for listings and error messages.
        detect: ``detect(path) -> bool``: whether a file or folder is in this format (cheap: names and
            headers, never a full load).
        load: ``load(path, architecture, *, trust=False) -> nn.Module`` in eval mode; ``architecture`` is
            the registered name the caller asked for (the converter raises if the file holds another);
            ``trust`` allows pickled objects beyond tensors, for formats that may hold them. With
            ``takes_epoch`` it also takes ``epoch=``.
        architectures: Registered names it can build (empty: any).
        takes_epoch: The format keeps one file set per epoch (``*_epoch{N|best}.pth``): ``load`` takes
            ``epoch=`` and so does :func:`inharmony.load` for it.
        load_published: ``load_published(model, pretrained_cfg)``: fill a freshly built model with the files
            its tag publishes on the Hugging Face Hub in this format (a tag whose
            :attr:`~inharmony.models.PretrainedCfg.weights_format` names this converter); ``None`` when
            the format is never published.
        command: The ``inharmony convert`` subcommand, if there is one.
        identify: ``identify(keys) -> str | None``: what one file of this format is, told from the key names of
            its state dict (e.g. ``"an encoder file of the DIRL authors' checkpoints (encoder_epochN.pth)"``),
            so that a file given to the wrong loader is named for what it is; ``None`` for another file.
    """

    name: str
    description: str
    detect: Callable[[str], bool]
    load: Callable[..., nn.Module]
    architectures: tuple[str, ...] = ()
    takes_epoch: bool = False
    load_published: Callable[..., None] | None = None
    command: ConvertCommand | None = None
    identify: Callable[[Collection[str]], str | None] | None = None


_CONVERTERS: dict[str, Converter] = {}


def register_converter(converter: Converter) -> Converter:
    """Add a format; :func:`inharmony.load` will try it after the ones registered before it.

    Example:
        >>> fmt = Converter("never-seen", "an example format", lambda path: False, lambda *a, **k: None)
        >>> register_converter(fmt).name in [c.name for c in list_converters()]
        True
        >>> _ = _CONVERTERS.pop("never-seen")
    """
    if converter.name in _CONVERTERS:
        raise ValueError(f"a converter named {converter.name!r} is already registered")
    _CONVERTERS[converter.name] = converter
    return converter


def list_converters() -> list[Converter]:
    """The registered converters, in the order :func:`inharmony.load` tries them.

    Example:
        >>> "dirl-official" in [c.name for c in list_converters()]
        True
    """
    return list(_CONVERTERS.values())


def get_converter(name: str) -> Converter:
    """The converter called ``name``; the error lists the known ones.

    Example:
        >>> get_converter("dirl-official").architectures
        ('dirl',)
    """
    if name not in _CONVERTERS:
        raise ValueError(f"unknown converter {name!r}; known: {', '.join(_CONVERTERS)}")
    return _CONVERTERS[name]


def find_converter(source: str) -> Converter | None:
    """The first registered converter whose ``detect`` accepts ``source``, or ``None``.

    Example:
        >>> find_converter("no/such/folder") is None
        True
    """
    return next((c for c in _CONVERTERS.values() if c.detect(source)), None)


def check_epoch(epoch: str | int, names: tuple[str, ...]) -> int | str:
    """``--epoch`` as the authors' file names spell it: one of ``names`` or an epoch number.

    Raises:
        ValueError: anything else (a path, a negative or fractional number, ...), naming the option.

    Example:
        >>> check_epoch("60", ("best",)), check_epoch("best", ("best",))
        (60, 'best')
    """
    text = str(epoch).strip()
    if text in names:
        return text
    if text.isdecimal() and text.isascii() and len(text) <= 6:
        return int(text)
    choices = ", ".join(repr(n) for n in names)
    raise ValueError(f"--epoch {str(epoch)[:40]!r}: must be {choices} or an epoch number (e.g. 60)")


def refuse_other_format(folder: str | Path, own: Collection[str], expected: str) -> None:
    """Raise if ``folder`` is in a registered format other than ``own`` (converter names), naming that format.

    Raises:
        OfficialCheckpointError: ``"<folder> holds <the other format>, not <expected>: convert it with ..."``.

    Example:
        >>> refuse_other_format("no/such/folder", ("dirl-official",), "the DIRL authors' checkpoints")
    """
    other = find_converter(str(folder))
    if other is not None and other.name not in own:
        how = f"convert it with `inharmony convert {other.name}`" if other.command else "load it with inharmony.load"
        raise OfficialCheckpointError(f"{folder} holds {other.description}, not {expected}: {how}")
