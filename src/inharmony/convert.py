"""Deprecated: the converters moved to :mod:`inharmony.converters`; this alias keeps old imports working."""

from __future__ import annotations

import warnings

from .converters import dirl_key_to_official, dirl_to_official_state_dicts, load_official_dirl, official_dirl_files
from .errors import OfficialCheckpointError

__all__ = [
    "OfficialCheckpointError",
    "dirl_key_to_official",
    "dirl_to_official_state_dicts",
    "load_official_dirl",
    "official_dirl_files",
]

warnings.warn(
    "inharmony.convert is deprecated; import from inharmony.converters instead",
    DeprecationWarning,
    stacklevel=2,
)
