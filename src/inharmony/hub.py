"""Hugging Face Hub format: save, load and publish models, with a model card.

A saved model is a folder (or Hub repository) with three files:

* ``config.json``: ``{"architecture", "model_args", "pretrained_cfg", "inharmony_version",
  "format_version"}``. ``model_args`` are the constructor arguments, with ``pretrained_backbone``
  forced to ``False``: the encoder's ImageNet weights are already inside ``model.safetensors``, and
  loading a model must never start a download.
* ``model.safetensors``: the network's state dict.
* ``README.md``: the model card (:mod:`inharmony.model_card`).

Saving and uploading go through ``huggingface_hub.PyTorchModelHubMixin`` (subclassed by
:class:`_HubAdapter`, which wraps the network): the architectures themselves import only torch and
timm, and get ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` methods from the thin
:class:`inharmony.models._hub_mixin.HubMixin`, which calls into this module.

Example:
    >>> import inharmony
    >>> model = inharmony.create_model("dirl_resnet18")
    >>> inharmony.hub.save_pretrained(model, "my_dirl", metrics={"ap": 0.8})  # doctest: +SKIP
    >>> model = inharmony.from_pretrained("my_dirl")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from . import __version__
from .model_card import normalise_metrics, render_model_card
from .models._checkpoint import CheckpointError, load_state_dict_strict
from .models._hub_mixin import init_kwargs
from .models._offline import HubUnreachableError, ensure_hub_file_available
from .models._registry import (
    PretrainedCfg,
    create_model,
    get_pretrained_cfg,
    is_model,
    list_models,
    set_pretrained_loader,
    split_model_name,
)

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "HubConfigError",
    "build_config",
    "from_pretrained",
    "load",
    "load_lightning_checkpoint",
    "push_to_hub",
    "save_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
_REPO_URL = "https://github.com/inharmony/inharmony"
# Constructor arguments that would fetch weights when the model is rebuilt from config.json.
_DOWNLOAD_FLAGS = ("pretrained_backbone",)


class HubConfigError(ValueError):
    """A hub folder's ``config.json`` is missing, malformed, newer than this library, or of another model."""


# --------------------------------------------------------------------------- config


def _architecture_of(model: nn.Module, model_name: str | None) -> str:
    if model_name is not None:
        architecture, _ = split_model_name(model_name)
        if not is_model(architecture):
            raise ValueError(f"unknown model {architecture!r}; registered models: {', '.join(list_models())}")
        return architecture
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, PretrainedCfg):
        return cfg.architecture
    guess = type(model).__name__.lower()
    if is_model(guess):
        return guess
    raise ValueError(
        f"cannot tell which registered model a {type(model).__name__} is; pass model_name=... "
        f"(one of {', '.join(list_models())})"
    )


def _rebuild_on_meta(architecture: str, model_args: Mapping[str, Any]) -> nn.Module:
    with torch.device("meta"):
        return create_model(architecture, **model_args)


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def build_config(
    model: nn.Module,
    model_name: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` dict for ``model``.

    The constructor arguments come from ``model_kwargs`` if given, else from those recorded when
    the model was built (:class:`~inharmony.models._hub_mixin.HubMixin`). Either way, the model is
    rebuilt from them on the ``meta`` device and its
    parameter names and shapes are compared with ``model``'s, so a config that would not load
    back is caught here, at save time.

    Raises:
        ValueError: the architecture is unknown, an argument is not JSON-serialisable, or the
            arguments do not rebuild this model.
    """
    architecture = _architecture_of(model, model_name)
    recorded = init_kwargs(model)
    if model_kwargs is None and recorded is None:
        # Defaults would be a guess: arguments such as RSRNet's `iterations` change the outputs but
        # not the parameters, so no check could catch a wrong guess.
        raise ValueError(
            f"the constructor arguments of this {type(model).__name__} were not recorded (its class does not "
            f"use inharmony.models._hub_mixin.HubMixin); pass model_kwargs={{...}} with the arguments it was "
            f"built with ({{}} for {architecture!r}'s defaults)"
        )
    source = "model_kwargs" if model_kwargs is not None else "recorded"
    args = dict(model_kwargs if model_kwargs is not None else recorded)
    for flag in _DOWNLOAD_FLAGS:
        if flag in args:
            args[flag] = False
    try:
        json.dumps(args)
    except TypeError as err:
        raise ValueError(f"constructor arguments of {architecture!r} are not JSON-serialisable: {err}") from err

    expected = _shapes(_rebuild_on_meta(architecture, args))
    actual = _shapes(model)
    if expected != actual:
        differing = sorted(set(expected) ^ set(actual)) or [k for k in expected if expected[k] != actual.get(k)]
        hint = "check model_name and model_kwargs" if source == "model_kwargs" else "pass model_kwargs={...}"
        raise ValueError(
            f"{architecture!r} built with {args} ({source}) does not have this model's parameters "
            f"(first differences: {', '.join(differing[:5])}); {hint}"
        )

    registry_cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(registry_cfg, PretrainedCfg) or registry_cfg.architecture != architecture:
        registry_cfg = get_pretrained_cfg(architecture)
    cfg = registry_cfg.to_dict()
    table = normalise_metrics(metrics)
    if table:
        cfg["metrics"] = table.get("All", {})
    return {
        "architecture": architecture,
        "model_args": args,
        "pretrained_cfg": cfg,
        "inharmony_version": __version__,
        "format_version": FORMAT_VERSION,
    }


def _version_tuple(text: str) -> Any:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text)
    except InvalidVersion:
        return None


def _check_config(config: Any, source: str) -> dict[str, Any]:
    """Validate a loaded ``config.json``; raise :class:`HubConfigError` with what to do."""
    if not isinstance(config, dict) or "architecture" not in config:
        raise HubConfigError(
            f"{source} is not an inharmony config.json (no 'architecture' key); was the folder written by "
            "inharmony's save_pretrained?"
        )
    written_by = str(config.get("inharmony_version", "0"))
    theirs, ours = _version_tuple(written_by), _version_tuple(__version__)
    newer = theirs is not None and ours is not None and theirs > ours
    upgrade = (
        f"{source} was written by inharmony {written_by}, newer than the installed {__version__}; "
        "upgrade with `pip install -U inharmony`"
    )
    if int(config.get("format_version", 1)) > FORMAT_VERSION:
        raise HubConfigError(f"{upgrade} (config format {config['format_version']} > {FORMAT_VERSION})")
    if not is_model(str(config["architecture"])):
        raise HubConfigError(
            (upgrade + ": it holds" if newer else f"{source} holds")
            + f" architecture {config['architecture']!r}, which this installation does not know "
            f"(registered: {', '.join(list_models())})"
        )
    model_args = config.get("model_args", {})
    if not isinstance(model_args, dict):
        raise HubConfigError(f"{source}: 'model_args' must be an object, got {type(model_args).__name__}")
    config = dict(config, model_args=dict(model_args))
    config["_newer"] = upgrade if newer else None  # internal: explains a later failure; never saved
    for flag in _DOWNLOAD_FLAGS:
        if config["model_args"].get(flag):
            config["model_args"][flag] = False  # weights are in model.safetensors; never download on load
    return config


# --------------------------------------------------------------------------- adapter over the Hub mixin


class _HubAdapter(
    PyTorchModelHubMixin,
    library_name="inharmony",
    repo_url=_REPO_URL,
    tags=["inharmonious-region-localization", "image-composition"],
    pipeline_tag="image-segmentation",
):
    """Carries a plain network through ``PyTorchModelHubMixin``'s save / push / load flow.

    The mixin saves ``self.module`` when it exists (its DataParallel convention), so wrapping the
    network is enough for ``save_pretrained`` and ``push_to_hub``; loading is ours
    (:meth:`_from_pretrained`), because the mixin loads non-strictly, which would hide a folder of
    another architecture.
    """

    def __init__(self, module: nn.Module | None = None, config: dict | None = None) -> None:
        self.module = module
        self._hub_mixin_config = config
        self._card_kwargs: dict[str, Any] = {}

    def generate_model_card(self, *args: Any, **kwargs: Any) -> Any:
        from huggingface_hub import ModelCard

        return ModelCard(render_model_card(self._hub_mixin_config, **{**self._card_kwargs, **kwargs}))

    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict | None = None,
        map_location: str = "cpu",
        **unused: Any,
    ) -> _HubAdapter:
        if config is None:
            raise HubConfigError(f"{model_id} has no {CONFIG_NAME}; was it written by inharmony's save_pretrained?")
        config = _check_config(config, f"{CONFIG_NAME} of {model_id}")
        if os.path.isdir(model_id):
            weights = os.path.join(model_id, WEIGHTS_NAME)
            if not os.path.isfile(weights):
                raise CheckpointError(f"{model_id} has {CONFIG_NAME} but no {WEIGHTS_NAME}")
        else:
            from huggingface_hub import hf_hub_download

            weights = hf_hub_download(
                model_id,
                WEIGHTS_NAME,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
        model = _build_and_load(config, weights)
        model.to(map_location)
        config.pop("_newer", None)
        return cls(module=model.eval(), config=config)


def _build_and_load(config: dict[str, Any], weights: str | os.PathLike[str]) -> nn.Module:
    from safetensors.torch import load_file

    try:
        model = create_model(config["architecture"], **config["model_args"])
    except TypeError as err:
        why = f"{config['_newer']}: " if config.get("_newer") else ""
        raise HubConfigError(
            f"{why}cannot build {config['architecture']!r} from {config['model_args']}: {err}"
        ) from err
    try:
        state = load_file(os.fspath(weights), device="cpu")
    except Exception as err:
        raise CheckpointError(f"cannot read {weights}: {type(err).__name__}: {err}") from err
    try:
        load_state_dict_strict(model, state, os.fspath(weights))
    except CheckpointError as err:
        if config.get("_newer"):
            raise CheckpointError(f"{config['_newer']}. {err}") from err
        raise
    fields = {f.name for f in dataclasses.fields(PretrainedCfg)}
    stored = {k: v for k, v in config.get("pretrained_cfg", {}).items() if k in fields and k != "architecture"}
    for key in ("input_size", "mean", "std"):
        if key in stored:
            stored[key] = tuple(stored[key])
    model.pretrained_cfg = dataclasses.replace(get_pretrained_cfg(config["architecture"]), **stored)
    return model


# --------------------------------------------------------------------------- public API


def save_pretrained(
    model: nn.Module,
    save_directory: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | list | None = None,
    model_card_kwargs: Mapping[str, Any] | None = None,
    push_to_hub: bool = False,
    repo_id: str | None = None,
    **push_kwargs: Any,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` for ``model`` into a folder.

    Args:
        model: A registered architecture (see :func:`inharmony.list_models`).
        save_directory: Folder to write; created if needed. An existing model card is replaced.
        model_name: Registered name, if ``model.pretrained_cfg`` does not say it.
        model_kwargs: Constructor arguments, if they were not recorded when the model was built.
        metrics: Test scores for the model card, in any layout
            :func:`inharmony.model_card.normalise_metrics` accepts (fractions or paper units).
        model_card_kwargs: Extra arguments of :func:`inharmony.model_card.render_model_card`
            (``training_data``, ``extra``).
        push_to_hub: Also upload the folder to ``repo_id``.
        repo_id: Hub repository for ``push_to_hub``.
        **push_kwargs: Passed to ``huggingface_hub``'s ``push_to_hub`` (``private``, ``token``, ...).

    Returns:
        The folder.

    Example:
        >>> model = inharmony.create_model("dirl_resnet18")  # doctest: +SKIP
        >>> save_pretrained(model, "out/dirl18", metrics={"ap": 0.71, "f1": 0.62, "iou": 0.55})  # doctest: +SKIP
    """
    folder = Path(save_directory)
    config = build_config(model, model_name, model_kwargs, metrics)
    card_kwargs = _card_kwargs(config, metrics, model_card_kwargs)
    if repo_id:
        card_kwargs.setdefault("repo_id", repo_id)
    adapter = _HubAdapter(module=model, config=config)
    adapter._card_kwargs = card_kwargs
    (folder / "README.md").unlink(missing_ok=True)  # the mixin keeps an existing card; ours must be current
    adapter.save_pretrained(folder, config=config)
    if push_to_hub:
        if not repo_id:
            raise ValueError("push_to_hub=True needs repo_id='org/name'")
        _upload(adapter, repo_id, config, **push_kwargs)
    return folder


def _card_kwargs(config: dict, metrics: Any, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    kwargs = dict(extra or {})
    kwargs.setdefault("metrics", normalise_metrics(metrics) or None)
    kwargs.setdefault("reference_metrics", dict(get_pretrained_cfg(config["architecture"]).metrics))
    return kwargs


def _upload(adapter: _HubAdapter, repo_id: str, config: dict, **push_kwargs: Any) -> str:
    _require_network(repo_id, "upload")
    return adapter.push_to_hub(repo_id, config=config, **push_kwargs)


def _require_network(repo_id: str, action: str) -> None:
    """Fail in seconds, not after the Hub client's retries, when uploading is impossible."""
    from .models._offline import _TRUE, _hub_is_reachable

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        raise HubUnreachableError(
            f"cannot {action} {repo_id!r}: HF_HUB_OFFLINE is set. Unset it on a machine with a network, "
            "or write the folder only (`inharmony push ... --out DIR --dry-run`) and upload it later with "
            f"`huggingface-cli upload {repo_id} DIR`."
        )
    if not _hub_is_reachable(3.0):
        raise HubUnreachableError(
            f"cannot {action} {repo_id!r}: the Hugging Face Hub could not be reached. Write the folder only "
            f"(`inharmony push ... --out DIR --dry-run`) and upload it later with "
            f"`huggingface-cli upload {repo_id} DIR`."
        )


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    model_name: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | list | None = None,
    model_card_kwargs: Mapping[str, Any] | None = None,
    **push_kwargs: Any,
) -> str:
    """Upload ``model`` (config, safetensors weights, model card) to the Hub repository ``repo_id``.

    Fails within seconds, with what to do instead, when the Hub is unreachable or
    ``HF_HUB_OFFLINE`` is set. Other keyword arguments go to ``huggingface_hub``
    (``private``, ``token``, ``branch``, ``commit_message``, ...). Returns the commit URL.
    """
    config = build_config(model, model_name, model_kwargs, metrics)
    card_kwargs = _card_kwargs(config, metrics, model_card_kwargs)
    card_kwargs.setdefault("repo_id", repo_id)
    adapter = _HubAdapter(module=model, config=config)
    adapter._card_kwargs = card_kwargs
    return _upload(adapter, repo_id, config, **push_kwargs)


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _looks_like_hub_id(text: str) -> bool:
    """``org/name`` that is not an existing path; ``./x``, ``/x`` and ``a/b/c`` are paths."""
    return not os.path.exists(text) and _HUB_ID.fullmatch(text) is not None


def from_pretrained(
    pretrained_model_name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    map_location: str | torch.device = "cpu",
    expected_class: type | None = None,
    expected_architecture: str | None = None,
) -> nn.Module:
    """Load a model saved by :func:`save_pretrained`, from a folder or a Hub repository.

    Args:
        pretrained_model_name_or_path: A local folder, or a Hub id ``"org/name"``.
        revision: Hub revision (branch, tag or commit); pin a commit for reproducible results.
        cache_dir: Hugging Face cache to use instead of the default.
        token: Hub token for private repositories.
        local_files_only: Only look in the local cache (also implied by ``HF_HUB_OFFLINE=1``).
        map_location: Device to put the weights on.
        expected_class: Raise unless the model is an instance of this class.
        expected_architecture: Raise unless the folder holds this registered architecture.

    Returns:
        The model in eval mode, with ``model.pretrained_cfg`` from the config.

    Raises:
        HubConfigError: no or malformed ``config.json``, a newer library's format, another architecture.
        CheckpointError: weights missing or not matching the architecture (keys named).
        HubUnreachableError: a Hub id that is not cached while offline or unreachable (within seconds).

    Example:
        >>> model = inharmony.from_pretrained("out/dirl18")  # doctest: +SKIP
    """
    source = os.fspath(pretrained_model_name_or_path)
    if os.path.isfile(source):
        raise HubConfigError(
            f"{source} is a file; from_pretrained wants a folder holding {CONFIG_NAME} and {WEIGHTS_NAME} "
            f"(or a Hub id). For a single weights file use inharmony.load('<model>', weights='{source}')."
        )
    if not os.path.isdir(source):
        if not _looks_like_hub_id(source):
            raise FileNotFoundError(f"{source} is neither an existing folder nor a Hub id of the form 'org/name'")
        ensure_hub_file_available(
            source,
            (CONFIG_NAME,),
            offline_hint="pass a local folder written by save_pretrained instead of a Hub id",
        )
    else:
        _peek_architecture(source, expected_class, expected_architecture)
    try:
        adapter = _HubAdapter.from_pretrained(
            source,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
            map_location=str(map_location),
        )
    except (HubConfigError, CheckpointError, HubUnreachableError):
        raise
    except Exception as err:  # huggingface_hub's errors: offline + revision not cached, 404, auth
        name = type(err).__name__
        if "EntryNotFound" in name or "RepositoryNotFound" in name or "RevisionNotFound" in name:
            raise FileNotFoundError(f"cannot load {source!r} (revision {revision or 'main'}): {name}: {err}") from err
        if "LocalEntryNotFound" in name or "OfflineMode" in name:
            raise HubUnreachableError(
                f"{source!r} (revision {revision or 'main'}) is not in the local Hugging Face cache and the Hub "
                f"cannot be used ({name}). Download it on a machine with a network or pass a local folder."
            ) from err
        raise
    model = adapter.module
    _check_expected(model, source, expected_class, expected_architecture)
    return model


def _peek_architecture(folder: str, expected_class: type | None, expected_architecture: str | None) -> None:
    """Read a local config.json first, so a wrong folder is reported before any weights are built."""
    path = os.path.join(folder, CONFIG_NAME)
    if not os.path.isfile(path):
        raise HubConfigError(f"{folder} has no {CONFIG_NAME}; was it written by inharmony's save_pretrained?")
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except json.JSONDecodeError as err:
        raise HubConfigError(f"{path} is not valid JSON: {err}") from err
    config = _check_config(config, path)
    if expected_architecture is not None:
        wanted, _ = split_model_name(expected_architecture)
        if config["architecture"] != wanted:
            raise HubConfigError(
                f"{folder} holds weights of {config['architecture']!r}, not {wanted!r}; "
                f"use --model {config['architecture']} (or inharmony.from_pretrained('{folder}'))"
            )


def _check_expected(
    model: nn.Module, source: str, expected_class: type | None, expected_architecture: str | None
) -> None:
    architecture = model.pretrained_cfg.architecture
    if expected_architecture is not None and split_model_name(expected_architecture)[0] != architecture:
        raise HubConfigError(f"{source} holds weights of {architecture!r}, not {expected_architecture!r}")
    if expected_class is not None and not isinstance(model, expected_class):
        raise HubConfigError(
            f"{source} holds a {type(model).__name__} ({architecture!r}), not a {expected_class.__name__}; "
            "load it with inharmony.from_pretrained(...)"
        )


# --------------------------------------------------------------------------- Lightning checkpoints


def load_lightning_checkpoint(path: str | os.PathLike[str], *, trust: bool = False) -> tuple[nn.Module, dict]:
    """Rebuild the bare network from a ``LocalizationTask`` checkpoint (``.ckpt``).

    The task saves the model name and ``model_kwargs`` as hyper-parameters and the network's
    weights under ``"model.<key>"``.

    Args:
        path: The ``.ckpt`` file written by ``inharmony fit``.
        trust: Allow arbitrary pickled objects (``weights_only=False``). Only for files you made;
            needed only if the checkpoint holds objects beyond tensors and plain containers.

    Returns:
        ``(model in eval mode, hyper_parameters)``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        if trust:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        else:
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds Python objects beyond tensors and plain containers, so it was not loaded with "
            f"weights_only=True ({str(err).splitlines()[0]}). If you wrote this checkpoint yourself, pass "
            "trust=True (CLI: --trust-checkpoint)."
        ) from err
    except Exception as err:
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint: {type(err).__name__}: {err}") from err
    if not isinstance(payload, Mapping) or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    hparams = dict(payload.get("hyper_parameters") or {})
    name = hparams.get("model")
    if not isinstance(name, str):
        raise CheckpointError(
            f"{path} does not record a registered model name in its hyper-parameters (found model={name!r}); "
            "it was trained with a ready nn.Module. Rebuild that module yourself and use inharmony.hub.save_pretrained."
        )
    kwargs = dict(hparams.get("model_kwargs") or {})
    for flag in _DOWNLOAD_FLAGS:
        if flag in kwargs:
            kwargs[flag] = False  # the trained weights replace the ImageNet initialisation anyway
    model = create_model(name, **kwargs)
    state = {k.removeprefix("model."): v for k, v in payload["state_dict"].items() if k.startswith("model.")}
    if not state:
        raise CheckpointError(f"{path} has no 'model.*' weights in its state_dict")
    load_state_dict_strict(model, state, path)
    return model.eval(), hparams


# --------------------------------------------------------------------------- one call for every source


def load(
    model: str = "dirl",
    weights: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    device: str | torch.device | None = None,
    trust_checkpoint: bool = False,
    **model_kwargs: Any,
) -> nn.Module:
    """A ready-to-run model from whatever weights you have.

    Args:
        model: Registered name, e.g. ``"dirl"`` or ``"dirl.ihd_le50"``.
        weights: ``None`` for the tag's published weights; a hub folder or Hub id (``org/name``);
            a ``.safetensors`` / ``.pt`` / ``.pth`` state dict; a Lightning ``.ckpt`` from ``inharmony fit``;
            or a folder with the authors' DIRL checkpoints (``encoder_epochbest.pth`` …).
        revision: Hub revision when ``weights`` is a Hub id.
        device: Where to put the model (default CPU).
        trust_checkpoint: See :func:`load_lightning_checkpoint`.
        **model_kwargs: Constructor arguments when ``weights`` is a plain state dict.

    Returns:
        The model in eval mode.

    Example:
        >>> model = inharmony.load("dirl", weights="runs/dirl/hub")  # doctest: +SKIP
    """
    architecture, _ = split_model_name(model)
    if not is_model(architecture):
        raise ValueError(f"unknown model {architecture!r}; registered models: {', '.join(list_models())}")
    if weights is None:
        net = create_model(model, pretrained=True, **model_kwargs)
    else:
        source = os.fspath(weights)
        if os.path.isdir(source):
            if os.path.isfile(os.path.join(source, CONFIG_NAME)):
                net = from_pretrained(source, expected_architecture=architecture)
            elif any(Path(source).glob("encoder_epoch*.pth")):
                if architecture != "dirl":
                    raise ValueError(f"{source} holds the authors' DIRL checkpoints, not {architecture!r}")
                from .convert import load_official_dirl

                net = load_official_dirl(source)
            else:
                raise FileNotFoundError(
                    f"{source} holds neither {CONFIG_NAME} + {WEIGHTS_NAME} (a hub folder) nor the authors' "
                    "encoder_epoch*.pth / decoder_epoch*.pth"
                )
        elif os.path.isfile(source):
            if source.endswith(".ckpt"):
                net, hparams = load_lightning_checkpoint(source, trust=trust_checkpoint)
                if net.pretrained_cfg.architecture != architecture:
                    raise CheckpointError(
                        f"{source} was trained as {hparams.get('model')!r}, not {model!r}; "
                        f"use --model {hparams.get('model')}"
                    )
            else:
                net = create_model(model, checkpoint_path=source, **model_kwargs)
        elif not _looks_like_hub_id(source):
            raise FileNotFoundError(f"weights not found: {source} (not a file, a folder or a Hub id 'org/name')")
        else:
            net = from_pretrained(source, revision=revision, expected_architecture=architecture)
    net = net.eval()
    return net.to(device) if device is not None else net


# --------------------------------------------------------------------------- registry hook


def _load_registry_weights(model: nn.Module, cfg: PretrainedCfg) -> None:
    """``create_model(..., pretrained=True)`` for a tag with a hub id: fetch and load its safetensors."""
    from huggingface_hub import hf_hub_download

    ensure_hub_file_available(
        cfg.hf_hub_id,
        (WEIGHTS_NAME,),
        offline_hint=f"load a local copy: inharmony.load({cfg.architecture!r}, weights='path/to/folder')",
    )
    path = hf_hub_download(cfg.hf_hub_id, WEIGHTS_NAME, revision=cfg.revision)
    from safetensors.torch import load_file

    load_state_dict_strict(model, load_file(path, device="cpu"), f"{cfg.hf_hub_id}@{cfg.revision}/{WEIGHTS_NAME}")


set_pretrained_loader(_load_registry_weights)
