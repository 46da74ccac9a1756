"""Sane values of every model setting a file can hold: constructor arguments and :class:`PretrainedCfg` fields.

A hub folder's ``config.json``, a Lightning checkpoint's hyper-parameters and a command line all end up as
constructor arguments of a registered model and as fields of its configuration. A typo or a hostile file must
be refused with the field named, before anything is allocated: a width of 10⁹ would fail in the allocator, a
depth of 10⁶ would hang, a std of 0 would turn every photo into NaN. Each argument's type is read from the
model class's annotations; its range is the :class:`Bound` declared next to the model's registration
(``register_model(..., arg_bounds={...})``). The registry calls these checks: this module is not a caller's.

Example:
    >>> check_arguments({"width": 10**9}, {"width": int}, {"width": Bound(1, 1024)})
    Traceback (most recent call last):
    ...
    ValueError: 'width' must be at most 1024, got 1000000000
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_SIDE", "Bound", "check_arguments", "check_cfg_values", "constructor_hints"]

MAX_SIDE = 4096
"""Largest height or width a configuration may ask images to be resized to (4096² RGB floats: 200 MB)."""

_SHOWN = 60  # characters of a refused value quoted in a message (a hostile file may hold a huge string)


@dataclass(frozen=True)
class Bound:
    """The sane values of one constructor argument.

    Attributes:
        low: Smallest number allowed (of the value, or of each item of a list); ``None``: no limit.
        high: Largest number allowed; ``None``: no limit.
        choices: The only values allowed (e.g. the names a string argument takes); empty: any.
        length: ``(fewest, most)`` items of a list argument.
    """

    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    length: tuple[int, int] | None = None

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (already of the declared type), or ``None``."""
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(repr(c) for c in self.choices)}"
        if isinstance(value, (list, tuple)):
            if self.length is not None and not self.length[0] <= len(value) <= self.length[1]:
                fewest, most = self.length
                count = f"{fewest}" if fewest == most else f"{fewest} to {most}"
                return f"must hold {count} items"
            return next((f"item {i} {p}" for i, v in enumerate(value) if (p := self._range(v))), None)
        return self._range(value)

    def _range(self, value: Any) -> str | None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        if self.low is not None and value < self.low:
            return f"must be at least {self.low:g}" if isinstance(self.low, float) else f"must be at least {self.low}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high:g}" if isinstance(self.high, float) else f"must be at most {self.high}"
        return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 5] + " …" + text[-3:]


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as JSON or a caller gives it) is of the annotated type ``hint``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None) or hint is None:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        items = [a for a in typing.get_args(hint) if a is not Ellipsis] or [Any]
        return all(_matches(v, items[0]) for v in value)
    return True  # a type this check does not know: the constructor checks it


def _described(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_described(h) for h in typing.get_args(hint))
    if origin in (list, tuple, collections.abc.Sequence):
        items = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"a list of {_described(items[0]).removeprefix('an ').removeprefix('a ')}s" if items else "a list"
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string", type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


@functools.lru_cache(maxsize=256)
def constructor_hints(entry: Callable[..., Any]) -> dict[str, Any] | None:
    """``{argument: annotated type}`` of the class an entry function returns; ``None`` if it cannot be told.

    The entry function must annotate its return type with the model class (``def dirl(**kwargs) -> DIRL``);
    a class whose ``__init__`` takes ``**kwargs`` accepts any name, so ``None`` is returned for it too.
    """
    try:
        target = typing.get_type_hints(entry).get("return")
        if not isinstance(target, type):
            return None
        hints = typing.get_type_hints(target.__init__)
        parameters = list(inspect.signature(target.__init__).parameters.values())[1:]
    except (NameError, TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name: hints.get(p.name, Any) for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def check_arguments(
    args: Mapping[str, Any], hints: Mapping[str, Any] | None, bounds: Mapping[str, Bound], *, who: str = "the model"
) -> None:
    """Refuse an argument that ``who`` does not take, is not of its annotated type, or is out of its bound.

    Args:
        args: The constructor arguments given (only these are checked; defaults are the code's own).
        hints: ``{name: type}`` from :func:`constructor_hints`; ``None``: names and types are not checked.
        bounds: ``{name: Bound}`` declared with the registration.
        who: The model, for the message of an unknown name.

    Raises:
        TypeError: a name the constructor does not take (as Python says it).
        ValueError: a value of the wrong type or out of range, ``'name' must be ..., got ...``.
    """
    for name, value in args.items():
        if hints is not None and name not in hints:
            raise TypeError(f"{who} takes no argument {name!r} (it takes: {', '.join(hints)})")
        if hints is not None and not _matches(value, hints[name]):
            raise ValueError(f"{name!r} must be {_described(hints[name])}, got {_shown(value)}")
        bound = bounds.get(name)
        problem = bound.problem(value) if bound is not None and value is not None else None
        if problem:
            raise ValueError(f"{name!r} {problem}, got {_shown(value)}")


# ---------------------------------------------------------------------- PretrainedCfg fields

_TEXT_FIELDS = ("architecture", "tag", "paper", "paper_url", "license", "notes", "task", "weights_format")


def _numbers(value: Any, count: int | None, low: float, high: float, what: str) -> str | None:
    if not isinstance(value, (list, tuple)) or (count is not None and len(value) != count):
        return f"must be a list of {count} {what}s" if count is not None else f"must be a list of {what}s"
    for item in value:
        if not isinstance(item, (int, float)) or isinstance(item, bool) or not math.isfinite(item):
            return f"must hold {what}s only"
        if not low <= item <= high:
            return f"must hold {what}s in [{low:g}, {high:g}]"
    return None


def check_cfg_values(values: Mapping[str, Any], tasks: tuple[str, ...]) -> None:
    """Refuse a :class:`PretrainedCfg` field of the wrong type or out of its sane range.

    The input size is at most :data:`MAX_SIDE` a side; the normalisation's std is at least 0.001 (0 would
    divide every pixel by zero); the size multiple is 1 to 1024; ``mean`` and ``std`` have one value per
    input channel.

    Raises:
        ValueError: ``'field' must be ..., got ...``.
    """
    problems: dict[str, str | None] = {
        name: None if isinstance(values[name], str) else "must be a string" for name in _TEXT_FIELDS
    }
    for name in ("hf_hub_id", "revision"):
        problems[name] = None if values[name] is None or isinstance(values[name], str) else "must be a string or null"
    size = values["input_size"]
    problems["input_size"] = _numbers(size, 3, 1, MAX_SIDE, "integer") or (
        None if all(isinstance(v, int) for v in size) and 1 <= size[0] <= 4 else
        "must be [channels (1 to 4), height, width], integers"
    )  # fmt: skip
    channels = size[0] if problems["input_size"] is None else 3
    problems["mean"] = _numbers(values["mean"], channels, -10.0, 10.0, "number")
    problems["std"] = _numbers(values["std"], channels, 1e-3, 100.0, "number")
    multiple = values["size_multiple"]
    valid = isinstance(multiple, int) and not isinstance(multiple, bool) and 1 <= multiple <= 1024
    problems["size_multiple"] = None if valid else "must be an integer from 1 to 1024"
    problems["task"] = problems["task"] or (None if values["task"] in tasks else f"must be one of {', '.join(tasks)}")
    args = values["download_args"]
    valid = isinstance(args, (list, tuple)) and all(isinstance(a, str) for a in args)
    problems["download_args"] = None if valid else "must be a list of argument names"
    metrics = values["metrics"]
    valid = isinstance(metrics, Mapping) and all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for k, v in metrics.items()
    )
    problems["metrics"] = None if valid else "must map score names to finite numbers"
    for name, problem in problems.items():
        if problem:
            raise ValueError(f"{name!r} {problem}, got {_shown(values[name])}")
