"""torch.hub entry points for inharmony.

Example:
    >>> import torch
    >>> model = torch.hub.load("inharmony/inharmony", "dirl", pretrained=True)  # doctest: +SKIP
    >>> model = torch.hub.load("path/to/inharmony", "dirl", source="local", weights="dirl_hub_folder")  # doctest: +SKIP

Every entry point takes keyword-only ``pretrained`` (the published weights of the default tag) and
``weights`` (a hub folder, a Hub id ``org/name``, a ``.safetensors``/``.pth`` state dict, a Lightning
``.ckpt`` or, for DIRL, the folder of the authors' checkpoints); other keyword arguments go to the
model's constructor. The returned model is in eval mode and takes ImageNet-normalised RGB
``(B, 3, H, W)`` with ``H`` and ``W`` multiples of 16; ``inharmony.Predictor`` does that for you.
"""

# torch.hub checks that these import before it runs an entry point.
dependencies = ["torch", "timm", "safetensors", "huggingface_hub"]

import os as _os  # noqa: E402  (dependencies must come first for torch.hub's parser)
import sys as _sys  # noqa: E402

_SRC = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "src")
if _os.path.isdir(_SRC) and _SRC not in _sys.path:
    _sys.path.insert(0, _SRC)


def _inharmony():
    """Import the package, naming any missing dependency instead of a bare ImportError."""
    try:
        import inharmony
        import inharmony.hub  # installs the weight loader used by pretrained=True
    except ModuleNotFoundError as err:
        raise ImportError(
            f"inharmony's torch.hub entry points need the package {err.name!r}; install it with "
            f"`pip install {err.name}` (or `pip install inharmony` for everything)"
        ) from err
    return inharmony


def _create(name: str, pretrained: bool, weights, kwargs: dict):
    inharmony = _inharmony()
    if pretrained and weights is not None:
        raise ValueError("give either pretrained=True or weights=..., not both")
    if not pretrained and weights is None:
        return inharmony.create_model(name, **kwargs).eval()
    return inharmony.load(name, weights=weights, **kwargs)


def dirl(*, pretrained: bool = False, weights=None, **kwargs):
    """DIRL (Liang, Niu, Zhang; ICME 2021): ResNet34 encoder, BFI, MDA and GGD.

    Reference scores on the iHarmony4 le50 test split (paper): AP 80.02 %, F1 0.7317, IoU 67.85 %.

    Args:
        pretrained: Load the published weights of ``dirl.ihd_le50`` (raises a clear error while
            they are unpublished; then pass ``weights``).
        weights: A hub folder, a Hub id, a state-dict file, a Lightning ``.ckpt`` or the folder of
            the authors' ``encoder_epochbest.pth`` / ``decoder_epochbest.pth``.
        **kwargs: Constructor arguments (e.g. ``decoder_channels``) for a fresh model.
    """
    return _create("dirl", pretrained, weights, kwargs)


def dirl_resnet18(*, pretrained: bool = False, weights=None, **kwargs):
    """DIRL with a ResNet18 encoder (not in the paper; lighter, for CPU). No reference scores.

    Args:
        pretrained: Published weights (none yet: raises a clear error).
        weights: A hub folder, a Hub id, a state-dict file or a Lightning ``.ckpt``.
        **kwargs: Constructor arguments for a fresh model.
    """
    return _create("dirl_resnet18", pretrained, weights, kwargs)


def rsrnet(*, pretrained: bool = False, weights=None, **kwargs):
    """RSRNet (Recurrent Self-Reasoning Network; Wu et al., BMVC 2022).

    Reference scores on the iHarmony4 le50 test split (paper): AP 82.57 %, F1 0.7607, IoU 71.63 %.

    Args:
        pretrained: Published weights (none yet: raises a clear error).
        weights: A hub folder, a Hub id, a state-dict file or a Lightning ``.ckpt``.
        **kwargs: Constructor arguments (e.g. ``iterations``) for a fresh model.
    """
    return _create("rsrnet", pretrained, weights, kwargs)
