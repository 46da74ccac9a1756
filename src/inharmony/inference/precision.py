"""What pays on a device: the CPU's kind (:func:`cpu_kind`), precision, backend and micro-batches.

Example:
    >>> auto_precision("cpu") in PRECISIONS, cpu_kind() in CPU_KINDS
    (True, True)
"""

from __future__ import annotations

import importlib.util
import os
import sys

import torch

__all__ = [
    "AUTO_BACKEND",
    "AUTO_BACKEND_ENV",
    "BACKENDS",
    "CPU_KINDS",
    "PRECISIONS",
    "auto_backend",
    "auto_micro_batch",
    "auto_precision",
    "bf16_is_fast",
    "cpu_kind",
    "onnxruntime_available",
]

PRECISIONS = ("fp32", "bf16", "fp16")
BACKENDS = ("torch", "onnxruntime")
CPU_KINDS = ("fp32-only", "native bf16", "AMX")
_AMX_FLAGS = ("amx_bf16", "amx_tile")
_BF16_FLAGS = ("avx512_bf16",)
AUTO_BACKEND = {"fp32-only": "onnxruntime", "native bf16": "torch", "AMX": "torch"}
"""The backend ``precision="auto"`` prefers per CPU kind (see :func:`auto_backend` for the figures)."""
AUTO_BACKEND_ENV = "INHARMONY_AUTO_BACKEND"
"""Set to ``torch`` or ``onnxruntime`` to override the backend ``precision="auto"`` picks on CPU."""
# oneDNN's ISA cap (ONEDNN_MAX_CPU_ISA, formerly DNNL_MAX_CPU_ISA) → the best kind torch's convolutions may use.
# Caps below AVX512_CORE_BF16 leave bf16 emulated: that is how an fp32-only CPU is measured on a newer one.
_ISA_CAP_KIND = (("AMX", "AMX"), ("AVX10", "native bf16"), ("BF16", "native bf16"), ("FP16", "native bf16"))
# Micro-batching on CPU: at most this many input pixels per forward pass. A big pass spills the last-level
# cache (the full-resolution layer1 is 64 channels at input size, 12.8 MB per 224² map in fp32). Measured
# with `inharmony bench batch --models dirl --models rsrnet --batches 1,2,4,8 --repeats 2` (2-core AVX512-BF16
# CPU, 32 MiB L3, 2026-11-24, idle, load 1.8-2.0), per-image speed vs batch 1 (> 1: cheaper per image):
#   one pass of        2            4            8
#   DIRL fp32 / bf16   0.98 / 1.04  0.94 / 1.03  0.87 / 0.93
#   RSRNet fp32 / bf16 1.07 / 1.21  1.03 / 1.29  1.04 / 1.23
# Passes of 2 are the only size at or within 2 % of batch 1 for all four, so passes of at most two 224² images.
_CPU_CHUNK_PIXELS = 2 * 224 * 224


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _isa_cap() -> str | None:
    """The kind oneDNN's ISA cap allows (None: no cap set)."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if cap in ("", "ALL", "DEFAULT"):
        return None
    return next((kind for key, kind in _ISA_CAP_KIND if key in cap), "fp32-only")


def cpu_kind() -> str:
    """The running CPU's kind for inference: ``"fp32-only"``, ``"native bf16"`` or ``"AMX"``.

    Read at run time on the machine that runs the model (never stored with a model or a default):
    ``"AMX"`` with ``amx_bf16``/``amx_tile`` (Intel Sapphire Rapids and newer), ``"native bf16"`` with
    ``avx512_bf16`` (Intel Cooper Lake, AMD Zen 4 and newer), else ``"fp32-only"`` (AVX2 CPUs: every
    consumer Intel CPU since 2021, AMD before Zen 4; Apple silicon), where bf16 is emulated and slower
    than fp32. The flags come from ``/proc/cpuinfo``; elsewhere from ``torch.backends.cpu.get_cpu_capability``
    (AMX or fp32-only: oneDNN's own bf16 probe also answers True for emulated bf16). A oneDNN ISA cap
    (``ONEDNN_MAX_CPU_ISA=AVX2``) lowers the kind to what torch's convolutions may use.

    Example:
        >>> cpu_kind() in CPU_KINDS
        True
    """
    flags = _cpu_flags()
    if flags:
        kind = (
            "AMX"
            if any(f in flags for f in _AMX_FLAGS)
            else "native bf16"
            if any(f in flags for f in _BF16_FLAGS)
            else "fp32-only"
        )
    else:
        capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "")()
        kind = "AMX" if "AMX" in str(capability).upper() else "fp32-only"
    cap = _isa_cap()
    return kind if cap is None else min(kind, cap, key=CPU_KINDS.index)


def bf16_is_fast(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` runs bf16 convolutions natively (so ``optimize(..., precision="bf16")`` pays).

    CUDA: the GPU supports bf16 (``torch.cuda.is_bf16_supported()``: Ampere and newer). CPU: :func:`cpu_kind`
    is ``"native bf16"`` or ``"AMX"``. Without them bf16 is emulated and slower than fp32.

    Example:
        >>> isinstance(bf16_is_fast("cpu"), bool)
        True
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_kind() != "fp32-only"


def onnxruntime_available() -> bool:
    """Whether ONNX Runtime and the exporter's packages (onnx, onnxscript) can be imported (not importing them).

    Example:
        >>> isinstance(onnxruntime_available(), bool)
        True
    """
    for name in ("onnxruntime", "onnx", "onnxscript"):
        if name in sys.modules:
            if sys.modules[name] is None:  # blocked (how tests hide a package)
                return False
        elif importlib.util.find_spec(name) is None:
            return False
    return True


def auto_backend(device: str | torch.device = "cpu") -> str:
    """The backend ``optimize(model, precision="auto")`` runs on ``device``: ``"onnxruntime"`` or ``"torch"``.

    Decided at run time from the running CPU's kind (:func:`cpu_kind`), never from the machine that made a
    default (:data:`AUTO_BACKEND` is the rule):

    * ``"fp32-only"`` CPUs: ``"onnxruntime"`` (fp32) when it is installed, else ``"torch"`` fp32 (BatchNorm
      folded). Issue 27's 2-core AVX2 EPYC (no avx512*, no amx), DIRL 224² batch 1, same weights, speed-up
      over the authors' eager fp32: ONNX Runtime fp32 1.47–1.51×, torch fp32 folded 1.22×; bf16 there is
      emulated (~8× slower than fp32).
    * ``"native bf16"`` (AVX512-BF16) and ``"AMX"`` CPUs: ``"torch"`` with bf16 autocast (ONNX Runtime has
      no bf16 convolutions on CPU). 2-core AVX512-BF16 EPYC (Zen 4, no AMX), DIRL 224², 2 threads,
      interleaved, same weights (``bench inference``, 2026-12-08), speed-up over the authors' eager fp32 at
      batch 1 / 8: torch bf16 (mask only) 2.43× / 4.31×, ONNX Runtime fp32 1.45× / 2.35×.
    * GPUs and other devices: ``"torch"``.

    ``INHARMONY_AUTO_BACKEND=torch`` (or ``onnxruntime``) overrides the choice on CPU: the first ONNX Runtime
    run of new weights exports them (~15-25 s, then cached), which a run over many fresh models (a test
    suite) may not want to pay.

    Example:
        >>> auto_backend("cpu") in BACKENDS
        True
    """
    device = torch.device(device)
    if device.type != "cpu":
        return "torch"
    chosen = os.environ.get(AUTO_BACKEND_ENV, "").strip().lower()
    if chosen and chosen not in BACKENDS:
        raise ValueError(f"{AUTO_BACKEND_ENV}={chosen!r}: expected one of {', '.join(BACKENDS)} (or unset)")
    if (chosen or AUTO_BACKEND[cpu_kind()]) != "onnxruntime":
        return "torch"
    return "onnxruntime" if onnxruntime_available() else "torch"


def auto_precision(device: str | torch.device = "cpu") -> str:
    """The precision ``precision="auto"`` picks on ``device``: ``"bf16"`` where it is native, else ``"fp32"``.

    ``"bf16"`` on CUDA GPUs with bf16 (Ampere and newer) and on CPUs with AVX512-BF16 or AMX (Intel Cooper
    Lake, Sapphire Rapids and newer; AMD Zen 4 and newer); ``"fp32"`` everywhere else (older CPUs, Apple
    silicon, GPUs before Ampere), where bf16 would be emulated and slower. See :func:`bf16_is_fast`.

    Example:
        >>> auto_precision("cpu") in ("fp32", "bf16")
        True
    """
    return "bf16" if bf16_is_fast(device) else "fp32"


def auto_micro_batch(device: str | torch.device, height: int, width: int, backend: str = "torch") -> int | None:
    """The chunk size ``micro_batch="auto"`` uses for inputs of ``height × width``; None means one pass.

    On CPU with torch, as many images per pass as fit in two ``224 × 224`` images' pixels (at least 1): the
    activations of the full-resolution stage of a bigger pass spill the last-level cache, and a batch then
    costs more per image than the same images in smaller passes. With ONNX Runtime, one pass: its batch of 8
    at 224² cost per image what batch 1 did (DIRL 1.00×, RSRNet 1.01×, MadisNet 0.98× of batch 1's speed),
    where passes of 2 cost DIRL 0.92× (``inharmony bench batch``, 2-core AVX512-BF16 EPYC, 2026-12-07). On
    GPUs, one pass (bigger batches fill the GPU).

    Example:
        >>> auto_micro_batch("cpu", 224, 224), auto_micro_batch("cpu", 64, 64)
        (2, 24)
        >>> auto_micro_batch("cpu", 224, 224, backend="onnxruntime") is None
        True
    """
    if torch.device(device).type != "cpu" or backend == "onnxruntime":
        return None
    return max(1, _CPU_CHUNK_PIXELS // max(1, height * width))
