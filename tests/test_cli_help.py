"""Every command has -h/--help with an Example: block and is documented in docs/cli.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from runstore import __version__
from runstore.cli import cli

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        found.append(prefix + (name,))
        if isinstance(command, click.Group):
            found += _commands(command, prefix + (name,))
    return found


COMMANDS = _commands(cli)


def test_there_are_commands():
    assert {("sql",), ("gc",), ("merge",), ("doctor",), ("version",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", [()] + COMMANDS, ids=lambda p: " ".join(p) or "runstore")
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_has_an_example(path: tuple[str, ...], flag: str):
    result = CliRunner().invoke(cli, [*path, flag])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert "runstore" in result.output.split("Example:", 1)[1]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p))
def test_command_is_documented(path: tuple[str, ...]):
    text = DOCS.read_text()
    assert f"runstore {' '.join(path)}" in text, f"docs/cli.md does not mention `runstore {' '.join(path)}`"


def test_console_script_version_and_help(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "runstore"
    assert script.exists(), f"the runstore entry point is not installed next to {sys.executable}"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"runstore, version {__version__}"
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: runstore [OPTIONS] COMMAND")
    for command in ("runs", "show", "sql", "diff", "merge", "export"):
        assert re.search(rf"^\s+{command}\s", helped.stdout, re.M), command
    missing = subprocess.run([str(script), "--db", str(tmp_path / "none.db"), "runs"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and missing.stderr.startswith("Error: no store at")
