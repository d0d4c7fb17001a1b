"""Helpers shared by the test files (fixtures are in conftest.py, store contents in storefill.py).

Example
-------
>>> proc = run_flow(EXAMPLES / "hello_flow.py", tmp_path / "runstore.db", "run", quiet=True)
>>> proc.returncode
0
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from click.testing import CliRunner, Result

TESTS = Path(__file__).resolve().parent
FLOWS = TESTS / "flows"
EXAMPLES = TESTS.parent / "examples"


def run_flow(script: str | os.PathLike[str], db: str | os.PathLike[str] | None, *args: str,
             env: Mapping[str, str] | None = None, quiet: bool = False, cwd: str | os.PathLike[str] | None = None,
             timeout: float = 120, preexec_fn: Callable[[], Any] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python SCRIPT [--db DB] [--quiet] ARGS...`` in a child process and wait for it.

    ``env`` is added to this process's environment; ``timeout`` (seconds) turns a hang into a
    failed test (``subprocess.TimeoutExpired``) instead of a stalled suite.
    """
    cmd = [sys.executable, str(script)]
    if db is not None:
        cmd += ["--db", str(db)]
    if quiet:
        cmd.append("--quiet")
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=cwd, timeout=timeout, preexec_fn=preexec_fn)


def invoke_cli(*args: str, db: str | os.PathLike[str] | None = None, input: str | None = None) -> Result:
    """Run the ``runstore`` command in this process (``CliRunner``); exceptions propagate."""
    from runstore.cli import cli

    argv = (["--db", str(db)] if db else []) + list(args)
    return CliRunner().invoke(cli, argv, input=input, catch_exceptions=False)
