"""Load a model from whatever weights you have: :func:`load`.

:func:`load` walks an ordered table of weight sources, each a ``(detect, load)`` pair, and uses the
first whose ``detect`` accepts the path: the published weights of a tag, a Hub-format folder,
each registered converter of a foreign format (:mod:`inharmony.models.converters`: the authors' DIRL
or MadisNet folder, a Lightning ``.ckpt``, ...), a plain state-dict file, a Hub id. A new format is a
converter module; this file does not change.

Example:
    >>> import inharmony
    >>> model = inharmony.load("dirl", weights="runs/dirl/hub")  # doctest: +SKIP
    >>> model = inharmony.load("dirl", weights="DIRL/checkpoints", epoch=60)  # the authors' files  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import CheckpointError
from ._builder import create_model
from ._checkpoint import load_state_dict_file, load_state_dict_strict, read_state_dict
from ._hub import from_pretrained, looks_like_hub_id
from ._hub_config import CONFIG_NAME
from ._registry import get_entrypoint, get_pretrained_cfg, list_models, split_model_name

if TYPE_CHECKING:  # the converters import this package: at run time they are imported late, in weight_sources
    from .converters import Converter

__all__ = ["WeightSource", "describe_weights", "guess_architectures", "identify_weights", "load", "weight_sources"]


@dataclass(frozen=True)
class WeightSource:
    """One row of :func:`load`'s table.

    Attributes:
        name: What the source is, for messages.
        detect: ``detect(path) -> bool``.
        load: ``load(path, model_name, options) -> nn.Module``; ``options`` holds ``revision``,
            ``trust_checkpoint``, ``epoch`` and the constructor ``model_kwargs``.
        takes_epoch: The source keeps one file set per epoch and honours ``options["epoch"]``.
    """

    name: str
    detect: Callable[[str], bool]
    load: Callable[[str, str, Mapping[str, Any]], nn.Module]
    takes_epoch: bool = False


def _is_hub_folder(source: str) -> bool:
    return os.path.isdir(source) and os.path.isfile(os.path.join(source, CONFIG_NAME))


def _from_hub(source: str, model: str, options: Mapping[str, Any]) -> nn.Module:
    return from_pretrained(source, revision=options.get("revision"), expected_architecture=model)


def _from_state_dict(source: str, model: str, options: Mapping[str, Any]) -> nn.Module:
    net = create_model(model, **options.get("model_kwargs", {}))
    trust = bool(options.get("trust_checkpoint", False))
    try:
        load_state_dict_file(net, source, trust=trust)
    except CheckpointError as err:
        what = _other_weights(source, model, trust)
        if what is not None:
            raise CheckpointError(f"{source} holds {what}, not the weights of {split_model_name(model)[0]!r}") from err
        raise
    return net


def _other_weights(source: str, model: str, trust: bool) -> str | None:
    """What a readable weights file that does not fit ``model`` holds, if it is known and not ``model``'s."""
    try:
        what = identify_weights(read_state_dict(source, trust=trust))
    except CheckpointError:
        return None  # unreadable: the first error already says why
    architecture = split_model_name(model)[0]
    # The same architecture built with other arguments: the first error's keys and shapes say more.
    return None if what is None or f"'{architecture}'" in what.split(" (", 1)[0] else what


@functools.lru_cache(maxsize=4)
def _architecture_keys(names: tuple[str, ...]) -> dict[str, dict[str, tuple[int, ...]]]:
    table = {}
    for name in names:
        try:
            with torch.device("meta"):  # names and shapes only: nothing is allocated
                table[name] = {k: tuple(v.shape) for k, v in create_model(name).state_dict().items()}
        except Exception:  # a model that cannot be built with its defaults is not a candidate
            continue
    return table


def guess_architectures(state: Mapping[str, Any]) -> list[str]:
    """The registered architectures whose state-dict keys ``state``'s are, best first ties included; ``[]``: none.

    Key names decide (at least half of the file's keys, and ten or more, must be the architecture's), then
    matching shapes, then fewest keys left out: a file is named for what it holds even when built with other
    constructor arguments (fewer layers, other widths). DataParallel's ``module.`` and a
    Lightning module's ``model.`` prefixes are ignored.

    Example:
        >>> guess_architectures(create_model("pctnet", depth=2).state_dict())
        ['pctnet']
    """
    keys = {
        str(k).removeprefix("module.").removeprefix("model."): tuple(getattr(v, "shape", ())) for k, v in state.items()
    }
    scores = {}
    for name, own in _architecture_keys(tuple(list_models())).items():
        common = keys.keys() & own.keys()
        known = len(common) / max(1, len(keys))  # of the file's keys, those the architecture has
        if known >= 0.5 and len(common) >= min(10, len(own)):
            scores[name] = (round(known, 6), sum(own[k] == keys[k] for k in common), -len(own.keys() - common))
    best = max(scores.values(), default=None)
    return sorted(name for name, score in scores.items() if score == best)


def _converter_source(converter: Converter) -> WeightSource:
    """The row of a registered :class:`~inharmony.models.converters.Converter`."""

    def load_with(source: str, model: str, options: Mapping[str, Any]) -> nn.Module:
        chosen = {"epoch": options["epoch"]} if converter.takes_epoch and options.get("epoch") is not None else {}
        trust = bool(options.get("trust_checkpoint", False))
        return converter.load(source, split_model_name(model)[0], trust=trust, **chosen)

    return WeightSource(converter.name, converter.detect, load_with, converter.takes_epoch)


def _apply_model_kwargs(net: nn.Module, model_kwargs: Mapping[str, Any], source: str) -> nn.Module:
    """``net`` rebuilt with ``model_kwargs`` over its recorded constructor arguments, same weights.

    Arguments that leave the parameters unchanged (RSRNet's ``iterations``, a threshold) apply; one that
    changes them (another backbone, other widths) cannot fit the weights and is refused, naming the value
    the weights were saved with.
    """
    recorded = dict(getattr(net, "_hub_mixin_config", None) or {})
    cfg = getattr(net, "pretrained_cfg", None)
    if cfg is None or not recorded:
        raise ValueError(
            f"constructor arguments ({', '.join(model_kwargs)}) cannot be applied to the weights in {source}: "
            "their model did not record its arguments"
        )
    args = {**recorded, **model_kwargs}
    for flag in get_pretrained_cfg(cfg.architecture).download_args:
        if args.get(flag):
            args[flag] = False  # the loaded weights replace any downloaded initialisation
    try:
        rebuilt = create_model(cfg.architecture, **args)
    except TypeError as err:
        raise ValueError(f"{cfg.architecture!r} does not take {', '.join(model_kwargs)}: {err}") from err
    try:
        load_state_dict_strict(rebuilt, net.state_dict(), source)
    except CheckpointError as err:
        saved = ", ".join(f"{k}={recorded[k]!r}" for k in model_kwargs if k in recorded)
        asked = ", ".join(f"{k}={v!r}" for k, v in model_kwargs.items())
        raise CheckpointError(
            f"the weights in {source} were saved with {saved or 'other arguments'}; {asked} changes the "
            f"network's parameters, so they cannot be used with it. Drop the argument, or use weights trained "
            f"with it ({str(err).split(': ', 1)[-1][:200]})"
        ) from err
    rebuilt.pretrained_cfg = cfg
    return rebuilt


def identify_weights(state: Mapping[str, Any]) -> str | None:
    """What a state dict is, told from its key names, with how to load it; ``None`` if it is none of the known.

    A file of a registered foreign format (each converter's ``identify``), or the weights of a registered
    architecture in inharmony's own layout (what ``save_pretrained`` writes, or a ``.ckpt``'s ``model.*``).

    Example:
        >>> identify_weights(create_model("pctnet", depth=1).state_dict())
        "the weights of inharmony's 'pctnet' (load them with inharmony.load('pctnet', weights=...))"
    """
    from .converters import list_converters  # the converters build models through this package: import late

    keys = {str(key).removeprefix("module.") for key in state}
    for converter in list_converters():
        found = converter.identify(keys) if converter.identify is not None else None
        if found:
            loads_as = " or ".join(repr(a) for a in converter.architectures) or "its model"
            return f"{found}: the {converter.name!r} format ({converter.description}), which loads as {loads_as}"
    names = guess_architectures(state)
    if not names:
        return None
    return (
        f"the weights of inharmony's {' or '.join(repr(n) for n in names)} "
        f"(load them with inharmony.load({names[0]!r}, weights=...))"
    )


def describe_weights(state: Mapping[str, Any]) -> str:
    """:func:`identify_weights`, or what to say of a state dict of key names no known format or model has."""
    return identify_weights(state) or "a state dict of other key names (of no format or model inharmony knows)"


def weight_sources() -> list[WeightSource]:
    """The table :func:`load` walks, in order (the converters as registered now).

    Example:
        >>> rows = [row.name for row in weight_sources()]
        >>> rows[0], "dirl-official" in rows, rows[-1]
        ('hub folder (config.json + model.safetensors)', True, 'Hugging Face Hub id (org/name)')
    """
    from .converters import list_converters  # the converters build models through this package: import late

    return [
        WeightSource("hub folder (config.json + model.safetensors)", _is_hub_folder, _from_hub),
        *(_converter_source(c) for c in list_converters()),
        WeightSource("state-dict file (.safetensors, .pth, .pt)", os.path.isfile, _from_state_dict),
        WeightSource("Hugging Face Hub id (org/name)", looks_like_hub_id, _from_hub),
    ]


def _check_epoch(epoch: str | int | None, row: WeightSource | None, source: str | None) -> None:
    if epoch is None or (row is not None and row.takes_epoch):
        return
    folders = "; ".join(r.name for r in weight_sources() if r.takes_epoch)
    what = f"{source} is a {row.name}" if row is not None and source is not None else "no weights= was given"
    raise ValueError(f"epoch={epoch!r} chooses the files of an authors' checkpoint folder ({folders}); {what}")


def load(
    model: str = "dirl",
    weights: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    device: str | torch.device | None = None,
    trust_checkpoint: bool = False,
    epoch: str | int | None = None,
    **model_kwargs: Any,
) -> nn.Module:
    """A ready-to-run model from whatever weights you have.

    Args:
        model: Registered name, e.g. ``"dirl"`` or ``"dirl.ihd_le50"``.
        weights: ``None`` for the tag's published weights; a hub folder or Hub id (``org/name``);
            a ``.safetensors`` / ``.pt`` / ``.pth`` state dict; a Lightning ``.ckpt`` from ``inharmony fit``;
            or a format of :func:`inharmony.models.converters.list_converters` (the authors' DIRL folder, ...).
        revision: Hub revision when ``weights`` is a Hub id.
        device: Where to put the model (default CPU).
        trust_checkpoint: Allow pickled objects in a ``.ckpt`` you made yourself.
        epoch: Which files of an authors' checkpoint folder, which holds one set per epoch: ``"best"`` (the
            default there), ``"latest"`` or an epoch number, as in their names (DIRL's
            ``encoder_epoch{N|best|latest}.pth``, MadisNet's ``g_/ihdrnet_epoch{N|best}.pth``). Refused
            for other weights.
        **model_kwargs: Constructor arguments. With a plain state dict they build the network; with weights
            that record their arguments (a hub folder, a ``.ckpt``, a converted format) they replace the
            recorded ones when the weights still fit (e.g. RSRNet's ``iterations=3``), else a
            :class:`~inharmony.errors.CheckpointError` names the value the weights were saved with.

    Returns:
        The model in eval mode.

    Raises:
        ValueError: ``epoch`` given for weights that are not an authors' checkpoint folder.

    Example:
        >>> model = inharmony.load("dirl", weights="runs/dirl/hub")  # doctest: +SKIP
        >>> model = inharmony.load("dirl", weights="DIRL/checkpoints", epoch="latest")  # doctest: +SKIP
    """
    get_entrypoint(model)  # raises UnknownModelError listing the models
    if weights is None:
        _check_epoch(epoch, None, None)
        net = create_model(model, pretrained=True, **model_kwargs)
    else:
        source = os.fspath(weights)
        options = {"revision": revision, "trust_checkpoint": trust_checkpoint, "epoch": epoch,
                   "model_kwargs": model_kwargs}  # fmt: skip
        table = weight_sources()
        row = next((r for r in table if r.detect(source)), None)
        if row is None:
            kinds = "; ".join(r.name for r in table)
            what = "folder holds none of" if os.path.isdir(source) else "is not a file, a folder or a Hub id:"
            raise FileNotFoundError(f"weights not found: {source} {what} {kinds}")
        _check_epoch(epoch, row, source)
        net = row.load(source, model, options)
        if model_kwargs and row.load is not _from_state_dict:
            # A hub folder, a .ckpt or a converted format builds its network from recorded arguments:
            # apply the caller's on top rather than silently ignoring them.
            net = _apply_model_kwargs(net, model_kwargs, source)
    net = net.eval()
    return net.to(device) if device is not None else net
