"""The Hugging Face Hub format of every architecture: one ``PyTorchModelHubMixin`` subclass.

Every registered architecture inherits :class:`HubMixin` (as smp's architectures inherit its
``SMPHubMixin``), so each model has ``save_pretrained``, ``push_to_hub`` and ``from_pretrained``.
The mixin records the constructor arguments when a model is created; a saved model is a folder (or
Hub repository) with three files:

* ``config.json``: ``{"architecture", "model_args", "pretrained_cfg", "inharmony_version",
  "format_version"}``. ``model_args`` are the recorded constructor arguments, with the registry's
  ``download_args`` (e.g. ``pretrained_backbone``) forced off: the encoder's ImageNet weights are
  already inside ``model.safetensors``, and loading a model must never start a download.
* ``model.safetensors``: the network's state dict, loaded back strictly (every missing, unexpected
  or misshapen key named).
* ``README.md``: the model card (:mod:`inharmony.models.model_card`), with the paper, licence and metrics.

Example:
    >>> import inharmony
    >>> model = inharmony.create_model("dirl_resnet18")
    >>> model.save_pretrained("my_dirl", metrics={"ap": 0.8})  # doctest: +SKIP
    >>> same = inharmony.from_pretrained("my_dirl")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from torch import nn

from ..errors import CheckpointError, HubConfigError, HubUnreachableError
from ..files import atomic_folder
from ._builder import WEIGHTS_NAME, create_model
from ._checkpoint import load_state_dict_strict, read_state_dict
from ._download import download_hub_file, hub_is_reachable, offline_mode
from ._hub_config import CONFIG_NAME, FORMAT_VERSION, build_config, read_config
from ._registry import PretrainedCfg, get_pretrained_cfg, split_model_name

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "HubMixin",
    "from_pretrained",
    "looks_like_hub_id",
    "push_to_hub",
    "save_pretrained",
]

REPO_URL = "https://github.com/inharmony/inharmony"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def looks_like_hub_id(text: str) -> bool:
    """``org/name`` that is not an existing path; ``./x``, ``/x`` and ``a/b/c`` are paths.

    Example:
        >>> looks_like_hub_id("bcmi/dirl"), looks_like_hub_id("/tmp/x")
        (True, False)
    """
    return not os.path.exists(text) and _HUB_ID.fullmatch(text) is not None


class HubMixin(
    PyTorchModelHubMixin,
    library_name="inharmony",
    repo_url=REPO_URL,
    tags=["inharmonious-region-localization", "image-composition"],
    pipeline_tag="image-segmentation",
):
    """Hub-format save, load and upload for every architecture (``class DIRL(HubMixin, nn.Module)``).

    ``huggingface_hub``'s mixin records the JSON-serialisable constructor arguments when the model
    is created (``self._hub_mixin_config``); they become ``config.json``'s ``model_args``. Loading
    rebuilds the model through the registry and loads its weights strictly.

    Example:
        >>> model = inharmony.create_model("dirl_resnet18")  # doctest: +SKIP
        >>> model.save_pretrained("my_dirl", metrics={"ap": 0.80, "f1": 0.73, "iou": 0.68})  # doctest: +SKIP
        >>> same = type(model).from_pretrained("my_dirl")  # doctest: +SKIP
    """

    # ------------------------------------------------------------------ config.json

    def hub_config(
        self,
        model_name: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | list | None = None,
    ) -> dict[str, Any]:
        """The ``config.json`` dict for this model; see :func:`build_config`."""
        return build_config(self, model_name, model_kwargs, metrics)

    # ------------------------------------------------------------------ save / push

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | os.PathLike[str],
        *,
        config: dict[str, Any] | None = None,
        model_name: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | list | None = None,
        model_card_kwargs: Mapping[str, Any] | None = None,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        **push_kwargs: Any,
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card into a folder.

        Args:
            save_directory: Folder to write; created if needed. Its ``config.json``, ``model.safetensors`` and
                ``README.md`` are replaced, each atomically, once all three are written; other files stay.
            config: A ready ``config.json`` dict (default: :meth:`hub_config`).
            model_name: Registered name, if ``model.pretrained_cfg`` does not say it.
            model_kwargs: Constructor arguments, if they were not recorded when the model was built.
            metrics: Test scores for the model card and ``config.json``, in any layout
                :func:`inharmony.models.model_card.normalise_metrics` accepts.
            model_card_kwargs: Extra arguments of :func:`inharmony.models.model_card.render_model_card`.
            push_to_hub: Also upload the folder to ``repo_id``.
            repo_id: Hub repository for ``push_to_hub``.
            **push_kwargs: ``huggingface_hub`` upload arguments (``private``, ``token``, ...).

        Returns:
            The folder.

        Raises:
            OSError: ``ENOSPC`` naming the folder when the disk filled up; nothing was written into it.
        """
        folder = Path(save_directory)
        config = config if config is not None else self.hub_config(model_name, model_kwargs, metrics)
        card_kwargs = _card_kwargs(config, metrics, model_card_kwargs, repo_id)
        # Written beside the folder, then moved in: a full disk or a kill never leaves a partial file there,
        # and the card is always current (the mixin would keep an existing one).
        with atomic_folder(folder) as partial:
            super().save_pretrained(partial, config=config, model_card_kwargs=card_kwargs)
        if push_to_hub:
            if not repo_id:
                raise ValueError("push_to_hub=True needs repo_id='org/name'")
            self.push_to_hub(repo_id, config=config, metrics=metrics, model_card_kwargs=model_card_kwargs,
                             **push_kwargs)
        return folder

    def push_to_hub(  # type: ignore[override]
        self,
        repo_id: str,
        *,
        config: dict[str, Any] | None = None,
        model_name: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | list | None = None,
        model_card_kwargs: Mapping[str, Any] | None = None,
        **push_kwargs: Any,
    ) -> str:
        """Upload the model (config, safetensors weights, model card) to the Hub repository ``repo_id``.

        Fails within seconds, with what to do instead, when the Hub is unreachable or
        ``HF_HUB_OFFLINE`` is set. Other keyword arguments go to ``huggingface_hub`` (``private``,
        ``token``, ``branch``, ``commit_message``, ...). Returns the commit URL.
        """
        _require_network(repo_id)
        config = config if config is not None else self.hub_config(model_name, model_kwargs, metrics)
        card_kwargs = _card_kwargs(config, metrics, model_card_kwargs, repo_id)
        return super().push_to_hub(repo_id, config=config, model_card_kwargs=card_kwargs, **push_kwargs)

    def generate_model_card(self, *args: Any, config: Mapping[str, Any] | None = None, **kwargs: Any) -> ModelCard:
        """The model card (:func:`inharmony.models.model_card.render_model_card`) instead of the mixin's template."""
        from .model_card import render_model_card  # markdown tables (inharmony.metrics): only when saving

        return ModelCard(render_model_card(config if config is not None else self.hub_config(), **kwargs))

    # ------------------------------------------------------------------ load

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike[str],
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        token: str | bool | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        map_location: str | torch.device = "cpu",
        strict: bool = True,
        expected_architecture: str | None = None,
    ) -> Any:
        """Load a folder or Hub repository written by :meth:`save_pretrained`; it must hold this class.

        Called on :class:`HubMixin` itself (as :func:`inharmony.from_pretrained` does), any
        registered architecture is accepted.

        Args:
            pretrained_model_name_or_path: A local folder, or a Hub id ``"org/name"``.
            revision: Hub revision (branch, tag or commit); pin a commit for reproducible results.
            cache_dir: Hugging Face cache to use instead of the default.
            token: Hub token for private repositories.
            force_download: Download again even if cached.
            local_files_only: Only look in the local cache (also implied by ``HF_HUB_OFFLINE=1``).
            map_location: Device to put the weights on.
            strict: Refuse weights with missing or unexpected keys (the default; keys are named).
            expected_architecture: Raise unless the folder holds this registered architecture.

        Returns:
            The model in eval mode, with ``model.pretrained_cfg`` from the config.

        Raises:
            HubConfigError: no or malformed ``config.json``, a newer library's format, another
                architecture or class.
            CheckpointError: weights missing or not matching the architecture (keys named).
            HubUnreachableError: a Hub id that is not cached while offline or unreachable (within seconds).
        """
        source = os.fspath(pretrained_model_name_or_path)
        download = {"revision": revision, "cache_dir": cache_dir, "token": token,
                    "force_download": force_download, "local_files_only": local_files_only}  # fmt: skip
        config_path = _config_file(source, download)
        config = read_config(config_path)
        if expected_architecture is not None:
            wanted, _ = split_model_name(expected_architecture)
            if config["architecture"] != wanted:
                raise HubConfigError(
                    f"{source} holds weights of {config['architecture']!r}, not {wanted!r}; "
                    f"use --model {config['architecture']} (or inharmony.from_pretrained('{source}'))"
                )
        return cls._from_pretrained(
            model_id=source,
            config=config,
            map_location=str(map_location),
            strict=strict,
            **download,
        )

    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | os.PathLike[str] | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict[str, Any] | None = None,
        map_location: str = "cpu",
        strict: bool = True,
    ) -> Any:
        """Build the architecture of ``config`` through the registry and load its weights."""
        if config is None:
            raise HubConfigError(f"{model_id} has no {CONFIG_NAME}; was it written by inharmony's save_pretrained?")
        if os.path.isdir(model_id):
            weights = os.path.join(model_id, WEIGHTS_NAME)
            if not os.path.isfile(weights):
                raise CheckpointError(f"{model_id} has {CONFIG_NAME} but no {WEIGHTS_NAME}")
        else:
            weights = download_hub_file(
                model_id, WEIGHTS_NAME, offline_hint="pass a local folder written by save_pretrained instead",
                revision=revision, cache_dir=cache_dir, token=token, force_download=force_download,
                local_files_only=local_files_only,
            )  # fmt: skip
        model = _build_and_load(config, weights, strict, model_id)
        if not isinstance(model, cls):
            raise HubConfigError(
                f"{model_id} holds a {type(model).__name__} ({config['architecture']!r}), not a {cls.__name__}; "
                "load it with inharmony.from_pretrained(...)"
            )
        return model.to(map_location).eval()


def from_pretrained(pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> nn.Module:
    """Load any registered architecture saved by ``save_pretrained``, from a folder or a Hub id.

    Takes the arguments of :meth:`HubMixin.from_pretrained`.

    Example:
        >>> model = inharmony.from_pretrained("out/dirl18")  # doctest: +SKIP
        >>> model = inharmony.from_pretrained("org/dirl-ihd", revision="<commit>")  # doctest: +SKIP
    """
    return HubMixin.from_pretrained(pretrained_model_name_or_path, **kwargs)


def _hub_model(model: nn.Module) -> HubMixin:
    if not isinstance(model, HubMixin):
        raise ValueError(
            f"the constructor arguments of this {type(model).__name__} were not recorded (its class does not "
            "inherit inharmony.models.HubMixin); build it with inharmony.create_model"
        )
    return model


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike[str], **kwargs: Any) -> Path:
    """``model.save_pretrained(save_directory, **kwargs)`` for any model (see :meth:`HubMixin.save_pretrained`).

    Raises:
        ValueError: ``model`` does not inherit :class:`HubMixin`, so its constructor arguments are unknown.

    Example:
        >>> folder = save_pretrained(inharmony.create_model("dirl_resnet18"), "out/dirl18")  # doctest: +SKIP
    """
    return _hub_model(model).save_pretrained(save_directory, **kwargs)


def push_to_hub(model: nn.Module, repo_id: str, **kwargs: Any) -> str:
    """``model.push_to_hub(repo_id, **kwargs)`` for any model (see :meth:`HubMixin.push_to_hub`).

    Example:
        >>> url = push_to_hub(model, "my-org/dirl-ihd", metrics="metrics.json")  # doctest: +SKIP
    """
    return _hub_model(model).push_to_hub(repo_id, **kwargs)


# ---------------------------------------------------------------------- helpers


def _card_kwargs(
    config: Mapping[str, Any], metrics: Any, extra: Mapping[str, Any] | None, repo_id: str | None
) -> dict[str, Any]:
    from .model_card import normalise_metrics

    kwargs = dict(extra or {})
    kwargs["config"] = config
    kwargs.setdefault("metrics", normalise_metrics(metrics) or None)
    kwargs.setdefault("reference_metrics", dict(get_pretrained_cfg(config["architecture"]).metrics))
    if repo_id:
        kwargs.setdefault("repo_id", repo_id)
    return kwargs


def _require_network(repo_id: str) -> None:
    """Fail in seconds, not after the Hub client's retries, when uploading is impossible."""
    later = (
        f"Write the folder only (`inharmony push ... --out DIR --dry-run`) and upload it later with "
        f"`hf upload {repo_id} DIR`."
    )
    if offline_mode():
        raise HubUnreachableError(f"cannot upload {repo_id!r}: HF_HUB_OFFLINE is set. Unset it, or: {later}")
    if not hub_is_reachable(3.0):
        raise HubUnreachableError(f"cannot upload {repo_id!r}: the Hugging Face Hub could not be reached. {later}")


def _config_file(source: str, download: dict[str, Any]) -> str:
    """The path of ``config.json``: in a local folder, or downloaded from the Hub (fast-fail offline)."""
    if os.path.isfile(source):
        raise HubConfigError(
            f"{source} is a file; from_pretrained wants a folder holding {CONFIG_NAME} and {WEIGHTS_NAME} "
            f"(or a Hub id). For a single weights file use inharmony.load('<model>', weights='{source}')."
        )
    if os.path.isdir(source):
        path = os.path.join(source, CONFIG_NAME)
        if not os.path.isfile(path):
            raise HubConfigError(f"{source} has no {CONFIG_NAME}; was it written by inharmony's save_pretrained?")
        return path
    if not looks_like_hub_id(source):
        raise FileNotFoundError(f"{source} is neither an existing folder nor a Hub id of the form 'org/name'")
    return download_hub_file(
        source, CONFIG_NAME, offline_hint="pass a local folder written by save_pretrained instead of a Hub id",
        **download,
    )  # fmt: skip


def _check_fits_file(config: dict[str, Any], weights: str | os.PathLike[str], source: str) -> None:
    """Refuse arguments that build a network far larger than the weights file, before allocating it.

    Each argument is within its bounds (``read_config``), yet together they may describe billions of
    parameters: built on the ``meta`` device (nothing allocated), the network must have no more numbers
    than the file holds at two bytes each (half precision), or the strict load would fail anyway.
    """
    with torch.device("meta"):
        probe = create_model(config["architecture"], **config["model_args"])
    numbers = sum(t.numel() for t in probe.state_dict().values())
    size = os.path.getsize(weights)
    if 2 * numbers > size + (1 << 20):
        raise HubConfigError(
            f"{os.path.join(source, CONFIG_NAME)}: model_args {config['model_args']} "
            f"describe a {config['architecture']!r} of {numbers:,} numbers ({4 * numbers / 1e9:.1f} GB), but "
            f"{os.path.basename(os.fspath(weights))} holds {size:,} bytes: they do not belong together "
            "(the config.json was edited or comes from another model); save the model again with save_pretrained"
        )


def _build_and_load(
    config: dict[str, Any], weights: str | os.PathLike[str], strict: bool, source: str = "the hub folder"
) -> nn.Module:
    newer = f"{config['_newer']}. " if config.get("_newer") else ""
    try:
        if strict:
            _check_fits_file(config, weights, source)
        model = create_model(config["architecture"], **config["model_args"])
    except (TypeError, ValueError) as err:
        if isinstance(err, HubConfigError):
            raise
        raise HubConfigError(
            f"{newer}{os.path.join(source, CONFIG_NAME)}: cannot build {config['architecture']!r} from model_args "
            f"{config['model_args']}: {err}"
        ) from err
    state = read_state_dict(weights)  # says what a non-weights file is (a Git LFS pointer, a web page, ...)
    try:
        if strict:
            load_state_dict_strict(model, state, os.fspath(weights))
        else:
            model.load_state_dict(state, strict=False)
    except CheckpointError as err:
        raise CheckpointError(f"{newer}{err}") from err
    # read_config checked every field: this cannot fail
    model.pretrained_cfg = PretrainedCfg.from_stored(
        config.get("pretrained_cfg", {}), get_pretrained_cfg(config["architecture"])
    )
    config.pop("_newer", None)
    return model
