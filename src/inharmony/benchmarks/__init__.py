"""Benchmarks run by ``inharmony bench TOPIC``; one module per topic.

Each module defines ``NAME``, ``HELP`` and a typed ``run(...) -> int`` whose signature and Google
docstring declare the command's options (the parser is built from them), and prints its figures.
Timing claims live here, never in the test suite.
"""
