"""torch.hub entry points for inharmony: one per registered model, derived from the registry.

Example:
    >>> import torch
    >>> model = torch.hub.load("inharmony/inharmony", "dirl", pretrained=True)  # doctest: +SKIP
    >>> model = torch.hub.load("path/to/inharmony", "dirl", source="local", weights="dirl_hub_folder")  # doctest: +SKIP

Every entry point takes keyword-only ``pretrained`` and ``weights`` (see ``inharmony.load``); other
keyword arguments go to the model's constructor. ``torch.hub.help`` shows the paper and reference scores.
"""

dependencies = ["torch", "timm", "huggingface_hub", "safetensors"]  # torch.hub checks these import first

import os as _os  # noqa: E402
import sys as _sys  # noqa: E402

_sys.path.insert(0, _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "src"))  # the checkout's package
from inharmony.models import torch_hub_entrypoints as _entrypoints  # noqa: E402

globals().update(_entrypoints())
