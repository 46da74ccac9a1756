"""ONNX Runtime as a backend of :func:`~inharmony.inference.optimize`: exported once, cached by weights.

:func:`onnxruntime_module` turns a network into an :class:`OnnxRuntimeModule`: a module with the network's
call contract (a normalised float ``(B, 3, H, W)`` batch in, the same dict of maps out, float32) that runs
an ONNX Runtime CPU session. The graph is exported with every output of the network (not only the mask),
with dynamic batch and height/width multiples of the model's ``size_multiple``
(:func:`~inharmony.inference.export.export_graph`), and kept in the cache (:func:`cache_dir`) under a hash
of the weights, the architecture and the input spec: a second ``optimize`` of the same weights loads the
file instead of exporting again (export takes seconds to a minute; loading, well under a second). Every
session is checked once against eager PyTorch on a small input before it is used.

Example:
    >>> import inharmony
    >>> net = inharmony.create_model("dirl_tiny").eval()  # doctest: +SKIP
    >>> fast = onnxruntime_module(net)  # doctest: +SKIP
    >>> fast(torch.zeros(1, 3, 64, 64))["mask"].shape  # doctest: +SKIP
    torch.Size([1, 1, 64, 64])
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .precision import onnxruntime_available

__all__ = ["ATOL", "OnnxRuntimeModule", "cache_dir", "cache_key", "onnxruntime_module"]

ATOL = 1e-4
"""Largest difference of an ONNX Runtime output from eager fp32 the check accepts (plus 1e-3 relative)."""
_FORMAT = 1  # bump when the exported graph changes for the same weights (cache files of other formats are ignored)
_OPSET = 18
_MAX_SIZE = 8192

Spec = Any  # None for a tensor, ("dict", keys, specs), ("list" | "tuple", specs)


def cache_dir() -> Path:
    """Where exported graphs are kept: ``$INHARMONY_CACHE/onnx`` (or ``$INHARMONY_CACHE_DIR``,
    ``$XDG_CACHE_HOME/inharmony``, default ``~/.cache/inharmony``).

    Example:
        >>> cache_dir().name
        'onnx'
    """
    root = os.environ.get("INHARMONY_CACHE") or os.environ.get("INHARMONY_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = Path(xdg) / "inharmony" if xdg else Path.home() / ".cache" / "inharmony"
    return Path(root).expanduser() / "onnx"


def _flatten(out: Any) -> tuple[list[torch.Tensor], Spec]:
    """The tensors of a network's output (dict keys in order) and the structure to rebuild it."""
    if isinstance(out, torch.Tensor):
        return [out], None
    if isinstance(out, dict):
        parts = [_flatten(value) for value in out.values()]
        return [t for tensors, _ in parts for t in tensors], ("dict", list(out), [spec for _, spec in parts])
    if isinstance(out, (list, tuple)):
        parts = [_flatten(value) for value in out]
        kind = "tuple" if isinstance(out, tuple) else "list"
        return [t for tensors, _ in parts for t in tensors], (kind, [spec for _, spec in parts])
    raise TypeError(f"the ONNX Runtime backend needs outputs made of tensors, dicts and lists; got {type(out)}")


def _unflatten(tensors: list[torch.Tensor], spec: Spec, start: int = 0) -> tuple[Any, int]:
    if spec is None:
        return tensors[start], start + 1
    if spec[0] == "dict":
        out = {}
        for key, sub in zip(spec[1], spec[2], strict=True):
            out[key], start = _unflatten(tensors, sub, start)
        return out, start
    items = []
    for sub in spec[1]:
        item, start = _unflatten(tensors, sub, start)
        items.append(item)
    return (tuple(items) if spec[0] == "tuple" else items), start


class _FlatOutputs(nn.Module):
    """The network with its output flattened to a tuple of tensors (what an ONNX graph returns)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(_flatten(self.model(x))[0])


def _settings(model: nn.Module) -> list[str]:
    """Each module's class and plain settings (ints, floats, strings...): what the weights alone do not say."""
    plain = (bool, int, float, str, type(None))
    lines = []
    for name, module in model.named_modules():
        settings = {
            key: value
            for key, value in vars(module).items()
            if not key.startswith("_")
            and key != "training"
            and isinstance(value, (*plain, tuple))
            and (not isinstance(value, tuple) or all(isinstance(v, plain) for v in value))
        }
        lines.append(f"{name}:{type(module).__module__}.{type(module).__qualname__}:{sorted(settings.items())!r}")
    return lines


def cache_key(model: nn.Module, multiple: int) -> str:
    """The SHA-256 naming ``model``'s cached graph: weights and buffers, architecture, input spec, exporter.

    Example:
        >>> key = cache_key(nn.Conv2d(3, 1, 1), 16)
        >>> len(key), key == cache_key(nn.Conv2d(3, 1, 1), 16)  # new random weights: another key
        (64, False)
    """
    digest = hashlib.sha256()
    torch_version = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    digest.update(f"inharmony-onnx/{_FORMAT}/torch{torch_version}/opset{_OPSET}/".encode())
    digest.update(f"image:float32[B,3,{multiple}*h,{multiple}*w]<={_MAX_SIZE}\n".encode())
    digest.update("\n".join(_settings(model)).encode())
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"\n{name}:{value.dtype}:{tuple(value.shape)}:".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _export(model: nn.Module, path: Path, size: int, multiple: int, outputs: int) -> None:
    """Export ``model``'s flattened outputs to ``path``, one file (atomically: a file in the cache is always whole)."""
    import onnx

    from ..files import atomic_write_bytes
    from .export import export_graph

    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f"out{i}" for i in range(outputs)]
    with tempfile.TemporaryDirectory(prefix="inharmony-onnx-") as tmp:
        staged = Path(tmp) / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter; failures still raise
            export_graph(_FlatOutputs(model).eval(), staged, size, names, multiple, _OPSET, _MAX_SIZE)
        # The exporter may put the weights in a side file; the cache keeps one self-contained file.
        graph = onnx.load(str(staged))
    atomic_write_bytes(path, graph.SerializeToString())


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # ONNX Runtime's idle workers spin after each run, taking the cores from whatever torch does next (the
    # photo's resizes, the harmonizer): in `bench inference` the contender timed right after it ran ~7 % slower.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: the CPU provider's notes on unused initialisers are noise here
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


class OnnxRuntimeModule(nn.Module):
    """A network run by ONNX Runtime (CPU, float32), called like the network it was exported from.

    ``forward(x)`` takes a float ``(B, 3, H, W)`` CPU batch (``H`` and ``W`` multiples of the model's
    ``size_multiple``) and returns the network's outputs (same dict keys, lists and shapes) as float32
    tensors. Made by :func:`onnxruntime_module`; :attr:`path` is the cached graph, :attr:`threads` ONNX
    Runtime's intra-op threads.
    """

    def __init__(self, session: Any, spec: Spec, path: Path, threads: int) -> None:
        super().__init__()
        self.session = session
        self.spec = spec
        self.path = path
        self.threads = threads
        self._outputs = [o.name for o in session.get_outputs()]

    def extra_repr(self) -> str:
        return f"path={os.fspath(self.path)!r}, threads={self.threads}"

    def forward(self, x: torch.Tensor) -> Any:
        if x.device.type != "cpu":
            raise ValueError(f"the ONNX Runtime backend runs on CPU; got a tensor on {x.device}")
        array = np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)
        results = self.session.run(self._outputs, {"image": array})
        return _unflatten([torch.from_numpy(r) for r in results], self.spec)[0]


def _max_difference(got: Any, expected: Any) -> float:
    """The worst ``|got − expected| − rtol·|expected|`` over all outputs (≤ ATOL: within tolerance)."""
    worst = 0.0
    for g, e in zip(_flatten(got)[0], _flatten(expected)[0], strict=True):
        if g.shape != e.shape:
            return float("inf")
        excess = (g.float() - e.float()).abs() - 1e-3 * e.float().abs()
        worst = max(worst, float(excess.max()) if excess.numel() else 0.0)
    return worst


class _Selected(nn.Module):
    """``model`` returning only the dict keys ``keys`` (other outputs as they are): the exported graph then holds
    only what they need."""

    def __init__(self, model: nn.Module, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.keys = keys  # a plain setting: part of the cache key

    def forward(self, x: torch.Tensor) -> Any:
        # optimized._select_outputs does this too; importing it here would make an import cycle (optimize
        # imports this module), which tests/test_architecture.py forbids.
        out = self.model(x)
        if not isinstance(out, dict):
            return out
        missing = [key for key in self.keys if key not in out]
        if missing:
            raise KeyError(f"outputs={self.keys!r}: the network returns no {', '.join(map(repr, missing))}")
        return {key: out[key] for key in self.keys}


def onnxruntime_module(
    model: nn.Module, threads: int | None = None, check_side: int | None = None, outputs: tuple[str, ...] | None = None
) -> OnnxRuntimeModule:
    """``model`` (eval mode, float32, on CPU) as an :class:`OnnxRuntimeModule`, from the cache or exported now.

    The graph file is ``cache_dir() / f"{cache_key(model, multiple)}.onnx"``; a missing one is exported
    (atomically). The session is then checked against eager PyTorch on one random ``check_side²`` image
    (default: 32 px rounded up to the size multiple): outputs within :data:`ATOL` (+ 1e-3 relative). A cached
    file that fails the check is exported again once; a fresh export that fails raises.

    Args:
        model: The network (not changed; it is not kept either).
        threads: ONNX Runtime intra-op threads (default: ``torch.get_num_threads()``).
        check_side: Side of the check image.
        outputs: Dict keys to export (default: every output); the graph computes only what they need.

    Raises:
        ImportError: onnxruntime, onnx or onnxscript is missing.
        RuntimeError: the export failed, or the graph's outputs differ from eager PyTorch.

    Example:
        >>> import inharmony
        >>> fast = onnxruntime_module(inharmony.create_model("dirl_tiny").eval())  # doctest: +SKIP
        >>> fast.path.parent == cache_dir()  # doctest: +SKIP
        True
    """
    if not onnxruntime_available():
        raise ImportError(
            "backend='onnxruntime' needs onnxruntime, onnx and onnxscript: pip install 'inharmony[export]' "
            "(or use backend='torch')"
        )
    cfg = getattr(model, "pretrained_cfg", None)
    if outputs is not None:
        model = _Selected(model, tuple(outputs))
    multiple = int(getattr(cfg, "size_multiple", 1) or 1)
    side = check_side or max(32, 2 * multiple)
    side += -side % multiple
    example = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(example)
    _, spec = _flatten(expected)
    outputs = len(_flatten(expected)[0])
    threads = threads or torch.get_num_threads()
    path = cache_dir() / f"{cache_key(model, multiple)}.onnx"
    for attempt in range(2):
        fresh = not path.is_file()
        if fresh:
            try:
                _export(model, path, side, multiple, outputs)
            except Exception as err:
                raise RuntimeError(
                    f"exporting {type(model).__name__} to ONNX failed ({type(err).__name__}: {err}); "
                    "use backend='torch'"
                ) from err
        try:
            module = OnnxRuntimeModule(_session(path, threads), spec, path, threads)
            excess = _max_difference(module(example), expected)
        except Exception as err:  # a truncated or foreign file in the cache
            excess, error = float("inf"), err
        else:
            error = None
        if excess <= ATOL:
            if cfg is not None:
                module.pretrained_cfg = cfg
            return module
        if fresh or attempt:
            path.unlink(missing_ok=True)
            cause = f"{type(error).__name__}: {error}" if error else f"outputs differ by {excess:.2e} > {ATOL:g}"
            raise RuntimeError(
                f"ONNX Runtime does not reproduce {type(model).__name__} ({cause}); use backend='torch'"
            ) from error
        path.unlink(missing_ok=True)  # a stale cache entry: export again
    raise AssertionError("unreachable")
