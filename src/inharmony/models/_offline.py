"""Fail fast, with a useful message, when weights must come from the Hugging Face Hub but cannot.

``huggingface_hub`` retries an unreachable host for most of a minute before it gives up. A user
without a network deserves an answer in seconds that says what was tried and how to work offline,
so before any download we look in the local cache and, if the file is not there, probe the host
once with a short timeout. Standard library only: ``inharmony.models`` imports nothing but torch
and timm.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["HubUnreachableError", "cached_hub_file", "ensure_hub_file_available", "hub_cache_dir"]

_DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "true", "yes", "on"}


class HubUnreachableError(RuntimeError):
    """The Hub cannot be reached and the file is not in the local cache."""


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache folder, honouring ``HF_HUB_CACHE`` and ``HF_HOME``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(hf_home) / "hub"


def cached_hub_file(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """Path of the first of ``filenames`` found in any cached snapshot of ``repo_id``, else ``None``."""
    snapshots = hub_cache_dir() / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    if not snapshots.is_dir():
        return None
    for snapshot in sorted(snapshots.iterdir()):
        for name in filenames:
            candidate = snapshot / name
            if candidate.is_file():
                return candidate
    return None


def _hub_is_reachable(timeout: float) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", _DEFAULT_ENDPOINT)
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_hub_file_available(
    repo_id: str,
    filenames: tuple[str, ...],
    offline_hint: str,
    timeout: float = 3.0,
) -> None:
    """Return if ``repo_id`` can be loaded (cached, or the Hub is reachable); raise otherwise.

    Args:
        repo_id: Hub repository, e.g. ``"timm/resnet34.tv_in1k"``.
        filenames: Files any one of which would satisfy the load.
        offline_hint: What the user can do instead (a local-file argument, for instance).
        timeout: Seconds to wait for the Hub's host.

    Raises:
        HubUnreachableError: offline mode is on, or the host did not answer, and nothing is cached.
    """
    if cached_hub_file(repo_id, filenames) is not None:
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE
    if offline or not _hub_is_reachable(timeout):
        why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face Hub could not be reached"
        raise HubUnreachableError(
            f"cannot download {repo_id!r} ({' or '.join(filenames)}): {why} and it is not in the "
            f"cache at {hub_cache_dir()}. To work offline: {offline_hint}; or download it on a "
            f"machine with a network (`huggingface-cli download {repo_id}`), copy the cache folder "
            f"over and point HF_HOME or HF_HUB_CACHE at it."
        )
