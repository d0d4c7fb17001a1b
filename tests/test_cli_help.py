"""Every command has -h/--help with an Example: block and is documented in docs/cli.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from runstore import get_version
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


# ---------------------------------------------------------------- every flag documented (issue #19)

ROOT = Path(__file__).resolve().parent.parent


def _options(command: click.Command) -> list[str]:
    """Every option string a command's --help shows (hidden ones and -h/--help aside)."""
    return [opt for param in command.params if isinstance(param, click.Option) and not param.hidden
            for opt in param.opts + param.secondary_opts if opt not in ("-h", "--help")]


def _mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def _cli_section(path: tuple[str, ...]) -> str:
    """The docs/cli.md text about `runstore <path>`: its `###` section (the intro for the group)."""
    text = DOCS.read_text(encoding="utf-8")
    if not path:
        return text[: text.index("\n## ")]
    sections = re.split(r"\n(?=#{2,3} )", text)
    found = [s for s in sections if s.startswith("### ") and f"`runstore {path[0]}" in s.splitlines()[0]]
    assert found, f"docs/cli.md has no section for `runstore {path[0]}`"
    return "\n".join(found)


def _command(group: click.Group, path: tuple[str, ...]) -> click.Command:
    command: click.Command = group
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", [()] + COMMANDS, ids=lambda p: " ".join(p) or "runstore")
def test_every_runstore_flag_is_documented(path: tuple[str, ...]):
    """Each option of `runstore <path> --help` appears in that command's section of docs/cli.md."""
    section = _cli_section(path)
    missing = [o for o in _options(_command(cli, path)) if not _mentions(section, o)]
    assert not missing, f"docs/cli.md does not document `runstore {' '.join(path)}` {missing}"


def _flow_cli() -> click.Group:
    from runstore import FlowSpec, Parameter, step
    from runstore.cli.flow import make_cli

    class DocumentedFlow(FlowSpec):
        alpha = Parameter("alpha", default=1)

        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    return make_cli(DocumentedFlow)


FLOW_CLI = _flow_cli()
FLOW_COMMANDS = _commands(FLOW_CLI)


@pytest.mark.parametrize("path", [()] + FLOW_COMMANDS, ids=lambda p: " ".join(p) or "flow.py")
def test_every_flow_cli_flag_is_documented(path: tuple[str, ...]):
    """Each option of `python flow.py <path> --help` appears in docs/flows.md's synopsis of it."""
    text = (ROOT / "docs" / "flows.md").read_text(encoding="utf-8")
    section = text[text.index("## The flow command line"):text.index("## Execution model")]
    prefix = "python flow.py" + "".join(f" {p}" for p in path)
    entries: list[str] = []  # one per synopsis line, its indented continuation lines joined
    for line in section.splitlines():
        if line.startswith("python flow.py"):
            entries.append(line.replace("python flow.py [--db PATH] [--quiet]", "python flow.py"))
        elif line.startswith(" ") and entries and line.strip():
            entries[-1] += " " + line.strip()
    lines = "\n".join(e for e in entries if e.startswith(prefix + " ") or e == prefix)
    if path:
        assert lines, f"docs/flows.md has no `{prefix} ...` line"
    own = [o for o in _options(_command(FLOW_CLI, path)) if o != "--alpha"]  # --alpha: the flow's own parameter
    missing = [o for o in own if not _mentions(lines if path else section, o)]
    assert not missing, f"docs/flows.md does not document `python flow.py {' '.join(path)}` {missing}"


def test_console_script_version_and_help(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "runstore"
    assert script.exists(), f"the runstore entry point is not installed next to {sys.executable}"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"runstore, version {get_version()}"  # issue #19
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: runstore [OPTIONS] COMMAND")
    for command in ("runs", "show", "sql", "diff", "merge", "export"):
        assert re.search(rf"^\s+{command}\s", helped.stdout, re.M), command
    missing = subprocess.run([str(script), "--db", str(tmp_path / "none.db"), "runs"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and missing.stderr.startswith("Error: no store at")
