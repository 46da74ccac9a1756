"""inharmony: inharmonious region localization (DIRL, RSRNet) in PyTorch.

Example:
    >>> import inharmony
    >>> inharmony.list_models()[:1]
    ['dirl']
    >>> model = inharmony.create_model("dirl").eval()
"""

from .models import create_model, get_pretrained_cfg, list_models, list_pretrained

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "get_pretrained_cfg", "list_models", "list_pretrained"]
