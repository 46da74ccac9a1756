"""ONNX export with dynamic batch and spatial size, checked against eager PyTorch with ONNX Runtime.

The graph is captured with ``torch.export`` (``torch.onnx.export(..., dynamo=True)``, the default
exporter since PyTorch 2.9). Height and width are declared as multiples of the model's
``pretrained_cfg.size_multiple`` (16 for DIRL and RSRNet: the encoders downsample four times and the
decoders add upsampled features to skip connections, so only those sizes are valid), and saying so
lets the exporter prove the shapes line up for every size. (The legacy TorchScript exporter produced
a graph that differed from eager DIRL by ~0.4 in our checks.)

The graph takes normalised tensors: build them with :class:`inharmony.preprocessing.EvalPreprocess`
and bring the mask back to the image's size with :func:`inharmony.inference.resize_mask`, as
:class:`~inharmony.inference.Predictor` does.

Needs the ``export`` extra: ``pip install "inharmony[export]"`` (onnx, onnxscript, onnxruntime).

Example:
    >>> model = inharmony.create_model("dirl_resnet18").eval()  # doctest: +SKIP
    >>> export_onnx(model, "dirl18.onnx")  # doctest: +SKIP
    >>> check_onnx(model, "dirl18.onnx", sizes=[(224, 224), (320, 480)])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["EXPORT_MARKER", "MaskOnly", "check_onnx", "export_onnx", "is_inharmony_export", "onnx_session"]


def _size_multiple(model: nn.Module) -> int:
    """The registry's ``size_multiple`` of ``model`` (1 for a module without a registry entry)."""
    return int(getattr(getattr(model, "pretrained_cfg", None), "size_multiple", 1))


class MaskOnly(nn.Module):
    """Wraps a model so its forward returns only the mask tensor (ONNX output ``"mask"``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.model(image)
        return out["mask"] if isinstance(out, dict) else out


def _require(package: str) -> None:
    import importlib

    try:
        importlib.import_module(package)
    except ModuleNotFoundError as err:
        raise ImportError(
            f"ONNX export needs the package {package!r}: pip install 'inharmony[export]' "
            "(onnx, onnxscript, onnxruntime)"
        ) from err


EXPORT_MARKER = "inharmony_export"
"""Metadata key every graph :func:`export_onnx` writes carries; only such a file is replaced without ``overwrite``."""


def is_inharmony_export(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an ONNX file written by :func:`export_onnx` (it carries :data:`EXPORT_MARKER`).

    Reads the file's bytes (no ``onnx`` import): an ONNX model is a protobuf whose first field is its IR
    version, and our metadata key is stored as plain text in it.

    Example:
        >>> import tempfile, pathlib
        >>> other = pathlib.Path(tempfile.mkdtemp()) / "w.pth"
        >>> _ = other.write_bytes(b"PK\\x03\\x04 weights")
        >>> is_inharmony_export(other)
        False
    """
    import mmap

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data[:1] == b"\x08" and data.find(EXPORT_MARKER.encode()) >= 0


def _check_target(path: Path, overwrite: bool) -> None:
    from ..errors import OutputExistsError

    if path.is_dir():
        raise OutputExistsError(f"--out {path} is a folder; give a file name such as {path / 'model.onnx'}")
    if path.exists() and not overwrite and not is_inharmony_export(path):
        raise OutputExistsError(
            f"{path} exists and is not an ONNX file written by inharmony export; nothing was written. "
            "Choose another --out, or pass --overwrite (overwrite=True) to replace it."
        )


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    size: int = 224,
    opset: int = 18,
    max_size: int = 8192,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (eval mode, mask output only) to ``path`` as ONNX, atomically.

    The graph carries the metadata key :data:`EXPORT_MARKER`; an existing ``path`` is replaced only if it
    is such an earlier export, or with ``overwrite=True``. The file appears complete or not at all.

    Args:
        model: A registered architecture.
        path: Output ``.onnx`` file.
        size: Example input side used for tracing; any multiple of the model's
            ``pretrained_cfg.size_multiple`` (16 for DIRL and RSRNet) works at run time.
        opset: ONNX opset.
        max_size: Largest height/width the graph accepts.
        overwrite: Replace ``path`` even if it is not an earlier export.

    Returns:
        The path. Input ``"image"``: float32 ``(batch, 3, height, width)``, ImageNet-normalised,
        height and width multiples of the size multiple. Output ``"mask"``: ``(batch, 1, height, width)`` in [0, 1].

    Raises:
        OutputExistsError: ``path`` is a folder, or a file that is not an earlier export (without ``overwrite``).
    """
    import shutil
    import tempfile

    from ..files import atomic_write

    path = Path(path)
    _check_target(path, overwrite)
    _require("onnx")
    _require("onnxscript")
    import onnx

    from ..version import __version__

    multiple = _size_multiple(model)
    if size % multiple:
        raise ValueError(
            f"size must be a multiple of {multiple} (the model's pretrained_cfg.size_multiple), got {size}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="inharmony-export-") as tmp:
        staged = Path(tmp) / "model.onnx"
        export_graph(MaskOnly(model).eval(), staged, size, ["mask"], multiple, opset, max_size)
        graph = onnx.load(str(staged))
        onnx.helper.set_model_props(graph, {EXPORT_MARKER: __version__})
        onnx.save(graph, str(staged))
        with open(staged, "rb") as src, atomic_write(path) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return path


def export_graph(
    module: nn.Module,
    path: str | os.PathLike[str],
    size: int,
    output_names: Sequence[str],
    multiple: int,
    opset: int = 18,
    max_size: int = 8192,
) -> None:
    """The one ``torch.onnx.export`` call: input ``"image"``, dynamic batch, height/width multiples of ``multiple``.

    ``module`` returns one tensor or a tuple of them (named ``output_names``); traced on a batch of 2 random
    ``size × size`` images (a batch of 1 would be specialised to a constant). Writes ``path`` (not atomically).
    """
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    dim = torch.export.Dim
    batch = dim("batch", min=1, max=1024)
    rows = dim(f"rows{multiple}", min=1, max=max_size // multiple)
    cols = dim(f"cols{multiple}", min=1, max=max_size // multiple)
    torch.onnx.export(
        module,
        (example,),
        os.fspath(path),
        input_names=["image"],
        output_names=list(output_names),
        dynamic_shapes=({0: batch, 2: multiple * rows, 3: multiple * cols},),
        opset_version=opset,
        dynamo=True,
        verbose=False,
    )


def onnx_session(path: str | os.PathLike[str], threads: int | None = None):
    """An ONNX Runtime CPU session for ``path``."""
    _require("onnxruntime")
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see onnx_backend._session
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def check_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    sizes: Sequence[tuple[int, int]] = ((224, 224), (160, 288)),
    batch: int = 2,
    atol: float = 1e-4,
    seed: int = 0,
) -> dict[tuple[int, int], float]:
    """Run the ONNX graph and the eager model on random inputs; raise if any output differs by > ``atol``.

    Returns:
        ``{(height, width): max absolute difference}``.
    """
    session = onnx_session(path)
    generator = torch.Generator().manual_seed(seed)
    wrapped = MaskOnly(model).eval()
    report = {}
    for height, width in sizes:
        x = torch.randn(batch, 3, height, width, generator=generator)
        with torch.inference_mode():
            expected = wrapped(x).numpy()
        (got,) = session.run(["mask"], {"image": x.numpy()})
        if got.shape != expected.shape:
            raise AssertionError(f"ONNX output shape {got.shape} != eager {expected.shape} at {height}×{width}")
        diff = float(np.abs(got - expected).max())
        report[(height, width)] = diff
        if diff > atol:
            raise AssertionError(f"ONNX output differs from eager by {diff:.2e} (> {atol:g}) at {height}×{width}")
    return report
