"""``inharmony bench train``: one training step (forward, the model's loss, backward, Adam) per way of running it.

For each model, the contenders run the same step from the same initial weights, timed interleaved in
one process (:func:`~inharmony.benchmarks._report.time_interleaved`), side by side with their ratio
to eager fp32:

* ``eager fp32``: the plain step (the baseline): float32, ``torch.optim.Adam`` as torch picks it (on a
  CPU its per-parameter loop);
* ``authors' step`` (DIRL models only): the DIRL authors' training step as their script runs it
  (:mod:`inharmony.benchmarks.authors_dirl`: their loss as written, Adam's loop, the batch's F1);
* ``fused Adam``: ``torch.optim.Adam(fused=True)`` (one kernel for all parameters; ``optimizer.init_args.fused:
  true`` in a config);
* ``bf16-mixed``: the network under ``torch.autocast(bfloat16)`` (what ``trainer.precision: bf16-mixed``
  does; the losses stay float32);
* ``channels_last`` and ``channels_last+bf16``: weights and inputs in the channels_last memory format
  (``model.channels_last: true``);
* ``channels_last+bf16+fused Adam``: the three together (the fastest CPU step measured here);
* ``checkpointing``: activation checkpointing of the full-resolution stage (``model.grad_checkpointing:
  true``), fp32;
* ``compile`` (with ``--compile``): ``torch.compile`` of the network (``model.compile: true``); its
  compilation time is reported beside it.

Beside each time: images per second and memory. On a GPU, ``peak MiB`` is
``torch.cuda.max_memory_allocated`` over one step. On a CPU, ``saved MiB`` is the size of the tensors
autograd saved for backward in one step (the activations: what checkpointing and bf16 shrink; the
process's resident size is not a usable measure, it only grows), counted once per storage.

Example:
    inharmony bench train --model dirl --model rsrnet --size 224 --batch-size 8 --repeats 3
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from ._options import PositiveInt
from ._report import BenchReport, environment, time_interleaved

NAME = "train"
HELP = (
    "Time one training step per model: eager fp32 vs the DIRL authors' step, fused Adam, bf16-mixed, "
    "channels_last, checkpointing, compile."
)
AUTHORS = "authors' step"
CONTENDERS = (
    "eager fp32", AUTHORS, "fused Adam", "bf16-mixed", "channels_last", "channels_last+bf16",
    "channels_last+bf16+fused Adam", "checkpointing", "compile",
)  # fmt: skip
SMOKE_ARGS: list[str] = [
    "--model", "dirl_resnet18", "--size", "32", "--batch-size", "2", "--repeats", "1",
    "--contender", "bf16-mixed", "--contender", "checkpointing", "--contender", "authors' step",
    "--contender", "channels_last+bf16+fused Adam",
]  # fmt: skip


_AUTHORS_MODELS = ("dirl", "dirl_resnet18")  # the authors' step needs DIRL's outputs (mask and attention maps)


def _options(name: str) -> dict[str, bool]:
    return {
        "bf16": "bf16" in name,
        "channels_last": "channels_last" in name,
        "checkpointing": name == "checkpointing",
        "compile": name == "compile",
        "fused": "fused" in name,
    }


def build_step(
    name: str, contender: str, size: int, batch_size: int, device: str = "cpu", seed: int = 0
) -> tuple[Callable[[], Any], dict[str, Any]]:
    """A zero-argument training step of model ``name`` run the ``contender`` way, and facts about it.

    Every contender of a model starts from the same weights (``seed``) and the same batch, so their
    first steps compute the same thing up to rounding.

    Example:
        >>> step, info = build_step("dirl_resnet18", "bf16-mixed", 32, 2)  # doctest: +SKIP
        >>> float(step()) > 0  # doctest: +SKIP
        True
    """
    import torch

    from ..losses import loss_for_model
    from ..models import create_model

    opts = _options(contender)
    torch.manual_seed(seed)
    model = create_model(name).train().to(device)
    if opts["checkpointing"]:
        for part in model.modules():
            if callable(getattr(part, "set_grad_checkpointing", None)):
                part.set_grad_checkpointing(True)
    fmt = torch.channels_last if opts["channels_last"] else torch.contiguous_format
    model = model.to(memory_format=fmt)
    loss_fn = loss_for_model(name, **({"vgg_weights": False} if name.startswith("madisnet") else {})).to(device)
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(batch_size, 3, size, size, generator=g).to(device).contiguous(memory_format=fmt)
    target = torch.zeros(batch_size, 1, size, size, device=device)
    target[..., size // 4 : size // 2, size // 4 : 3 * size // 4] = 1
    if contender == AUTHORS:
        from .authors_dirl import authors_training_step

        return authors_training_step(model, image, target), {"model": model}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, **({"fused": True} if opts["fused"] else {}))
    network = torch.compile(model) if opts["compile"] else model
    device_type = torch.device(device).type

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=opts["bf16"]):
            outputs = network(image)
        loss = loss_fn(outputs, target)["loss"]
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step, {"model": model}


def saved_activation_bytes(step: Callable[[], Any], model: Any = None) -> int:
    """Bytes of the tensors autograd saves for backward during one call of ``step``.

    Each storage is counted once; ``model``'s own parameters (saved by every convolution, but not
    activations) are left out.
    """
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()} if model is not None else set()
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values())


def _peak_cuda_bytes(step: Callable[[], Any], device: str) -> int:
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


def run(
    model: list[str] | None = None,
    size: PositiveInt = 224,
    batch_size: PositiveInt = 8,
    repeats: PositiveInt = 3,
    device: str = "cpu",
    threads: PositiveInt | None = None,
    contender: list[str] | None = None,
    compile: bool = False,
    json: str | None = None,
) -> int:
    """Time one training step per model, each way of running it side by side (ratios to eager fp32).

    Args:
        model: Model names (repeat ``--model``); default: dirl and rsrnet.
        size: Square input size.
        batch_size: Images per step.
        repeats: Timed rounds (after one untimed warm-up round); each round runs every contender once.
        device: ``cpu``, ``cuda``, ...
        threads: ``torch.set_num_threads`` (default: torch's).
        contender: Ways to run (repeat ``--contender``): ``eager fp32``, ``bf16-mixed``, ``channels_last``,
            ``channels_last+bf16``, ``channels_last+bf16+fused Adam``, ``checkpointing``, ``compile``, and for DIRL
            models ``authors' step``; default: all but compile.
        compile: Add the ``compile`` contender (inductor; compiling takes tens of seconds per model on CPU).
        json: Also write the report as JSON to this path.

    Example:
        inharmony bench train --model dirl --model rsrnet --size 224 --batch-size 8 --repeats 3
    """
    import time

    import torch

    if threads:
        torch.set_num_threads(threads)
    names = model or ["dirl", "rsrnet"]
    chosen = list(contender or [c for c in CONTENDERS if c != "compile"])
    if compile and "compile" not in chosen:
        chosen.append("compile")
    unknown = [c for c in chosen if c not in CONTENDERS]
    if unknown:
        raise ValueError(f"unknown contender(s) {unknown}; choose from {', '.join(CONTENDERS)}")
    if "eager fp32" not in chosen:
        chosen.insert(0, "eager fp32")
    chosen.sort(key=CONTENDERS.index)
    cuda = device.startswith("cuda")
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else None
    report = BenchReport(NAME, environment(device))
    for name in names:
        steps: dict[str, Callable[[], Any]] = {}
        memory: dict[str, int] = {}
        compile_s: dict[str, float] = {}
        ways = [w for w in chosen if w != AUTHORS or name.split(".")[0] in _AUTHORS_MODELS]
        for way in ways:
            step, info = build_step(name, way, size, batch_size, device)
            start = time.perf_counter()
            step()  # the first step: allocation, kernel caches, compilation
            if way == "compile":
                compile_s[way] = time.perf_counter() - start
            memory[way] = _peak_cuda_bytes(step, device) if cuda else saved_activation_bytes(step, info["model"])
            steps[way] = step
        times = time_interleaved(steps, repeats, warmup=1, sync=sync)
        section = report.section(
            f"{name} training step, batch {batch_size}x3x{size}x{size}, {device}",
            unit="ms",
            baseline="eager fp32",
            per="/step",
        )
        mem_key = "peak MiB" if cuda else "saved MiB"
        for way in ways:
            median = statistics.median(times[way])
            extra: dict[str, Any] = {"img/s": batch_size / median, mem_key: memory[way] / 2**20}
            if way in compile_s:
                extra["compile s"] = compile_s[way]
            section.add(way, times[way], **extra)
        if not cuda:
            section.notes.append(
                "saved MiB: tensors autograd keeps for backward in one step, weights excluded (bf16 rows include "
                "the bf16 copies of the weights autocast makes: at small sizes those dominate)"
            )
        if AUTHORS in ways:
            section.notes.append(
                "authors' step: the DIRL authors' dirl_train.py step restated on this network (fp32, their loss as "
                "written with a per-image IoU loop, Adam's per-parameter loop, the batch F1 of their progress line)"
            )
        report.results[name] = {
            way: {"images_per_s": batch_size / section.get(way).median_s, "memory_bytes": memory[way]} for way in ways
        }
        del steps
    return report.finish(json)
