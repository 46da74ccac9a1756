"""The layout stays honest: each folder one concern, small modules, no hidden imports, a model is one file.

The rules of ``../shared/DESIGN.md`` §2 as checks that fail when someone breaks them: the top level holds
only the entries the design names, no module grows past 600 lines, no module reaches another through a
dotted string (an import no reader sees) except the two lazy tables at the top of the graph, and a new
architecture written to ONE file outside the package (with its loss and a converter for its foreign
weights) works everywhere a registered model should, with no other edit.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import inharmony

PACKAGE_DIR = Path(inharmony.__file__).parent
REPO = PACKAGE_DIR.parent.parent
MAX_LINES = 600

TOP_LEVEL = {
    "__init__.py", "version.py", "errors.py", "constants.py", "files.py", "imageio", "preprocessing.py",
    "models", "losses", "metrics", "data", "inference", "training", "cli", "app", "benchmarks",
}  # fmt: skip
# Lazy tables at the top of the import graph: nothing imports them, so a string there hides no dependency.
LAZY_TABLES = {"__init__.py", "cli/__init__.py", "cli/commands.py"}
_MODULE_NAMES = "|".join(sorted(name.removesuffix(".py") for name in TOP_LEVEL if name != "__init__.py"))
# A dotted name into the package ("inharmony.losses.DIRLLoss", "inharmony.cli.demo:demo"); not a file name.
_DOTTED = re.compile(rf"^inharmony\.({_MODULE_NAMES})(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?$")


def _sources() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def test_top_level_holds_only_the_designed_entries():
    found = {p.name for p in PACKAGE_DIR.iterdir() if p.name != "__pycache__" and not p.name.startswith(".")}
    assert found == TOP_LEVEL, f"unexpected: {sorted(found - TOP_LEVEL)}, missing: {sorted(TOP_LEVEL - found)}"


def test_every_folder_is_a_package_with_a_docstring():
    for folder in (p for p in PACKAGE_DIR.rglob("*") if p.is_dir() and p.name not in ("__pycache__", "examples")):
        init = folder / "__init__.py"
        assert init.is_file(), f"{folder} is not a package"
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), f"{init} has no docstring"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_no_module_is_over_the_limit(path: Path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE_DIR)} has {lines} lines; split it by job"


def _string_constants(tree: ast.AST) -> list[ast.Constant]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_module_reaches_another_through_a_dotted_string():
    offenders = []
    for path in _sources():
        relative = path.relative_to(PACKAGE_DIR).as_posix()
        if relative in LAZY_TABLES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _string_constants(tree):
            if _DOTTED.match(node.value):
                offenders.append(f"{relative}:{node.lineno} {node.value!r}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                    offenders.append(f"{relative}:{node.lineno} {name}({node.args[0].value!r})")
    assert not offenders, "import it, so that the dependency shows: " + "; ".join(offenders)


def test_the_check_above_can_fail():
    tree = ast.parse('x = "inharmony.losses.DIRLLoss"\n"""a docstring naming inharmony.models"""\ny = "inharmony.json"')
    assert [n.value for n in _string_constants(tree) if _DOTTED.match(n.value)] == ["inharmony.losses.DIRLLoss"]


def test_lazy_tables_name_modules_that_exist():
    from inharmony.cli import COMMANDS, Group, Tool

    targets = [inharmony._LAZY[name] + ":" + name for name in inharmony._LAZY]
    for entry in COMMANDS.values():
        tools = entry.resolved_tools().values() if isinstance(entry, Group) else [entry]
        targets += [t for tool in tools if isinstance(tool, Tool) for t in (tool.target, tool.report) if t]
    for target in targets:
        module, _, attribute = target.partition(":")
        assert hasattr(importlib.import_module(module), attribute), target


def test_config_class_paths_resolve():
    paths = []
    for config in sorted((REPO / "configs").glob("*.yaml")):
        text = config.read_text(encoding="utf-8")
        paths += [(config.name, m) for m in re.findall(r"class_path:\s*([\w.]+)", text)]
    assert paths, "no class_path found in configs/"
    for config, dotted in paths:
        module, _, attribute = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), attribute), f"{config}: {dotted}"
    assert all(yaml.safe_load((REPO / "configs" / name).read_text()) for name, _ in paths)


# --------------------------------------------------------------------------- a model is one file

TOY_FILE = '''
"""A contributor's new localizer family, all in this one file."""

import torch
from torch import nn

from inharmony.losses import MaskLoss, register_loss
from inharmony.models import HubMixin, PretrainedCfg, check_input, create_model, register_model
from inharmony.models.converters import Converter, register_converter


class OneFileNet(HubMixin, nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(x, 4)
        return {"mask": torch.sigmoid(self.body(x))}


@register_model(pretrained_cfgs=[PretrainedCfg("one_file_net", input_size=(3, 32, 32), size_multiple=4)])
def one_file_net(**kwargs) -> OneFileNet:
    """A toy localizer registered from outside the package."""
    return OneFileNet(**kwargs)


register_loss("one_file_net")(MaskLoss)


def _is_toy_format(path: str) -> bool:
    return str(path).endswith(".toyweights")


def _load_toy_format(path: str, architecture: str, *, trust: bool = False, **kwargs) -> nn.Module:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(architecture)
    model.load_state_dict({key.removeprefix("net."): value for key, value in state.items()})
    return model.eval()


register_converter(
    Converter("one-file-toy", "a toy foreign format (net.* keys)", _is_toy_format, _load_toy_format, ("one_file_net",))
)
'''


@pytest.fixture
def one_file_model(tmp_path, monkeypatch):
    """Import TOY_FILE from tmp_path; undo its registrations afterwards."""
    from inharmony.losses import _registry as loss_registry
    from inharmony.models import _registry
    from inharmony.models.converters import _registry as converter_registry

    (tmp_path / "one_file_family.py").write_text(textwrap.dedent(TOY_FILE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = [dict(t) for t in (_registry._ENTRYPOINTS, _registry._PRETRAINED_CFGS, _registry._DEFAULT_TAGS)]
    saved_converters = dict(converter_registry._CONVERTERS)
    saved_losses = dict(loss_registry._LOSSES)
    module = importlib.import_module("one_file_family")
    yield module
    tables = (_registry._ENTRYPOINTS, _registry._PRETRAINED_CFGS, _registry._DEFAULT_TAGS)
    for table, before in zip(tables, saved, strict=True):
        table.clear()
        table.update(before)
    converter_registry._CONVERTERS.clear()
    converter_registry._CONVERTERS.update(saved_converters)
    loss_registry._LOSSES.clear()
    loss_registry._LOSSES.update(saved_losses)
    sys.modules.pop("one_file_family", None)


def test_a_model_written_to_one_file_works_everywhere(one_file_model, tmp_path):
    import numpy as np
    import torch

    from inharmony.app.models import localizer_models
    from inharmony.inference import Predictor
    from inharmony.losses import MaskLoss, loss_for_model
    from inharmony.models import create_model, list_models, torch_hub_entrypoints

    name = "one_file_net"
    assert name in list_models(task="localization") and name not in list_models(task="harmonization")
    assert name in localizer_models()  # the web page's model list
    assert isinstance(loss_for_model(name), MaskLoss)

    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(2, 3, 32, 36)
    with torch.no_grad():
        expected = model(x)["mask"]
        hub_model = torch_hub_entrypoints()[name]()
        assert hub_model.pretrained_cfg.name.startswith(name) and not hub_model.training

        folder = model.save_pretrained(tmp_path / "hub")  # the Hub format round trip
        assert torch.equal(inharmony.load(name, weights=folder)(x)["mask"], expected)

        foreign = tmp_path / "weights.toyweights"  # the converter registered in the same file
        torch.save({f"net.{k}": v for k, v in model.state_dict().items()}, foreign)
        assert torch.equal(inharmony.load(name, weights=foreign)(x)["mask"], expected)

    photo = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    mask = Predictor(model, size=32, device="cpu").predict(photo)
    assert mask.shape == (40, 50) and 0.0 < float(mask.min()) <= float(mask.max()) < 1.0
