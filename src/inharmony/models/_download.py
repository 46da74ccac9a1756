"""Files from the Hugging Face Hub, failing within a second, with what to do, when they cannot be had.

``huggingface_hub`` retries an unreachable host for most of a minute before it gives up. A user
without a network deserves an answer at once that says what was tried and how to work offline,
so before any download we ask huggingface_hub's own cache whether the file is there and, if it
is not, probe the Hub's host once with a short timeout (a TCP connect: the one piece
huggingface_hub does not offer).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import huggingface_hub
from huggingface_hub import constants as hf_constants
from huggingface_hub import errors as hf_errors

from ..errors import HubUnreachableError

__all__ = ["download_hub_file", "ensure_hub_file_available", "hub_cache_dir", "hub_is_reachable", "offline_mode"]

_TRUE = {"1", "true", "yes", "on"}


def offline_mode() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set, read now (huggingface_hub reads it once, at import)."""
    value = os.environ.get("HF_HUB_OFFLINE")
    return value.lower() in _TRUE if value is not None else huggingface_hub.is_offline_mode()


def hub_cache_dir() -> str:
    """The Hugging Face cache folder, read now (``HF_HUB_CACHE``, then ``HF_HOME/hub``, then the default).

    Read at call time for the same reason as :func:`offline_mode`; same precedence as huggingface_hub.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return hf_constants.HF_HUB_CACHE


def hub_is_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's host (``HF_ENDPOINT``) accepts a TCP connection within ``timeout`` seconds."""
    parsed = urlparse(os.environ.get("HF_ENDPOINT") or hf_constants.ENDPOINT)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cached(repo_id: str, filenames: tuple[str, ...], revision: str | None) -> str | None:
    for name in filenames:
        found = huggingface_hub.try_to_load_from_cache(repo_id, name, cache_dir=hub_cache_dir(), revision=revision)
        if isinstance(found, str):
            return found
    return None


def ensure_hub_file_available(
    repo_id: str,
    filenames: tuple[str, ...],
    offline_hint: str,
    revision: str | None = None,
    timeout: float = 3.0,
) -> str | None:
    """Return the cached path of one of ``filenames`` (or ``None`` if the Hub is reachable); raise otherwise.

    Args:
        repo_id: Hub repository, e.g. ``"timm/resnet34.tv_in1k"``.
        filenames: Files any one of which would satisfy the load.
        offline_hint: What the user can do instead (a local-file argument, for instance).
        revision: Revision the files must come from (default: the cached ``main``).
        timeout: Seconds to wait for the Hub's host.

    Raises:
        HubUnreachableError: offline mode is on, or the host did not answer, and nothing is cached.
    """
    cached = _cached(repo_id, filenames, revision)
    if cached is not None:
        return cached
    offline = offline_mode()
    if offline or not hub_is_reachable(timeout):
        why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face Hub could not be reached"
        raise HubUnreachableError(
            f"cannot download {repo_id!r} ({' or '.join(filenames)}): {why} and it is not in the "
            f"cache at {hub_cache_dir()}. To work offline: {offline_hint}; or download it on a "
            f"machine with a network (`hf download {repo_id}`), copy the cache folder "
            f"over and point HF_HOME or HF_HUB_CACHE at it."
        )
    return None


def download_hub_file(
    repo_id: str,
    filename: str,
    offline_hint: str,
    revision: str | None = None,
    **download_kwargs: object,
) -> str:
    """``hf_hub_download`` that fails fast offline and reports the Hub's errors as inharmony's.

    Args:
        repo_id: Hub repository.
        filename: File in it.
        offline_hint: What the user can do instead, for the offline message.
        revision: Branch, tag or commit.
        **download_kwargs: ``cache_dir``, ``token``, ``force_download``, ``local_files_only``.

    Raises:
        HubUnreachableError: offline and not cached (within a second), or not cached at that revision.
        FileNotFoundError: the repository, revision or file does not exist on the Hub.
    """
    if download_kwargs.get("cache_dir") is None:
        download_kwargs["cache_dir"] = hub_cache_dir()
        cached = ensure_hub_file_available(repo_id, (filename,), offline_hint, revision=revision)
        if cached is not None:
            return cached
    local_only = bool(download_kwargs.pop("local_files_only", False)) or offline_mode()
    # LocalEntryNotFoundError subclasses EntryNotFoundError: catch it first.
    try:
        return huggingface_hub.hf_hub_download(
            repo_id, filename, revision=revision, local_files_only=local_only, **download_kwargs
        )
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled) as err:
        raise HubUnreachableError(
            f"{repo_id!r} (revision {revision or 'main'}) is not in the local Hugging Face cache and the Hub "
            f"cannot be used ({type(err).__name__}). {offline_hint}."
        ) from err
    except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError, hf_errors.EntryNotFoundError) as err:
        raise FileNotFoundError(
            f"cannot load {filename} of {repo_id!r} (revision {revision or 'main'}): {type(err).__name__}: "
            f"{str(err).splitlines()[0]}"
        ) from err
