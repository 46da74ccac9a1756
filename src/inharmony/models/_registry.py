"""Model registry: entry functions, one frozen config per weight tag, and ``create_model``.

The registry follows timm's habit: every architecture registers an *entry function*
``fn(**kwargs) -> nn.Module``, and every set of weights is described by a small frozen
:class:`PretrainedCfg` keyed by ``"<model>.<tag>"``. The registry is the single source of the
per-model facts every other layer reads: input size, normalisation, size multiple, which
constructor arguments download, and where published weights live (the training loss of an
architecture is :mod:`inharmony.losses`' to say). Weights are
loaded by :func:`~inharmony.models.create_model` (``_builder.py``), never inside a model's
``__init__``, so building a model from a saved configuration can never trigger a download.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import UnknownModelError
from ._bounds import Bound, check_arguments, check_cfg_values, constructor_hints

__all__ = [
    "Bound",
    "PretrainedCfg",
    "check_model_args",
    "get_arg_bounds",
    "get_entrypoint",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "reference_scores_text",
    "register_model",
    "split_model_name",
]


HUB_FORMAT = "hub"
"""The :attr:`PretrainedCfg.weights_format` of files written by ``save_pretrained``."""

TASKS = ("localization", "harmonization", "harmony_score")
"""What a registered model computes (:attr:`PretrainedCfg.task`)."""


def reference_scores_text(metrics: Mapping[str, float]) -> str:
    """A :attr:`PretrainedCfg.metrics` dict as one line: ``AP … / F1 … / IoU …`` or ``MSE … / PSNR … dB / fMSE …``.

    Example:
        >>> reference_scores_text({"mse": 18.84, "psnr": 39.29, "fmse": 237.49})
        'MSE 18.84 / PSNR 39.29 dB / fMSE 237.49'
    """
    if {"ap", "f1", "iou"} <= set(metrics):
        return f"AP {metrics['ap']:g} / F1 {metrics['f1']:g} / IoU {metrics['iou']:g}"
    if {"mse", "psnr", "fmse"} <= set(metrics):
        return f"MSE {metrics['mse']:g} / PSNR {metrics['psnr']:g} dB / fMSE {metrics['fmse']:g}"
    return ", ".join(f"{key} {value:g}" for key, value in metrics.items())


@dataclass(frozen=True)
class PretrainedCfg:
    """What a set of weights is and where it lives.

    Attributes:
        architecture: Registered model name, e.g. ``"dirl"``.
        tag: Weight tag, e.g. ``"ihd_le50"``; ``""`` for a model without published weights.
        hf_hub_id: Hugging Face Hub repository holding the weights, or ``None`` while unpublished.
        revision: Git revision (commit hash or tag) the hub id is pinned to.
        input_size: ``(C, H, W)`` the weights were trained and evaluated at.
        mean: Per-channel mean of the input normalisation (RGB, 0–1 scale).
        std: Per-channel standard deviation of the input normalisation.
        paper: Citation of the paper that defines the architecture.
        paper_url: Where to read it.
        license: Licence of the weights.
        metrics: Reference scores of the weights (AP %, F1, IoU %), if known.
        notes: Free text, e.g. how the weights were obtained.
        size_multiple: Height and width the network takes must be multiples of this.
        task: ``"localization"`` (image → ``{"mask", ...}``) or ``"harmonization"`` (composite [+ mask] →
            ``{"image", ...}``); what the model computes, so tools pick the right pipeline and metrics.
        download_args: Constructor arguments that fetch weights when true (e.g. an ImageNet
            backbone). A saved config forces them off: the weights are in the saved file.
        weights_format: Format of the files at ``hf_hub_id``: ``"hub"`` (``config.json`` +
            ``model.safetensors``, as ``save_pretrained`` writes them) or the name of the registered
            converter that reads them (e.g. ``"madisnet-libcom"``), which ``create_model(pretrained=True)``
            looks up in :func:`inharmony.models.converters.get_converter`.
    """

    architecture: str
    tag: str = ""
    hf_hub_id: str | None = None
    revision: str | None = None
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    paper: str = ""
    paper_url: str = ""
    license: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    notes: str = ""
    size_multiple: int = 16
    download_args: tuple[str, ...] = ()
    task: str = "localization"
    weights_format: str = HUB_FORMAT

    def __post_init__(self) -> None:
        for name in ("input_size", "mean", "std", "download_args"):  # JSON gives lists
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        check_cfg_values({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, TASKS)

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any], base: PretrainedCfg) -> PretrainedCfg:
        """``base`` with the fields of a saved configuration (``config.json``'s ``pretrained_cfg``) over it.

        Unknown keys (a newer library's fields) and ``architecture`` are ignored; every value is checked.

        Raises:
            ValueError: a field of the wrong type or out of its sane range (named).

        Example:
            >>> base = PretrainedCfg("net")
            >>> PretrainedCfg.from_stored({"input_size": [3, 64, 64]}, base).input_size
            (3, 64, 64)
            >>> PretrainedCfg.from_stored({"std": [0, 0, 0]}, base)
            Traceback (most recent call last):
            ...
            ValueError: 'std' must hold numbers in [0.001, 100], got (0, 0, 0)
        """
        fields = {f.name for f in dataclasses.fields(cls)} - {"architecture"}
        return dataclasses.replace(base, **{k: v for k, v in stored.items() if k in fields})

    @property
    def name(self) -> str:
        """``"<architecture>.<tag>"``, or the bare architecture name when untagged."""
        return f"{self.architecture}.{self.tag}" if self.tag else self.architecture

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict copy, e.g. to write into a model card or ``config.json``."""
        out = dataclasses.asdict(self)
        out["metrics"] = dict(self.metrics)
        return out


_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_PRETRAINED_CFGS: dict[str, dict[str, PretrainedCfg]] = {}
_DEFAULT_TAGS: dict[str, str] = {}
_ARG_BOUNDS: dict[str, dict[str, Bound]] = {}


def register_model(
    fn: Callable[..., nn.Module] | None = None,
    *,
    name: str | None = None,
    pretrained_cfgs: list[PretrainedCfg] | tuple[PretrainedCfg, ...] = (),
    arg_bounds: Mapping[str, Bound] | None = None,
) -> Any:
    """Register an entry function under ``name`` (default: the function's name).

    The first config in ``pretrained_cfgs`` is the default tag. Usable bare or with arguments.
    ``arg_bounds`` gives the sane values of the constructor arguments (a :class:`Bound` each): every
    argument that reaches the model, from code, a command line or a saved ``config.json``, is checked
    against them and against the model class's annotations (see :func:`check_model_args`).

    Example:
        >>> @register_model(pretrained_cfgs=[PretrainedCfg("tiny_net", paper="...")])
        ... def tiny_net(**kwargs):
        ...     return nn.Conv2d(3, 1, 1)
        >>> "tiny_net" in list_models()
        True
        >>> for table in (_ENTRYPOINTS, _PRETRAINED_CFGS, _DEFAULT_TAGS, _ARG_BOUNDS):  # undo, for the other examples
        ...     _ = table.pop("tiny_net")
    """

    def decorate(func: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        model_name = name or func.__name__
        if model_name in _ENTRYPOINTS:
            raise ValueError(f"a model named {model_name!r} is already registered")
        cfgs = list(pretrained_cfgs) or [PretrainedCfg(architecture=model_name)]
        for cfg in cfgs:
            if cfg.architecture != model_name:
                raise ValueError(
                    f"pretrained config {cfg.name!r} names architecture {cfg.architecture!r}, "
                    f"but is registered with model {model_name!r}"
                )
        _ENTRYPOINTS[model_name] = func
        _PRETRAINED_CFGS[model_name] = {cfg.tag: cfg for cfg in cfgs}
        _DEFAULT_TAGS[model_name] = cfgs[0].tag
        _ARG_BOUNDS[model_name] = dict(arg_bounds or {})
        return func

    if fn is not None:
        return decorate(fn)
    return decorate


def split_model_name(model_name: str) -> tuple[str, str | None]:
    """Split ``"dirl.ihd_le50"`` into ``("dirl", "ihd_le50")``; a bare name gives tag ``None``."""
    architecture, _, tag = model_name.partition(".")
    return architecture, (tag or None)


def _unknown_model_error(architecture: str) -> UnknownModelError:
    known = ", ".join(sorted(_ENTRYPOINTS)) or "(none)"
    return UnknownModelError(f"unknown model {architecture!r}; registered models: {known}")


def is_model(model_name: str) -> bool:
    """Whether ``model_name`` (with or without a tag) names a registered architecture."""
    return split_model_name(model_name)[0] in _ENTRYPOINTS


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Names of the registered architectures matching a shell-style ``pattern``, sorted.

    Args:
        pattern: Shell-style filter on the name.
        task: Keep only models of this :attr:`PretrainedCfg.task` (``"localization"``, ``"harmonization"``).

    Example:
        >>> "dirl" in list_models()
        True
        >>> "dirl" in list_models(task="harmonization")
        False
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    names = (n for n in _ENTRYPOINTS if fnmatch.fnmatch(n, pattern))
    return sorted(n for n in names if task is None or _PRETRAINED_CFGS[n][_DEFAULT_TAGS[n]].task == task)


def list_pretrained(pattern: str = "*") -> list[str]:
    """``"<model>.<tag>"`` names of every weight tag, published or not, matching ``pattern``."""
    names = [cfg.name for cfgs in _PRETRAINED_CFGS.values() for cfg in cfgs.values()]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def get_pretrained_cfg(model_name: str) -> PretrainedCfg:
    """The :class:`PretrainedCfg` for ``"<model>"`` (default tag) or ``"<model>.<tag>"``."""
    architecture, tag = split_model_name(model_name)
    if architecture not in _ENTRYPOINTS:
        raise _unknown_model_error(architecture)
    tag = _DEFAULT_TAGS[architecture] if tag is None else tag
    cfgs = _PRETRAINED_CFGS[architecture]
    if tag not in cfgs:
        known = ", ".join(repr(t) for t in cfgs) or "(none)"
        raise UnknownModelError(f"model {architecture!r} has no weight tag {tag!r}; known tags: {known}")
    return cfgs[tag]


def get_entrypoint(model_name: str) -> Callable[..., nn.Module]:
    """The entry function registered for ``model_name`` (a tag, if any, is ignored)."""
    architecture, _ = split_model_name(model_name)
    if architecture not in _ENTRYPOINTS:
        raise _unknown_model_error(architecture)
    return _ENTRYPOINTS[architecture]


def get_arg_bounds(model_name: str) -> dict[str, Bound]:
    """The :class:`Bound` of each constructor argument of ``model_name``, as declared with its registration."""
    architecture, _ = split_model_name(model_name)
    get_entrypoint(architecture)
    return dict(_ARG_BOUNDS.get(architecture, {}))


def check_model_args(model_name: str, args: Mapping[str, Any]) -> None:
    """Refuse constructor arguments that ``model_name`` does not take, of the wrong type, or out of bounds.

    Types come from the model class's ``__init__`` annotations, ranges from the registration's
    ``arg_bounds``; nothing is built. :func:`~inharmony.models.create_model` calls this, and so does
    reading a hub folder's ``config.json`` (before any download or allocation).

    Raises:
        UnknownModelError: ``model_name`` is not registered.
        TypeError: an argument the model does not take.
        ValueError: a value of the wrong type or out of range (``'name' must be ..., got ...``).

    Example:
        >>> check_model_args("dirl", {"decoder_channels": 10**9})
        Traceback (most recent call last):
        ...
        ValueError: 'decoder_channels' must be at most 1024, got 1000000000
    """
    architecture, _ = split_model_name(model_name)
    entry = get_entrypoint(architecture)
    check_arguments(args, constructor_hints(entry), _ARG_BOUNDS.get(architecture, {}), who=repr(architecture))
