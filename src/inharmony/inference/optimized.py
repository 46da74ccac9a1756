"""An inference-only copy of a network that runs faster: :func:`optimize` and :class:`OptimizedModel`.

Two backends. ``"torch"``: BatchNorm folded into the convolutions before it (pairs found by structure,
confirmed on a run, checked on randomised statistics), channels_last, bf16/fp16 autocast with the mask
logits kept in float32, optionally ``torch.compile``. ``"onnxruntime"``: the network exported to ONNX once,
cached by its weights, run by ONNX Runtime in fp32 (:mod:`~inharmony.inference.onnx_backend`). Either way
big batches run in micro-batches and the call contract is the network's.

Example:
    >>> import inharmony
    >>> fast = optimize(inharmony.create_model("dirl_resnet18").eval())
    >>> fast.precision, type(fast).__name__
    ('fp32', 'OptimizedModel')
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import warnings
from typing import Any

import torch
from torch import nn

from .precision import BACKENDS, PRECISIONS, auto_backend, auto_micro_batch, auto_precision

__all__ = ["OptimizedModel", "optimize"]

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_BN_NAMES = ("bn", "norm")  # attribute pairs folded: conv/bn, conv1/bn1, stem_conv/stem_bn, conv/norm ...


def _conv_bn_candidates(model: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """``(parent, conv name, BatchNorm name)`` pairs that look like "BatchNorm applied to this conv's output".

    Two shapes: adjacent ``Conv2d, BatchNorm2d`` children of an ``nn.Sequential`` (RSRNet's ConvBNReLU), and
    sibling attributes whose names differ only by ``conv`` → ``bn``/``norm`` (DIRL's blocks, timm ResNet
    blocks, the encoder's stem). A name match is only a guess; :func:`_traced_pairs` checks each pair on a run.
    """
    pairs = []
    for parent in model.modules():
        children = dict(parent.named_children())
        if isinstance(parent, nn.Sequential):
            names = list(children)
            for first, second in itertools.pairwise(names):
                if type(children[first]) is nn.Conv2d and type(children[second]) is nn.BatchNorm2d:
                    pairs.append((parent, first, second))
            continue
        for name, child in children.items():
            if type(child) is not nn.Conv2d or "conv" not in name:
                continue
            for bn_name in (name.replace("conv", norm) for norm in _BN_NAMES):
                if type(children.get(bn_name)) is nn.BatchNorm2d:
                    pairs.append((parent, name, bn_name))
                    break
    return pairs


def _flat_tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for key in sorted(out) for t in _flat_tensors(out[key])]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _flat_tensors(item)]
    return []


def _run_once_with_hooks(model: nn.Module, example: torch.Tensor, handles: list[Any]) -> None:
    """Run ``model`` on ``example`` once (no autograd) for its hooks to record, then remove the hooks."""
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for handle in handles:
            handle.remove()


def _traced_pairs(model: nn.Module, pairs: list[tuple[nn.Module, str, str]], example: torch.Tensor) -> list[int]:
    """Indices of the ``pairs`` whose BatchNorm, on a run of ``example``, took exactly its conv's output.

    Each conv and BatchNorm must run once, the BatchNorm's input must be the very tensor the conv returned
    (not e.g. ``conv(x) - θ·conv1x1(x)``, as in iHDRNet's central-difference convolution), and the conv's
    weight must not be read outside its own call (tested by the whole-model check in :func:`_fold_batchnorm`).
    """
    calls: dict[int, int] = {}
    outputs: dict[int, int] = {}
    inputs: dict[int, int] = {}
    handles = []

    def conv_hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1
        outputs[id(module)] = id(out)

    def bn_hook(module: nn.Module, args: Any) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1
        inputs[id(module)] = id(args[0])

    kept_alive: list[torch.Tensor] = []  # ids stay unique only while the tensors live

    def keep(module: nn.Module, args: Any, out: torch.Tensor) -> None:
        kept_alive.append(out)

    for parent, conv_name, bn_name in pairs:
        conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
        handles += [conv.register_forward_hook(conv_hook), conv.register_forward_hook(keep)]
        handles.append(bn.register_forward_pre_hook(bn_hook))
    _run_once_with_hooks(model, example, handles)
    good = []
    for index, (parent, conv_name, bn_name) in enumerate(pairs):
        conv, bn = id(getattr(parent, conv_name)), id(getattr(parent, bn_name))
        if calls.get(conv) == 1 and calls.get(bn) == 1 and outputs.get(conv) == inputs.get(bn):
            good.append(index)
    return good


def _fold(model: nn.Module, pairs: list[tuple[nn.Module, str, str]]) -> None:
    # torch's own folding (fuse_conv_bn_eval); the graph matching is ours because torch.fx cannot trace
    # these models (input checks and dict outputs), and torch.export would change the call contract.
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for parent, conv_name, bn_name in pairs:
        fused = fuse_conv_bn_eval(getattr(parent, conv_name), getattr(parent, bn_name))
        setattr(parent, conv_name, fused)
        setattr(parent, bn_name, nn.Identity())


def _fold_batchnorm(model: nn.Module, example: torch.Tensor) -> int:
    """Fold every safe conv → BatchNorm pair of ``model`` (eval mode, changed in place); the number folded.

    The pairs are checked on a copy whose BatchNorm statistics are randomised (so that folding changes the
    numbers): if the folded copy's outputs differ from its eager outputs, nothing is folded and a warning
    says so (a conv whose output or weight is also used elsewhere would show up there).
    """
    candidates = _conv_bn_candidates(model)
    chosen = [candidates[i] for i in _traced_pairs(model, candidates, example)]
    if not chosen:
        return 0
    probe = _copy_module(model)
    generator = torch.Generator().manual_seed(0)
    for module in probe.modules():
        if isinstance(module, nn.BatchNorm2d) and module.running_var is not None:
            # Perturbed around the module's own statistics, not replaced: fresh BatchNorms (identity statistics)
            # get random ones, and trained networks stay in range (random statistics on trained weights
            # overflowed a trained DIRL to inf/NaN, which failed the check for no fault of the folding).
            size = module.running_var.shape
            with torch.no_grad():
                spread = module.running_var.float().clamp_min(1e-6).sqrt()
                module.running_mean.add_(torch.randn(size, generator=generator) * 0.5 * spread)
                module.running_var.mul_(torch.rand(size, generator=generator) + 0.5)
                if module.affine:
                    module.weight.mul_(torch.rand(size, generator=generator) + 0.5)
                    module.bias.add_(torch.randn(size, generator=generator) * 0.5 * module.weight.abs())
    with torch.inference_mode():
        expected = _flat_tensors(probe(example))
    names = {id(module): name for name, module in model.named_modules()}
    probe_modules = dict(probe.named_modules())
    _fold(probe, [(probe_modules[names[id(parent)]], c, b) for parent, c, b in chosen])
    with torch.inference_mode():
        got = _flat_tensors(probe(example))
    same = len(got) == len(expected) and all(
        torch.allclose(g.float(), e.float(), rtol=1e-3, atol=1e-4, equal_nan=True)
        for g, e in zip(got, expected, strict=True)
    )
    if not same:
        warnings.warn(
            f"{type(model).__name__}: folding BatchNorm into the convolutions changed the outputs on a check run; "
            "left unfolded (the optimized model is still exact)",
            stacklevel=3,
        )
        return 0
    _fold(model, chosen)
    return len(chosen)


class _FullPrecisionConv2d(nn.Conv2d):
    """A Conv2d that runs in float32 under autocast (the class of the last convolution of a bf16/fp16 network)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float())


def _logits_in_full_precision(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Run the mask-logit convolutions in float32 under autocast; their names.

    Those are the convolutions with one output channel (mask, attention and gate logits: a small share of
    the work) and the convolution that runs last. bf16 keeps 8 significant bits: a mask computed in bf16
    takes only ~256 distinct values between 0.5 and 1, and the ties cost average precision (a ranking
    metric), while logits in fp32 cost nothing measurable.
    """
    order: list[str] = []
    names = {id(module): name for name, module in model.named_modules()}
    handles = [
        module.register_forward_hook(lambda m, args, out: order.append(names[id(m)]))
        for module in model.modules()
        if type(module) is nn.Conv2d
    ]
    _run_once_with_hooks(model, example, handles)
    chosen = [name for name in dict.fromkeys(order) if model.get_submodule(name).out_channels == 1]
    if order and order[-1] not in chosen:
        chosen.append(order[-1])
    for name in chosen:
        model.get_submodule(name).__class__ = _FullPrecisionConv2d
    return chosen


def _copy_module(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def _example_input(model: nn.Module, device: torch.device) -> torch.Tensor:
    cfg = getattr(model, "pretrained_cfg", None)
    multiple = int(getattr(cfg, "size_multiple", 1) or 1)
    side = max(32, multiple * 2)  # small: the check runs the network three times
    side += -side % multiple
    return torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)


def _to_float32(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float().contiguous() if out.is_floating_point() else out
    if isinstance(out, dict):
        return type(out)((key, _to_float32(value)) for key, value in out.items())
    if isinstance(out, (list, tuple)):
        return type(out)(_to_float32(item) for item in out)
    return out


def _concat_outputs(parts: list[Any], sizes: list[int]) -> Any:
    """The outputs of consecutive chunks of a batch joined along the batch dimension, structure kept."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        if any(part.dim() == 0 or part.shape[0] != size for part, size in zip(parts, sizes, strict=True)):
            raise RuntimeError(
                "micro-batching needs every output to have the batch as its first dimension; "
                "use optimize(..., micro_batch=None) for this model"
            )
        return torch.cat(parts)
    if isinstance(first, dict):
        return type(first)((key, _concat_outputs([part[key] for part in parts], sizes)) for key in first)
    if isinstance(first, (list, tuple)):
        return type(first)(_concat_outputs([part[i] for part in parts], sizes) for i in range(len(first)))
    return first


def _select_outputs(out: Any, keys: tuple[str, ...] | None) -> Any:
    """The ``keys`` of a dict output (all of it when None or not a dict)."""
    if keys is None or not isinstance(out, dict):
        return out
    missing = [key for key in keys if key not in out]
    if missing:
        raise KeyError(f"outputs={keys!r}: the network returns no {', '.join(map(repr, missing))} (it has {list(out)})")
    return type(out)((key, out[key]) for key in keys)


def _check_micro_batch(micro_batch: int | str | None) -> int | str | None:
    if micro_batch is None or micro_batch == "auto":
        return micro_batch
    if isinstance(micro_batch, bool) or not isinstance(micro_batch, int) or micro_batch < 1:
        raise ValueError(f"micro_batch must be a positive int, 'auto' or None, got {micro_batch!r}")
    return micro_batch


class _OutputsOf(nn.Module):
    """``network.forward_outputs(x, keys)`` as a module's forward (what ``torch.compile`` compiles)."""

    def __init__(self, network: nn.Module, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.network = network
        self.keys = tuple(keys)

    def forward(self, x: torch.Tensor) -> Any:
        return self.network.forward_outputs(x, self.keys)


class OptimizedModel(nn.Module):
    """The module :func:`optimize` returns: the folded network (:attr:`model`) run the fast way.

    Called like the original (a float ``(B, 3, H, W)`` batch in, the same outputs out, as contiguous
    float32 tensors), always under ``torch.inference_mode`` (its outputs cannot be back-propagated).
    A batch bigger than :attr:`micro_batch` runs as consecutive chunks whose outputs are concatenated:
    every image gets exactly what a pass of its chunk alone gives (eval-mode networks treat the images of
    a batch independently), and on CPU a big batch stops costing more per image than a small one.
    :attr:`backend` says what runs the network: ``"torch"`` (:attr:`model` is the folded network) or
    ``"onnxruntime"`` (:attr:`model` is an :class:`~inharmony.inference.onnx_backend.OnnxRuntimeModule`).
    """

    def __init__(
        self,
        model: nn.Module,
        precision: str,
        channels_last: bool,
        compiled: nn.Module | None = None,
        micro_batch: int | str | None = None,
        backend: str = "torch",
        outputs: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.outputs = tuple(outputs) if outputs is not None else None
        self.precision = precision
        self.backend = backend
        self.channels_last = channels_last and backend == "torch"
        self.micro_batch = _check_micro_batch(micro_batch)
        self._compiled = [compiled] if compiled is not None else []  # a list: not a second registered child
        self._compile_checked = False
        if getattr(model, "pretrained_cfg", None) is not None:
            self.pretrained_cfg = model.pretrained_cfg

    def extra_repr(self) -> str:
        return (
            f"backend={self.backend!r}, precision={self.precision!r}, channels_last={self.channels_last}, "
            f"compiled={bool(self._compiled)}, micro_batch={self.micro_batch!r}"
        )

    def chunk_size(self, x: torch.Tensor) -> int:
        """Images per pass for the batch ``x``: :attr:`micro_batch` (``"auto"``: :func:`auto_micro_batch`)."""
        size = self.micro_batch
        if size == "auto":
            size = auto_micro_batch(x.device, x.shape[-2], x.shape[-1], self.backend) if x.dim() == 4 else None
        return x.shape[0] if size is None or x.dim() == 0 else max(1, min(int(size), x.shape[0]))

    def train(self, mode: bool = True) -> OptimizedModel:
        if mode:
            raise RuntimeError("an optimized model is for inference only (BatchNorm is folded); train the original")
        return super().train(False)

    def forward(self, x: torch.Tensor) -> Any:
        with torch.inference_mode():
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            dtype = _AUTOCAST_DTYPES.get(self.precision)
            autocast = (
                torch.autocast(device_type=x.device.type, dtype=dtype)
                if dtype is not None
                else contextlib.nullcontext()
            )
            chunk = self.chunk_size(x)
            with autocast:
                if chunk >= x.shape[0]:
                    out = self._run(x)
                else:
                    pieces = x.split(chunk)
                    out = _concat_outputs([self._run(piece) for piece in pieces], [len(p) for p in pieces])
            return _to_float32(_select_outputs(out, self.outputs))

    def _run(self, x: torch.Tensor) -> Any:
        if not self._compiled:
            if self.outputs is not None and hasattr(self.model, "forward_outputs"):
                return self.model.forward_outputs(x, self.outputs)
            return self.model(x)
        if self._compile_checked:
            return self._compiled[0](x)
        try:
            out = self._compiled[0](x)
        except Exception as err:  # the first call is where torch.compile really compiles
            raise RuntimeError(
                f"torch.compile failed on this model ({type(err).__name__}: {err}); use compile=False "
                "(the optimized eager path)"
            ) from err
        self._compile_checked = True
        return out


def optimize(
    model: nn.Module,
    precision: str = "fp32",
    channels_last: bool = True,
    compile: bool = False,
    device: str | torch.device | None = None,
    micro_batch: int | str | None = "auto",
    fp32_logits: bool = True,
    backend: str = "auto",
    outputs: tuple[str, ...] | None = None,
) -> OptimizedModel:
    """An inference-only copy of ``model`` that runs faster, with the same call contract.

    The caller's model is not changed (a deep copy is optimized). Steps with the ``"torch"`` backend: eval
    mode; every BatchNorm that directly follows a convolution is folded into it
    (``torch.nn.utils.fusion.fuse_conv_bn_eval``; pairs are found by module structure, confirmed on a run,
    and the folding is checked on randomised statistics); weights and inputs in ``channels_last``;
    ``precision`` ``"bf16"``/``"fp16"`` run under ``torch.autocast``. With ``"onnxruntime"``: the network
    exported to ONNX once (cached by a hash of its weights, see
    :func:`~inharmony.inference.onnx_backend.onnxruntime_module`) and run by ONNX Runtime in fp32 with
    ``torch.get_num_threads()`` threads. Both: a big batch runs in chunks (``micro_batch``); every call runs
    under ``torch.inference_mode`` and returns float32 outputs.

    Args:
        model: A network taking a float ``(B, 3, H, W)`` batch (e.g. from :func:`inharmony.create_model`).
        precision: ``"fp32"`` (default; within 1e-5 of eager with torch, 1e-4 with ONNX Runtime), ``"bf16"``
            (CPUs with AVX512-BF16/AMX and recent GPUs run it ~2× faster; the mask moves by up to a few
            hundredths), ``"fp16"`` (CUDA only), or ``"auto"``: the fastest for the running device, backend
            included (with ``backend="auto"``: :func:`~inharmony.inference.auto_backend`, then
            :func:`auto_precision`): ONNX Runtime fp32 on fp32-only CPUs when it is installed, torch bf16
            on CPUs with AVX512-BF16/AMX and on GPUs with bf16, else torch fp32.
        channels_last: Use the channels_last memory format (faster convolutions with oneDNN and cuDNN).
        compile: Also ``torch.compile`` the network (inductor, with freezing). The first call of each input
            shape compiles (tens of seconds on CPU); a failure raises a ``RuntimeError`` naming the cause.
        device: Where the copy runs; default: where ``model``'s parameters are.
        micro_batch: Images per forward pass: a bigger batch runs as consecutive chunks of this size,
            outputs concatenated (each image's output is what its chunk alone gives). ``"auto"`` (default):
            :func:`auto_micro_batch` (on CPU up to two 224² images per pass: bigger passes cost more per image;
            on GPUs one pass); ``None``: always one pass. With ``compile``, chunks also bound the
            number of shapes compiled.
        fp32_logits: With bf16/fp16, run the convolutions that give logits (one output channel, and the
            last one) in float32, so the mask and what follows them are float32: a bf16 mask holds so few
            distinct values that ties cost average precision. Their share of the work is small.
        backend: ``"torch"``, ``"onnxruntime"`` (CPU, fp32; needs the ``export`` extra) or ``"auto"``
            (default): with ``precision="auto"``, :func:`~inharmony.inference.auto_backend` (if ONNX Runtime
            cannot export this network, a warning and torch); with a precision named, ``"torch"``.
        outputs: For a network that returns a dict, the keys the caller needs (e.g. ``("mask",)``); the
            result holds only those (other outputs are returned as they are). Work that only other outputs
            need is skipped: ONNX Runtime exports (and runs) only what the keys depend on, and torch calls
            the network's ``forward_outputs(x, keys)`` where it has one (DIRL and MadisNet skip their
            finest level's fusion and attention, which only the attention maps read: 10 % of DIRL's FLOPs
            at 224², 12 % of its bf16 time). Default: every output.

    Raises:
        ImportError: ``backend="onnxruntime"`` without onnxruntime (and onnx, onnxscript to export).
        ValueError: an unknown precision or backend, fp16 off CUDA, ONNX Runtime with another precision than
            fp32, off CPU or with ``compile``.

    Example:
        >>> import inharmony
        >>> fast = optimize(inharmony.create_model("dirl_resnet18").eval())
        >>> fast(torch.zeros(1, 3, 64, 64))["mask"].shape
        torch.Size([1, 1, 64, 64])
    """
    if precision not in (*PRECISIONS, "auto"):
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} or auto, got {precision!r}")
    if backend not in (*BACKENDS, "auto"):
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)} or auto, got {backend!r}")
    micro_batch = _check_micro_batch(micro_batch)
    if not isinstance(model, nn.Module):
        raise TypeError(f"optimize needs a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, OptimizedModel):
        model = model.model
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    chosen = backend == "auto" and precision == "auto"
    if backend == "auto":
        backend = auto_backend(device) if precision == "auto" else "torch"
    if precision == "auto":
        precision = "fp32" if backend == "onnxruntime" else auto_precision(device)
    if backend == "onnxruntime":
        fast = _onnxruntime(model, precision, device, compile, micro_batch, fallback=chosen, outputs=outputs)
        if fast is not None:
            return fast
        precision = auto_precision(device)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision='fp16' needs a CUDA device (got {device}): CPUs run fp16 convolutions slowly or not at "
            "all; use precision='bf16' on CPU"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16 support; use precision='fp16'")
    network = _copy_module(model).to(device).eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    example = _example_input(network, device)
    _fold_batchnorm(network, example)
    if precision in _AUTOCAST_DTYPES and fp32_logits:
        _logits_in_full_precision(network, example)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    compiled = None
    if compile:
        target = _OutputsOf(network, outputs) if outputs and hasattr(network, "forward_outputs") else network
        try:
            compiled = torch.compile(target, options={"freezing": True})
        except Exception as err:
            raise RuntimeError(
                f"torch.compile is not available here ({type(err).__name__}: {err}); use compile=False"
            ) from err
    return OptimizedModel(network, precision, channels_last, compiled, micro_batch, outputs=outputs).eval()


def _onnxruntime(
    model: nn.Module,
    precision: str,
    device: torch.device,
    compile: bool,
    micro_batch: int | str | None,
    fallback: bool,
    outputs: tuple[str, ...] | None = None,
) -> OptimizedModel | None:
    """``model`` run by ONNX Runtime; None (after a warning) when ``fallback`` and it cannot be exported."""
    if precision != "fp32":
        raise ValueError(f"backend='onnxruntime' runs fp32 only, got precision={precision!r}; use backend='torch'")
    if device.type != "cpu":
        raise ValueError(f"backend='onnxruntime' runs on CPU, got device {device}; use backend='torch'")
    if compile:
        raise ValueError("compile=True is for backend='torch'")
    from .onnx_backend import onnxruntime_module

    network = _copy_module(model).to("cpu").float().eval()
    try:
        session = onnxruntime_module(network, outputs=outputs)
    except RuntimeError as err:
        if not fallback:
            raise
        warnings.warn(f"{err}; precision='auto' falls back to the torch backend", stacklevel=3)
        return None
    return OptimizedModel(session, precision, False, None, micro_batch, backend="onnxruntime", outputs=outputs).eval()
