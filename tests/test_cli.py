"""The ``inharmony`` entry point: discovery of subcommands, --help of each, ``models``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inharmony.cli import discover_commands, main

COMMANDS = discover_commands()
EXPECTED = {"models", "bench", "synth", "data", "fit", "validate", "test", "predict", "demo",
            "convert", "export", "push"}


def test_every_planned_subcommand_exists() -> None:
    missing = EXPECTED - set(COMMANDS)
    assert not missing, f"missing subcommands: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_an_example(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main([name, "--help"])  # LightningCLI-based commands return their exit code
    except SystemExit as exit_:  # argparse-based ones exit after printing help
        code = exit_.code
    assert code in (0, None)
    out = capsys.readouterr().out
    assert f"inharmony {name}" in out
    assert "example" in out.lower(), f"'inharmony {name} --help' shows no example"


def test_console_script_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "inharmony.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("inharmony ")


def test_models_lists_dirl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "dirl.ihd_le50" in out and "weights not published yet" in out


def test_models_with_no_match_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--pattern", "zzz*"]) == 1
    assert "no model matches" in capsys.readouterr().out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
