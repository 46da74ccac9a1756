"""Foreign checkpoint formats → inharmony models, each registering how to recognise its files.

A converter is a :class:`Converter`: a name, the architectures it builds, a ``detect(source)``
test on a path, and a ``load(source, architecture, **options)`` that returns the model in eval
mode. :func:`inharmony.load` tries them in registration order, after a Hub folder and before a
plain state-dict file, so adding a format is one module here that calls :func:`register_converter`.

Example:
    >>> from inharmony.converters import list_converters
    >>> [c.name for c in list_converters()]
    ['lightning', 'madisnet-official', 'madisnet-libcom', 'dirl-official', 's2am-official']
"""

from __future__ import annotations

__all__ = [
    "Converter",
    "convert_madisnet",
    "dirl_key_to_official",
    "dirl_to_official_state_dicts",
    "find_converter",
    "get_converter",
    "list_converters",
    "load_lightning_checkpoint",
    "load_madisnet",
    "load_official_dirl",
    "madisnet_files",
    "official_dirl_files",
    "read_lightning_checkpoint",
    "register_converter",
]


# Each module registers its converter on import. Their detectors are disjoint (a .ckpt file, a folder of
# encoder_epoch*.pth, a folder of g_epoch*.pth or Inharmonious_G.pth), so the order in which load() tries
# them does not matter. Every public module of this package is imported, so a new format is one file.
import importlib as _importlib
import pkgutil as _pkgutil

from ._registry import Converter, find_converter, get_converter, list_converters, register_converter
from .lightning import load_lightning_checkpoint, read_lightning_checkpoint
from .madisnet import convert_madisnet, load_madisnet, madisnet_files
from .official_dirl import dirl_key_to_official, dirl_to_official_state_dicts, load_official_dirl, official_dirl_files

for _module in _pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module.name}")
