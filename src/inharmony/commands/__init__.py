"""Subcommands of the ``inharmony`` command, one module each (see :mod:`inharmony.cli`)."""
