"""Foreign checkpoint formats → inharmony models: each format's key rules, in one module per format.

A converter is a :class:`Converter`: a name, the architectures it builds, a ``detect(source)``
test on a path, and a ``load(source, architecture, **options)`` that returns the model in eval
mode; optionally the loader of a tag's published files in that format and its ``inharmony convert``
subcommand. :func:`inharmony.load` tries them in registration order, after a Hub folder and before a
plain state-dict file; ``create_model(pretrained=True)`` looks one up by the tag's
:attr:`~inharmony.models.PretrainedCfg.weights_format`; ``inharmony convert`` lists their commands.
Adding a format is one module here that calls :func:`register_converter`.

Example:
    >>> from inharmony.models.converters import list_converters
    >>> names = [c.name for c in list_converters()]
    >>> {"lightning", "dirl-official", "madisnet-official", "madisnet-libcom", "s2am-official"} <= set(names)
    True
"""

from __future__ import annotations

import importlib as _importlib
import pkgutil as _pkgutil

from ._registry import (
    ConvertCommand,
    Converter,
    find_converter,
    get_converter,
    list_converters,
    register_converter,
)

__all__ = [
    "ConvertCommand",
    "Converter",
    "find_converter",
    "get_converter",
    "list_converters",
    "register_converter",
]

# Every public module here is a format that registers itself on import. The formats build models through
# inharmony.models, which imports this package only inside functions (create_model, load): by the time this
# runs, inharmony.models is complete. Their detectors are disjoint (a .ckpt file, a folder of
# encoder_epoch*.pth, of g_epoch*.pth, of Inharmonious_G.pth, a file of the S2AM code), so the order does
# not matter.
for _module in _pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module.name}")
