"""Tool commands: a jsonargparse parser built from a typed function's signature and docstring.

A :class:`Tool` names a function (``"module:function"``, imported only when the command runs) whose
type hints and Google docstring are the one declaration of the command's options: the parser is
:func:`jsonargparse.auto_cli` over that function. A :class:`Group` gathers tools under one word
(``inharmony data check``). The classic spellings README shows keep working on top of jsonargparse's:
dashes in option names (``--max-side`` for ``--max_side``), a boolean option alone for ``true``
(``--decode``) and ``--no-OPTION`` for ``false``, a repeated list option (``--model a --model b``),
positional inputs (``inharmony predict a.jpg b.jpg``), and options after ``--`` for ``--rest``-style
parameters (``inharmony demo -- --trainer.max_steps 5``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonargparse

from .exit_codes import EXIT_OK, EXIT_USAGE, error

__all__ = ["Group", "Tool", "argument_message", "doc_example", "normalize_argv", "resolve", "run_group", "run_tool"]

_NO_VALUE = {"help", "print_config"}
_SYNTAX = (
    "Options also take the spellings --max-side (dashes), --decode (a boolean alone means true)\n"
    "and --no-decode (false); repeat a list option to add items."
)


@dataclass(frozen=True)
class Tool:
    """A command backed by one typed function.

    Args:
        target: ``"module:function"``; its signature and docstring declare the options.
        summary: One line for ``inharmony --help`` (which imports nothing).
        example: A command line shown in ``--help``.
        report: ``"module:function"`` called with the target's return value and arguments, which
            prints the outcome and returns the exit code; without it the target returns the exit code.
        positional: Parameters given without an option name (a ``list`` one takes every loose word).
        rest: A ``list[str]`` parameter that receives everything after ``--``.
        aliases: Extra option spellings, e.g. ``{"--quiet": ("--progress=false",)}``.
        defaults: Defaults that differ from the function's for command-line use.
    """

    target: str
    summary: str
    example: str
    report: str | None = None
    positional: tuple[str, ...] = ()
    rest: str | None = None
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Group:
    """Several tools under one word: ``inharmony <name> <tool> ...``."""

    summary: str
    tools: Mapping[str, Tool] | str
    """The tools, or ``"module:function"`` returning them (when discovering them costs imports)."""

    def resolved_tools(self) -> Mapping[str, Tool]:
        return self.tools if isinstance(self.tools, Mapping) else resolve(self.tools)()


def resolve(target: str) -> Any:
    """Import ``"package.module:attribute"``."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _unwrap_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _kinds(function: Callable) -> tuple[set[str], set[str], set[str]]:
    """Names of the function's parameters: all, ``bool`` ones, ``list``/``Sequence`` ones."""
    hints = typing.get_type_hints(function)
    names = set(inspect.signature(function).parameters)
    bools = {n for n in names if _unwrap_optional(hints.get(n)) is bool}
    lists = {n for n in names if typing.get_origin(_unwrap_optional(hints.get(n))) in (list, Sequence)}
    return names, bools, lists


def normalize_argv(argv: Sequence[str], function: Callable, tool: Tool) -> list[str]:
    """Rewrite the classic spellings (see the module docstring) into jsonargparse's."""
    argv = list(argv)
    rest: list[str] | None = None
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1 :]
    argv = [part for token in argv for part in tool.aliases.get(token, (token,))]
    names, bools, lists = _kinds(function)
    out: list[str] = []
    loose: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("--") or len(token) == 2:
            (out if token.startswith("-") and len(token) > 1 and not token[1].isdigit() else loose).append(token)
            continue
        name, eq, value = token[2:].partition("=")
        name = name.replace("-", "_")
        if not eq and name.startswith("no_") and name[3:] in bools and name not in names:
            out.append(f"--{name[3:]}=false")
        elif not eq and name in bools:
            if i < len(argv) and argv[i].lower() in ("true", "false"):
                value, i = argv[i], i + 1
            out.append(f"--{name}={value or 'true'}")
        elif eq:
            out.append(f"--{name}{'+' if name in lists and not value.startswith('[') else ''}={value}")
        elif name in _NO_VALUE or i >= len(argv) or (name not in names and argv[i].startswith("-")):
            out.append(f"--{name}")
        else:
            value, i = argv[i], i + 1
            plus = "+" if name in lists and not value.startswith("[") else ""
            out += [f"--{name}{plus}", value]
    for name in tool.positional:
        if name in lists and loose:
            out.insert(0, json.dumps(loose))
            loose = []
        elif loose:
            out.insert(0, loose.pop(0))
    if rest is not None and tool.rest:
        out.append(f"--{tool.rest}={json.dumps(rest)}")
    return out + loose + (rest if rest is not None and not tool.rest else [])


_PARSER_KEY = re.compile(r'Parser key "([^"]+)":\s*(.*)', re.S)
_EXPECTED = re.compile(r"Expected a (.+?)\. Got value: (.*)", re.S)
_KINDS = {"<class 'int'>": "an integer", "<class 'float'>": "a number", "<class 'bool'>": "true or false",
          "<class 'str'>": "a string"}  # fmt: skip


def argument_message(message: str) -> str:
    """jsonargparse's error for one option, as one line naming ``--option`` and the value it refused.

    Example:
        >>> print(argument_message('Parser key "num_downs": Expected a typing.Literal[5, 8]. Got value: 9'))
        --num-downs '9': expected one of 5, 8
    """
    found = _PARSER_KEY.search(message)
    if found is None:
        return " ".join(message.split())
    option, detail = "--" + found[1].replace("_", "-"), " ".join(found[2].split())
    expected = _EXPECTED.search(detail)
    if expected is None:
        return f"{option}: {detail[:300]}"
    kind = expected[1].strip()
    if kind.startswith("typing.Literal[") and kind.endswith("]"):
        kind = "one of " + kind.removeprefix("typing.Literal[").removesuffix("]")
    return f"{option} {expected[2].strip()[:80]!r}: expected {_KINDS.get(kind, kind)}"


def doc_example(function: Callable) -> str:
    """The first line of the ``Example:`` section of ``function``'s docstring (a command line)."""
    doc = inspect.getdoc(function) or ""
    _, found, after = doc.partition("\nExample:\n")
    return after.strip().splitlines()[0].strip() if found and after.strip() else ""


def _epilog(tool: Tool) -> str:
    return f"example:\n  {tool.example}\n\n{_SYNTAX}"


def run_tool(prog: str, tool: Tool, argv: Sequence[str]) -> int:
    """Parse ``argv`` with a parser made from ``tool.target`` and run it; returns the exit code.

    Argument errors print ``inharmony: error: ...`` and return :data:`~inharmony.cli.EXIT_USAGE`.
    """
    function = resolve(tool.target)
    doc = inspect.getdoc(function) or ""
    description = doc.split("\n\nArgs:", 1)[0].split("\n\nExample", 1)[0]
    parser = jsonargparse.auto_parser(
        function,
        as_positional=bool(tool.positional),
        set_defaults=dict(tool.defaults) or None,
        prog=prog,
        description=description,
        epilog=_epilog(tool),
        formatter_class=_HelpFormatter,
        exit_on_error=False,
    )
    try:
        config = parser.instantiate(parser.parse_args(normalize_argv(argv, function, tool)))
    except argparse.ArgumentError as err:
        return error(argument_message(str(err)), f"see '{prog} --help'")
    kwargs = {name: config[name] for name in inspect.signature(function).parameters if name in config}
    result = function(**kwargs)
    if tool.report:
        return int(resolve(tool.report)(result, **kwargs) or EXIT_OK)
    return int(result or EXIT_OK)


def run_group(prog: str, group: Group, argv: Sequence[str]) -> int:
    """Choose the group's tool from ``argv[0]`` and run it with the rest."""
    tools = group.resolved_tools()
    if argv and argv[0] in tools:
        return run_tool(f"{prog} {argv[0]}", tools[argv[0]], argv[1:])
    parser = argparse.ArgumentParser(
        prog=prog,
        description=group.summary,
        epilog="examples:\n" + "\n".join(f"  {t.example}" for t in tools.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        exit_on_error=False,
    )
    sub = parser.add_subparsers(dest="tool", metavar="TOOL", required=True)
    for name, tool in tools.items():
        sub.add_parser(name, help=tool.summary, add_help=False)
    if not argv:
        parser.print_usage(sys.stderr)
        return error(f"give a tool: {', '.join(tools)}", f"see '{prog} --help'")
    try:
        parser.parse_args(argv)  # prints help and exits, or fails: the tool word is missing or unknown
    except argparse.ArgumentError as err:
        return error(str(err), f"see '{prog} --help'")
    return EXIT_USAGE


class _HelpFormatter(jsonargparse.DefaultHelpFormatter):
    """jsonargparse's help, keeping the line breaks of the description and the epilog."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(indent + line for line in text.splitlines())
