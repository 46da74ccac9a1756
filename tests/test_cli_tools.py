"""The CLI's structure: tool options come from typed functions, one error path, any data module by class_path."""

from __future__ import annotations

import inspect
import json
import re

import docstring_parser
import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from inharmony.cli import COMMANDS, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, main
from inharmony.cli.tools import Group, Tool, normalize_argv, resolve


def _tools() -> list[tuple[list[str], Tool]]:
    found = []
    for name, entry in COMMANDS.items():
        if isinstance(entry, Tool):
            found.append(([name], entry))
        elif isinstance(entry, Group):
            found += [([name, sub], tool) for sub, tool in entry.resolved_tools().items()]
    return found


TOOLS = _tools()


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize(("path", "tool"), TOOLS, ids=[" ".join(p) for p, _ in TOOLS])
def test_tool_options_are_the_functions_parameters(path, tool, capsys):
    """Every parameter of the function is an option (or the positional), described by its docstring's Args: entry."""
    function = resolve(tool.target)
    assert main([*path, "--help"]) == 0
    help_text = _flat(capsys.readouterr().out)
    assert f"inharmony {' '.join(path)}" in help_text and "example:" in help_text
    docs = {p.arg_name: p.description for p in docstring_parser.parse(inspect.getdoc(function) or "").params}
    for name in inspect.signature(function).parameters:
        if name not in tool.positional:
            assert f"--{name}" in help_text, (path, name)
        assert docs.get(name), f"{tool.target}: parameter {name!r} has no Args: entry"
        assert _flat(docs[name])[:40] in help_text, (path, name)


def test_classic_spellings_are_rewritten():
    def f(root: str, max_side: int = 1, decode: bool = False, model: list[str] | None = None, rest: list[str] = ()):
        """F."""

    tool = Tool("x:f", "", "", rest="rest", aliases={"--quiet": ("--decode=false",), "--side": ("--max_side",)})
    argv = ["--root", "r", "--max-side", "3", "--decode", "--model", "a", "--model=b", "--quiet", "--", "--x", "1"]
    assert normalize_argv(argv, f, tool) == [
        "--root", "r", "--max_side", "3", "--decode=true", "--model+", "a", "--model+=b", "--decode=false",
        '--rest=["--x", "1"]',
    ]  # fmt: skip
    assert normalize_argv(["--no-decode", "--decode", "false"], f, tool) == ["--decode=false", "--decode=false"]
    assert normalize_argv(["--side", "4", "--root", "r"], f, tool) == ["--max_side", "4", "--root", "r"]
    positional = Tool("x:f", "", "", positional=("model",))
    assert normalize_argv(["a.jpg", "--root", "r", "b.jpg"], f, positional) == ['["a.jpg", "b.jpg"]', "--root", "r"]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.strip().splitlines() if line]


@pytest.mark.parametrize(
    "argv",
    [
        ["synth", "--out", "{tmp}/s", "--n", "0"],  # ValueError of the library function
        ["synth", "--out", "{tmp}/s", "--n", "2", "--photos", "{tmp}/none", "--quiet"],  # DataError
        ["synth", "--out", "{tmp}/s"],  # missing required option
        ["synth", "--out", "{tmp}/s", "--n", "two"],  # wrong type
        ["data", "check", "--root", "{tmp}/none"],  # DataError
        ["data", "resize", "--root", "{tmp}", "--out", "{tmp}", "--no-such-option", "1"],
        ["data", "frobnicate"],
        ["data"],
        ["push", "{tmp}/missing.ckpt", "--repo-id", "a/b", "--out", "{tmp}/o", "--dry-run"],  # CheckpointError
        ["convert", "dirl-official", "--dir", "{tmp}/none", "--out", "{tmp}/o"],
        ["export", "--model", "dirl_resnet18", "--weights", "{tmp}/missing", "--out", "{tmp}/m.onnx"],
        ["predict", "{tmp}", "--out", "{tmp}/o", "--model", "dirl_resnet18", "--weights", "{tmp}/missing"],
        ["fit", "--data.root", "{tmp}", "--trainer.no_such_flag", "3"],
        ["test", "--data.root", "{tmp}", "--ckpt_path", "{tmp}/nope.ckpt"],
        ["predict", "--data.root", "{tmp}", "--model.model", "dirl_resnet18"],  # LightningCLI predict needs --out
    ],
    ids=lambda argv: " ".join(argv[:3]),
)
def test_expected_failures_print_one_error_line_to_stderr_and_exit_2(argv, tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(b"")  # an input for predict, so the weights are what fails
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE, captured
    lines = [line for line in _error_lines(captured.err) if line.startswith("inharmony: error:")]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and "inharmony: error" not in captured.out


def test_partial_results_exit_1_and_success_exit_0(capsys):
    assert main(["models", "--pattern", "zzz*"]) == EXIT_PARTIAL
    assert main(["models", "--pattern", "dirl"]) == EXIT_OK
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- any data module by class_path


class _Squares(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        image = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(index))
        mask = torch.zeros(1, 32, 32)
        mask[:, 8:20, 4 + index : 20 + index] = 1
        return {"image": image, "mask": mask, "subset": "Squares", "path": f"squares/{index}.png"}


class SquaresDataModule(L.LightningDataModule):
    """Not an iHarmony4 tree: random images with a square to find."""

    def __init__(self, batch_size: int = 2) -> None:
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Squares(), batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_Squares(), batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(_Squares(), batch_size=self.batch_size)


def test_any_datamodule_by_class_path_from_yaml(tmp_path):
    config = tmp_path / "squares.yaml"
    config.write_text(
        f"""
model:
  model: dirl_resnet18
  model_kwargs: {{pretrained_backbone: false, decoder_channels: 8}}
data:
  class_path: {__name__}.SquaresDataModule
  init_args:
    batch_size: 2
trainer:
  accelerator: cpu
  devices: 1
  max_steps: 1
  default_root_dir: {tmp_path / "run"}
  enable_progress_bar: false
  enable_model_summary: false
  num_sanity_val_steps: 0
  logger: false
samples:
  every_n_steps: 0
"""
    )
    assert main(["fit", "--config", str(config)]) == 0
    last = next((tmp_path / "run").rglob("last.ckpt"))
    out = tmp_path / "table"
    assert main(["test", "--config", str(config), "--ckpt_path", str(last), "--out", str(out)]) == 0
    results = json.loads((out / "metrics.json").read_text())
    assert list(results) == ["Squares", "All"] and int(results["All"]["images"]) == 4
