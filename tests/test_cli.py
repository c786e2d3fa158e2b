"""The `memory-operator` command line: every role is a subcommand with its own help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from memory_operator import __version__
from memory_operator.cli import COMMANDS, build_parser, main


def test_every_role_is_a_subcommand() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command")
    assert set(subcommands.choices) == {name for name, _, _ in COMMANDS}  # type: ignore[arg-type]


@pytest.mark.parametrize("command", [name for name, _, _ in COMMANDS])
def test_help_of_every_subcommand(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"memory-operator {command}" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "memory_operator", "crds"], capture_output=True, text=True, check=True
    )
    assert "kind: CustomResourceDefinition" in result.stdout


def test_unknown_subcommand_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
