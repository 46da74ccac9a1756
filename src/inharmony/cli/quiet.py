"""A quiet console for the training commands: inharmony's progress and tables, not Lightning's chatter.

By default ``inharmony fit/validate/test`` and ``inharmony demo`` show only what inharmony prints:
Lightning's INFO lines (seed, "GPU available", tips, "Restoring states", "`weights_only` was not set"),
its model summary, its raw metric table (``test/loss`` included) and known third-party warnings that a
user cannot act on are off. ``--verbose`` brings all of them back. Warnings that concern the run itself
(a wrong argument, a NaN loss, a data problem) are never hidden.

Example:
    >>> argv, verbose = split_verbose(["fit", "--config", "c.yaml", "--verbose"])
    >>> argv, verbose
    (['fit', '--config', 'c.yaml'], True)
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["QUIET_WARNINGS", "quiet_lightning", "split_verbose"]

_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
QUIET_WARNINGS = (
    # torch's pytree API change seen through Lightning's own code: nothing for a user to do.
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    # Lightning picks a CSV logger when TensorBoard is absent and says so at every run.
    r"Starting from v1\.9\.0, `tensorboardX` has been removed.*",
    # A short run (the demo's tests, a smoke test) has fewer batches than the logging interval.
    r"The number of training batches \(\d+\) is smaller than the logging interval.*",
)
"""Message patterns of the third-party warnings hidden without ``--verbose``."""


def split_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without a ``--verbose`` flag (``--verbose``, ``--verbose true``, ``--verbose=false``), and its value.

    ``test`` and ``validate`` keep it: there it is also Lightning's own ``Trainer.test(verbose=...)``.
    """
    out: list[str] = []
    verbose = False
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--verbose":
            value = argv[i + 1].lower() if i + 1 < len(argv) else ""
            if value in ("true", "false"):
                verbose, i = value == "true", i + 2
            else:
                verbose, i = True, i + 1
            continue
        if token.startswith("--verbose="):
            verbose = token.split("=", 1)[1].lower() in ("true", "1", "yes")
            i += 1
            continue
        out.append(token)
        i += 1
    return out, verbose


def quiet_lightning(verbose: bool) -> None:
    """Set Lightning's loggers to WARNING and hide :data:`QUIET_WARNINGS`, unless ``verbose``."""
    level = logging.INFO if verbose else logging.WARNING
    for name in _LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("default" if verbose else "ignore", message=pattern)
