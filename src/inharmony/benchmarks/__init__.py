"""Benchmarks run by ``inharmony bench TOPIC``; one module per topic.

Each module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` and
prints its figures. Timing claims live here, never in the test suite.
"""
