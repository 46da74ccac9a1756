"""Read weight files and load them strictly, with errors that name the file and the keys.

This is the one place where inharmony reads a weights file (:func:`read_state_dict`: a state dict,
or with ``whole=True`` a Lightning checkpoint's payload) and loads a state dict into a model
(:func:`load_state_dict_strict`): the Hub format, plain weight files and every converter go through it.

A file that is not a checkpoint at all (empty, a Git LFS pointer, a saved web page, other bytes) is
named for what it is before any unpickling is tried, so no message ever suggests loading it unsafely.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.pth"
    >>> _ = path.write_text("version https://git-lfs.github.com/spec/v1\\noid sha256:ab\\nsize 9\\n")
    >>> diagnose_weight_file(path).split(": ", 1)[1][:35]
    'it is a Git LFS pointer (a small te'
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import re
import struct
import zipfile
from collections.abc import Mapping
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import CheckpointError

__all__ = [
    "TRUST_OPTION",
    "code_it_runs",
    "diagnose_weight_file",
    "load_state_dict_file",
    "load_state_dict_strict",
    "pickled_globals",
    "read_state_dict",
    "refused_pickle_message",
    "runs_code_message",
]

_HEAD = 1024  # bytes read to tell what a file is
_ZIP = b"PK\x03\x04"  # torch.save's default (zip) format
TRUST_OPTION = "inharmony.load(..., trust_checkpoint=True) (CLI: --trust-checkpoint)"
"""How a user of :func:`inharmony.load` lets a file hold Python objects, as messages name it."""


def _is_safetensors(head: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON object of that length."""
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= size - 8 and head[8:9] == b"{"


def _is_torch(head: bytes) -> bool:
    """torch.save: a zip archive (default since PyTorch 1.6) or a pickle (protocol 2-5, legacy format)."""
    return head.startswith(_ZIP) or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _text(head: bytes) -> str | None:
    """The bytes as text if they are UTF-8 without control characters (a character cut at the end is fine)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:
            return None
        text = head[: err.start].decode("utf-8")
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return None
    return text


_MAGIC = (
    (b"\x1f\x8b", 0, "a gzip archive (.gz, .tar.gz), not weights: unpack it and pass the weights file inside"),
    (b"ustar", 257, "a tar archive, not weights: unpack it and pass the weights file inside"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive, not weights: unpack it and pass the weights file inside"),
    (b"Rar!", 0, "a RAR archive, not weights: unpack it and pass the weights file inside"),
    (b"\x89HDF\r\n\x1a\n", 0, "an HDF5 file (Keras or TensorFlow weights?), not PyTorch or safetensors weights"),
    (b"\x93NUMPY", 0, "a NumPy array file (.npy), not PyTorch or safetensors weights"),
)


def _zip_problem(path: str) -> str | None:
    """``None`` for a torch.save zip (it holds ``*/data.pkl``), else what the zip archive is."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None  # a damaged torch.save archive: torch.load's error says it is corrupt or truncated
    if any(name.endswith("data.pkl") for name in names):
        return None
    shown = ", ".join(names[:4]) + (f", … ({len(names)} entries)" if len(names) > 4 else "")
    return (
        f"{path}: it is a zip archive, not a PyTorch checkpoint (it holds {shown or 'nothing'}): unzip it and "
        "pass the weights inside (the authors publish their checkpoints as zips)"
    )


def diagnose_weight_file(path: str | os.PathLike[str]) -> str | None:
    """What a file that is not a PyTorch or safetensors file is, as an error message; ``None`` if it looks like one.

    Only the first bytes are read; nothing is unpickled. Recognised: an empty file, a Git LFS pointer, an
    HTML page (a download that saved a web page), another text file, and other bytes.

    Example:
        >>> import tempfile, pathlib
        >>> empty = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> empty.touch()
        >>> "it is empty (0 bytes)" in diagnose_weight_file(empty)
        True
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    if size == 0:
        return f"{path}: it is empty (0 bytes): the download or copy did not complete; fetch the weights again"
    if head.startswith(_ZIP):
        return _zip_problem(path)
    if _is_safetensors(head, size) or _is_torch(head):
        return None
    for magic, offset, what in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return f"{path}: it is {what}"
    if head[:1] == b"\x08" and (b"pytorch" in head[:64] or b"onnx" in head[:256]):
        return (
            f"{path}: it is an ONNX model (a network exported for ONNX Runtime, e.g. by `inharmony export`), "
            "not weights inharmony loads: use the weights it was exported from"
        )
    text = _text(head)
    if text is not None and text.startswith("version https://git-lfs.github.com/spec/"):
        return (
            f"{path}: it is a Git LFS pointer (a small text file standing for the weights), not the weights: "
            "run `git lfs install && git lfs pull` in the repository, or download the file itself"
        )
    lowered = (text or "").lstrip().lower()
    if lowered.startswith(("<!doctype html", "<html", "<head", "<!--")) or "<html" in lowered[:300]:
        return (
            f"{path}: it is an HTML page, not weights: the download saved a web page (a login, error or "
            "'confirm download' page); download the file itself (e.g. the 'raw' or 'resolve' link)"
        )
    if text is not None:  # never quoted: the message may reach someone who must not read the file
        return f"{path}: it is a text file, not a PyTorch or safetensors weights file"
    return (
        f"{path}: it is not a PyTorch (torch.save) or safetensors file (it starts with bytes {head[:8].hex(' ')}); "
        "check that it is the weights file and that it downloaded completely"
    )


# Modules and builtins whose only use in a pickle is to run code while it is loaded (torch.load blocks
# sys, os, posix and nt outright; the others it merely does not allow).
_CODE_MODULES = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "importlib", "runpy", "ctypes", "pty", "code",
    "codeop", "pickle", "marshal", "webbrowser", "multiprocessing", "signal", "platform", "pdb", "timeit",
    "commands", "popen2",
})  # fmt: skip
_CODE_BUILTINS = frozenset({
    "eval", "exec", "compile", "__import__", "getattr", "setattr", "delattr", "open", "input", "breakpoint",
})  # fmt: skip
_BLOCKED = re.compile(r"GLOBAL (\S+) whose module (\S+) is blocked")
_NOT_ALLOWED = re.compile(r"Unsupported global: GLOBAL (\S+) was not an allowed global")
_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_MAX_PICKLE = 64 << 20  # bytes of pickled structure scanned for the objects it imports


# Functions that load or compile code, or call whatever they are given (a pickle can REDUCE any of them).
_CODE_CALLS = ("torch.load", "torch.hub.", "torch.jit.", "torch.package.", "torch.utils.cpp_extension.",
               "operator.methodcaller", "operator.attrgetter", "functools.partial", "types.", "numpy.load")  # fmt: skip


def _runs_code(name: str) -> bool:
    module, _, attribute = name.rpartition(".")
    return (
        module.split(".")[0] in _CODE_MODULES
        or (module == "builtins" and attribute in _CODE_BUILTINS)
        or name.startswith(_CODE_CALLS)
    )


def _globals_in(data: bytes) -> list[str]:
    """``module.name`` of every object the pickles in ``data`` import, in order; nothing is unpickled."""
    found: list[str] = []
    stream = io.BytesIO(data)
    for _ in range(8):  # the legacy format: a few small pickles, then the main one, then raw tensor bytes
        recent: list[Any] = []
        memo: dict[int, Any] = {}
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                name = opcode.name
                if name in ("GLOBAL", "INST"):  # protocol 2 writes Python 2's name of the builtins
                    found.append(str(arg).replace(" ", ".").replace("__builtin__.", "builtins."))
                elif name == "STACK_GLOBAL" and len(recent) >= 2:
                    found.append(f"{recent[-2]}.{recent[-1]}")
                elif name in _STRINGS:
                    recent.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
                elif name == "MEMOIZE" and recent:
                    memo[len(memo)] = recent[-1]
                elif name in ("BINPUT", "LONG_BINPUT", "PUT") and recent:
                    memo[int(arg)] = recent[-1]
                elif name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                    recent.append(memo[int(arg)])
        except Exception:  # the end of the pickles, or bytes that are not one: stop reading
            break
    return found


def pickled_globals(path: str | os.PathLike[str]) -> list[str]:
    """The Python objects (``module.name``) a torch file's pickle imports when loaded, found without loading it.

    Reads the pickle of a zip-format file (``*/data.pkl``) or the start of a legacy one and lists its
    ``GLOBAL`` / ``STACK_GLOBAL`` / ``INST`` references, e.g. ``['collections.OrderedDict', 'torch._utils.
    _rebuild_tensor_v2', 'posix.system']``; ``[]`` for a file that is no pickle.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                if name is None:
                    return []
                with archive.open(name) as member:
                    return _globals_in(member.read(_MAX_PICKLE))
        with open(path, "rb") as fh:
            return _globals_in(fh.read(_MAX_PICKLE))
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        return []


def code_it_runs(path: str | os.PathLike[str], err: BaseException | None = None) -> str | None:
    """The object a file would call to run code when unpickled (``"posix.system"``), or ``None``.

    Found in the pickle itself (any protocol, :func:`pickled_globals`) or in torch's refusal ``err``
    ("unsupported GLOBAL ... whose module ... is blocked", "GLOBAL eval was not an allowed global").
    """
    found = next((name for name in pickled_globals(path) if _runs_code(name)), None)
    if found is None and err is not None:
        blocked = _BLOCKED.search(str(err))
        refused = _NOT_ALLOWED.search(str(err))
        if blocked:
            found = blocked[1]
        elif refused and _runs_code(refused[1] if "." in refused[1] else f"builtins.{refused[1]}"):
            found = refused[1] if "." in refused[1] else f"builtins.{refused[1]}"
    return found


def runs_code_message(path: str, name: str) -> str:
    """The error for a file whose pickle would run code (``name``) when loaded: never advice to load it."""
    return (
        f"{path} asks to run code when it is loaded: its pickle calls {name}, which no weights file needs. "
        "It was not loaded; do not load it in any other way: delete it and get the weights from their publisher"
    )


def refused_pickle_message(path: str, err: Exception, trust_option: str | None = None) -> str:
    """What to say when ``torch.load(weights_only=True)`` refused ``path`` (an ``UnpicklingError``).

    A file that asks to run code is named so (the object it calls); one holding other Python objects says
    which, and offers ``trust_option`` if the caller has one; any other refusal is a corrupt file.
    """
    code = code_it_runs(path, err)
    if code is not None:
        return runs_code_message(path, code)
    if _NOT_ALLOWED.search(str(err)) or "Can only build" in str(err) or "Can only create new object" in str(err):
        return _objects_message(path, err, trust_option)
    return _corrupt(path, err)


def _objects_message(path: str, err: Exception, trust_option: str | None) -> str:
    found = next((ln.strip() for ln in str(err).splitlines() if "Unsupported global" in ln), "")
    found = found.split("GLOBAL", 1)[-1].split(" was not", 1)[0].strip() if found else ""
    advice = (
        f"If you wrote this file yourself, pass {trust_option}."
        if trust_option
        else "If you made it yourself, re-save only the weights: torch.save(model.state_dict(), path)."
    )
    return (
        f"{path} holds Python objects beyond tensors and plain containers"
        + (f" (first: {found})" if found else "")
        + f", so it was not loaded (inharmony reads weights with torch.load(weights_only=True)). {advice}"
    )


def read_state_dict(
    path: str | os.PathLike[str],
    *,
    trust: bool = False,
    whole: bool = False,
    trust_option: str | None = None,
) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file or a ``torch.save``'d state dict (``weights_only=True``).

    The format is told from the file's first bytes, not its name. A ``{"state_dict": ...}`` wrapper is
    unwrapped; ``module.`` / ``model.`` prefixes are kept.

    Args:
        path: The weights file.
        trust: Allow arbitrary pickled objects (``weights_only=False``). Only for files you made.
        whole: Return the whole payload of a ``torch.save``'d dict (e.g. a Lightning checkpoint) unwrapped.
        trust_option: How the caller lets a user pass ``trust`` (e.g. ``"trust=True (CLI: --trust-checkpoint)"``),
            named in the message for a file holding Python objects; ``None``: no such option is offered.

    Raises:
        CheckpointError: the file is missing, is not a weights file (said what it is: empty, a Git LFS
            pointer, a web page, ...), is corrupt or truncated, holds Python objects (and ``trust`` is off),
            or holds no state dict.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.pth"
        >>> torch.save({"weight": torch.zeros(1)}, path)
        >>> list(read_state_dict(path))
        ['weight']
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, not a weights file: pass the weights file itself")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    diagnosis = diagnose_weight_file(path)
    if diagnosis is not None:
        raise CheckpointError(f"cannot read checkpoint {diagnosis}")
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    safetensors = _is_safetensors(head, os.path.getsize(path))
    if trust and not safetensors and (code := code_it_runs(path)) is not None:
        raise CheckpointError(runs_code_message(path, code))  # trusting objects is not trusting os.system
    try:
        if safetensors:
            state: Any = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        raise CheckpointError(refused_pickle_message(path, err, trust_option)) from err
    except (AttributeError, ImportError) as err:  # trusted: an object whose class this process cannot import
        raise CheckpointError(
            f"{path} holds Python objects whose code is not available here ({type(err).__name__}: {err}); "
            "re-save only the weights where they were made: torch.save(model.state_dict(), path)"
        ) from err
    except Exception as err:
        raise CheckpointError(_corrupt(path, err)) from err
    if whole:
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{path} does not hold a checkpoint dict (found {type(state).__name__})")
        return dict(state)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return dict(state)


def _corrupt(path: str, err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "error:" in ln.lower() or "failed" in ln.lower()), lines[0] if lines else "")
    detail = detail.split(". ")[0][:160]
    return (
        f"cannot read checkpoint {path}: it looks like a PyTorch/safetensors file but is corrupt or truncated "
        f"({type(err).__name__}: {detail}); use an intact copy (download or copy it again)"
    )


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state)`` that reports every missing, unexpected or misshapen key by name.

    Args:
        model: The network to fill.
        state: Its state dict, keys as in ``model.state_dict()``.
        source: Where the weights came from, for the message (a path or a Hub id).

    Raises:
        CheckpointError: naming up to 20 keys of each kind of mismatch.

    Example:
        >>> net = nn.Linear(2, 1)
        >>> load_state_dict_strict(net, {"weight": torch.zeros(1, 2)}, "w.pth")
        Traceback (most recent call last):
        ...
        inharmony.errors.CheckpointError: w.pth does not fit Linear: missing keys (1): bias
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
    if misshapen:
        problems.append(f"wrong shapes ({len(misshapen)}): {'; '.join(misshapen[:20])}")
    if problems:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + " | ".join(problems))
    model.load_state_dict(state, strict=True)


def load_state_dict_file(model: nn.Module, path: str | os.PathLike[str], *, trust: bool = False) -> None:
    """Load ``path`` (``.safetensors`` or a torch state dict) into ``model``, strictly.

    DataParallel's ``module.`` and a LightningModule's ``model.`` key prefixes are removed first.
    ``trust`` allows pickled Python objects (see :func:`read_state_dict`).
    """
    path = os.fspath(path)
    state = read_state_dict(path, trust=trust, trust_option=TRUST_OPTION)
    state = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()}
    load_state_dict_strict(model, state, path)
