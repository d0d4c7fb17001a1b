"""The pytest plugin, exercised the way a user's project would: a separate pytest run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

STORE_TESTS = textwrap.dedent("""
    from runstore.namespace import get_store

    def test_store_is_default_and_empty(runstore_store):
        assert get_store() is runstore_store
        assert runstore_store.where == ":memory:"
        assert runstore_store.sql("SELECT count(*) FROM runs").rows == [(0,)]
        runstore_store.create_run("F", user="x")

    def test_each_test_gets_a_fresh_store(runstore_store):
        assert runstore_store.sql("SELECT count(*) FROM runs").rows == [(0,)]
""")

def _docstring_example() -> str:
    """The example test module in runstore.pytest_plugin's docstring (so the docs are what we test)."""
    import runstore.pytest_plugin

    block = (runstore.pytest_plugin.__doc__ or "").split("::\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


FLOW_TESTS = _docstring_example() + textwrap.dedent("""

    def test_runs_do_not_leak_between_tests(run_flow, runstore_store):
        assert runstore_store.sql("SELECT count(*) FROM runs").rows == [(0,)]
        run = run_flow(AddFlow, tags=["unit"])
        assert run.data.total == 2 and "unit" in run.tags
        assert runstore_store.sql("SELECT count(*) FROM runs").rows == [(1,)]
""")


def _pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user_project.py").write_text(source)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)


def test_plugin_is_registered():
    from importlib.metadata import entry_points

    names = {ep.value for ep in entry_points(group="pytest11")}
    assert "runstore.pytest_plugin" in names


def test_runstore_store_fixture(tmp_path: Path):
    result = _pytest(tmp_path, STORE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_run_flow_fixture(tmp_path: Path):
    result = _pytest(tmp_path, FLOW_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
