"""Deprecated location of :class:`~inharmony.errors.DataError`; import it from :mod:`inharmony.errors`."""

from __future__ import annotations

from ..errors import DataError

__all__ = ["DataError"]
