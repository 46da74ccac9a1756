"""The package's structure: the model layer's dependencies, no import cycle, one home per fact.

The import graph is read from the source (every ``import``, top-level or inside a function,
absolute or relative), so a lazy import cannot hide a cycle or a dependency.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import inharmony

PACKAGE_DIR = Path(inharmony.__file__).parent
SRC = PACKAGE_DIR.parent
REPO = SRC.parent
TRAINING_STACK = ("lightning", "pytorch_lightning", "torchmetrics", "albumentations", "cv2", "litdata")


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (path, is_package)}`` for every module of inharmony."""
    found = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, bool]]:
    """``(imported module, is inharmony's own)`` for every import statement of module ``name``."""
    path, is_package = MODULES[name]
    base = name.split(".") if is_package else name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule `pkg.sub` when there is one.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        else:
            continue
        for target in targets:
            own = target == "inharmony" or target.startswith("inharmony.")
            while own and target not in MODULES:
                target = target.rpartition(".")[0]
            out.append((target, own))
    return out


def _graph() -> dict[str, set[str]]:
    return {name: {t for t, own in _imports(name) if own and t != name} for name in MODULES}


def test_graph_reader_sees_relative_and_function_level_imports():
    # The reader must be able to fail: models/_hub.py imports the model card only inside a function.
    assert "inharmony.models.model_card" in _graph()["inharmony.models._hub"]
    assert "inharmony.models._registry" in _graph()["inharmony.models._builder"]


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_model_layer_never_reaches_the_training_stack():
    """Everything models/ imports, directly or through other inharmony modules, lazily or not."""
    graph = _graph()
    reachable, todo = set(), [m for m in MODULES if m.startswith("inharmony.models")]
    while todo:
        name = todo.pop()
        if name not in reachable:
            reachable.add(name)
            todo.extend(graph[name])
    offenders = [
        f"{name} imports {target}"
        for name in sorted(reachable)
        for target, own in _imports(name)
        if not own and target.split(".")[0] in TRAINING_STACK
    ]
    assert not offenders, offenders
    models = [name for name in MODULES if name.startswith("inharmony.models")]
    models_roots = {target.split(".")[0] for name in models for target, _ in _imports(name)}
    allowed = {"torch", "timm", "huggingface_hub", "safetensors", "packaging", "inharmony"} | set(
        sys.stdlib_module_names
    )
    assert models_roots <= allowed, sorted(models_roots - allowed)


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def test_no_private_module_or_name_imported_across_packages():
    offenders = []
    for name, (path, is_package) in MODULES.items():
        here = name if is_package else name.rpartition(".")[0]
        for target, own in _imports(name):
            parts = target.split(".")
            private = [i for i, part in enumerate(parts) if _is_private(part)]
            if own and private and ".".join(parts[: private[0]]) != here:
                offenders.append(f"{name} -> {target}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level > 1 or (node.module or "").startswith("inharmony")):
                names = [a.name for a in node.names if _is_private(a.name)]
                if names and node.level != 1:
                    offenders.append(f"{name} -> {node.module}: {', '.join(names)}")
    assert not offenders, offenders


def test_every_public_exception_lives_in_errors():
    defined_elsewhere = []
    for name, (path, _) in MODULES.items():
        if name == "inharmony.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    defined_elsewhere.append(f"{name}.{node.name}")
    assert not defined_elsewhere, defined_elsewhere
    from inharmony import errors

    for exported in errors.__all__:
        value = getattr(errors, exported)
        assert not isinstance(value, type) or issubclass(value, errors.InharmonyError), exported


def test_hubconf_entry_points_are_the_registered_models():
    sys.path.insert(0, str(REPO))
    try:
        import hubconf
    finally:
        sys.path.remove(str(REPO))
    entries = sorted(n for n, v in vars(hubconf).items() if callable(v) and not n.startswith("_"))
    assert entries == inharmony.list_models()
    for name in entries:
        assert str(inharmony.get_pretrained_cfg(name).size_multiple) in getattr(hubconf, name).__doc__


def test_models_save_and_load_without_the_training_stack(tmp_path):
    """A torch.hub user has torch, timm, huggingface_hub and safetensors only: build, save (card included), load."""
    code = (
        "import sys\n"
        f"for name in {TRAINING_STACK!r}: sys.modules[name] = None  # importing any of them now fails\n"
        "import torch, inharmony\n"
        "model = inharmony.create_model('dirl_resnet18', decoder_channels=8).eval()\n"
        f"folder = model.save_pretrained({str(tmp_path / 'm')!r}, metrics={{'ap': 0.7, 'f1': 0.6, 'iou': 0.5}})\n"
        "loaded = inharmony.from_pretrained(folder)\n"
        "x = torch.randn(1, 3, 32, 32)\n"
        "with torch.no_grad():\n"
        "    assert torch.equal(loaded(x)['mask'], model(x)['mask'])\n"
        "print((folder / 'README.md').read_text().count('70.00'))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) >= 1  # the card shows the metrics given


INFERENCE_ONLY = {"pctnet", "bargainnet"}  # libcom's published weights; inharmony has no training recipe for them


@pytest.mark.parametrize("name", inharmony.list_models())
def test_registry_is_the_source_of_per_model_facts(name):
    from inharmony.losses import get_loss_class, loss_for_model

    cfg = inharmony.get_pretrained_cfg(name)
    assert cfg.size_multiple > 0 and len(cfg.input_size) == 3 and len(cfg.mean) == len(cfg.std) == 3
    if cfg.architecture in INFERENCE_ONLY:  # published weights to use, no training recipe: said clearly
        with pytest.raises(ValueError, match=f"{cfg.architecture}.*no"):
            get_loss_class(name)
    else:
        assert type(loss_for_model(name)) is get_loss_class(cfg.architecture)  # its loss: the losses' registry says
    import inspect

    signature = inspect.signature(type(inharmony.create_model(name, **_tiny(name))).__init__)
    assert set(cfg.download_args) <= set(signature.parameters), "download_args must name constructor arguments"


def _tiny(name: str) -> dict:
    return {"decoder_channels": 8} if name.startswith("dirl") else {}


# --------------------------------------------------------------------------- a new model is one file


@pytest.fixture
def toy_model():
    """What a contributor's new model file holds: a HubMixin module and a registered entry function."""
    import torch
    from torch import nn

    from inharmony.losses import MaskLoss, register_loss
    from inharmony.losses import _registry as loss_registry
    from inharmony.models import HubMixin, PretrainedCfg, _registry, check_input, register_model

    class ToyNet(HubMixin, nn.Module):
        def __init__(self, width: int = 4) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 1))

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            check_input(x, 8)
            return {"mask": torch.sigmoid(self.body(x))}

    cfg = PretrainedCfg("toy_net", size_multiple=8, paper="A toy.")

    @register_model(pretrained_cfgs=[cfg])
    def toy_net(**kwargs) -> ToyNet:
        """A toy localizer for the architecture tests."""
        return ToyNet(**kwargs)

    register_loss("toy_net")(MaskLoss)
    yield "toy_net"
    for table in (_registry._ENTRYPOINTS, _registry._PRETRAINED_CFGS, _registry._DEFAULT_TAGS, loss_registry._LOSSES):
        table.pop("toy_net", None)


def test_a_registered_model_is_picked_up_everywhere(toy_model, tmp_path):
    """Registering is all: torch.hub, the loss, the Hub format, load() and training need no other edit."""
    import torch

    from inharmony.losses import MaskLoss, loss_for_model
    from inharmony.models import torch_hub_entrypoints

    assert toy_model in inharmony.list_models()
    model = torch_hub_entrypoints()[toy_model](width=6)
    assert not model.training and model.pretrained_cfg.size_multiple == 8
    assert isinstance(loss_for_model(toy_model), MaskLoss)
    x = torch.randn(2, 3, 16, 24)
    folder = model.save_pretrained(tmp_path / "toy")
    with torch.no_grad():
        expected = model(x)["mask"]
        assert torch.equal(inharmony.from_pretrained(folder)(x)["mask"], expected)
        from_state_dict = inharmony.load(toy_model, weights=folder / "model.safetensors", width=6)
        assert torch.equal(from_state_dict(x)["mask"], expected)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.randn(1, 3, 12, 16))

    from inharmony.training.localization import LocalizationTask  # training: the loss recipe comes from the registry

    task = LocalizationTask(toy_model, model_kwargs={"width": 6})
    batch = {"image": x, "mask": (torch.rand(2, 1, 16, 24) > 0.5).float()}
    loss = task.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in task.model.parameters())



@pytest.mark.parametrize("old", ["inharmony.convert", "inharmony.results", "inharmony.data.errors"])
def test_unreleased_shim_modules_are_gone(old):
    # 0.x was never released: moved modules leave no alias behind (one home per fact).
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_old_exception_locations_are_the_same_classes():
    from inharmony import errors, inference, models

    assert inference.ImageReadError is errors.ImageReadError
    assert models.PretrainedWeightsUnavailableError is errors.PretrainedWeightsUnavailableError
