"""The table of foreign checkpoint formats, in the order :func:`inharmony.load` tries them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["Converter", "find_converter", "get_converter", "list_converters", "register_converter"]


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
            ``trust`` allows pickled objects beyond tensors, for formats that may hold them.
        architectures: Registered names it can build (empty: any).
    """

    name: str
    description: str
    detect: Callable[[str], bool]
    load: Callable[..., nn.Module]
    architectures: tuple[str, ...] = ()


_CONVERTERS: dict[str, Converter] = {}


def register_converter(converter: Converter) -> Converter:
    """Add a format; :func:`inharmony.load` will try it after the ones registered before it."""
    if converter.name in _CONVERTERS:
        raise ValueError(f"a converter named {converter.name!r} is already registered")
    _CONVERTERS[converter.name] = converter
    return converter


def list_converters() -> list[Converter]:
    """The registered converters, in the order :func:`inharmony.load` tries them."""
    return list(_CONVERTERS.values())


def get_converter(name: str) -> Converter:
    """The converter called ``name``; the error lists the known ones."""
    if name not in _CONVERTERS:
        raise ValueError(f"unknown converter {name!r}; known: {', '.join(_CONVERTERS)}")
    return _CONVERTERS[name]


def find_converter(source: str) -> Converter | None:
    """The first registered converter whose ``detect`` accepts ``source``, or ``None``."""
    return next((c for c in _CONVERTERS.values() if c.detect(source)), None)
