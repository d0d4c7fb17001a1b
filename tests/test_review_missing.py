"""Tests a reviewer found missing: the console script, worker reuse, join indexing,
--max-num-splits, numpy stays unimported, the error tree drawing, diff and show of
real runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from runstore import Store, get_version
from runstore.cli import cli

FLOWS = Path(__file__).parent / "flows"
BUSY = FLOWS / "busy_flow.py"
RESUME = FLOWS / "resume_flow.py"


def flow(path: Path, db: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(path), "--db", str(db), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def runstore_cmd(db: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--db", str(db), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# (a) the installed console script


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


# (b) + (c) reusable workers and join inputs[0]


def test_foreach_of_20_on_2_workers_reuses_them_and_join_indexes_inputs(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = flow(BUSY, db, "--quiet", "run", "--max-workers", "2", "--n", "20")
    assert proc.returncode == 0, proc.stderr
    store = Store(db)
    with store.read() as conn:
        owner = conn.execute("SELECT owner_pid FROM runs").fetchone()[0]
        rows = conn.execute("SELECT s.name, a.pid FROM attempts a JOIN tasks t USING (task_id)"
                            " JOIN steps s USING (step_id)").fetchall()
    children = [pid for step, pid in rows if step == "work"]
    assert len(children) == 20
    workers = {pid for _, pid in rows} - {owner}
    assert 1 <= len(workers) <= 2, workers  # 20 children, 2 processes: workers are reused
    assert set(children) <= workers
    join = store.run_tasks(store.run_ref("BusyFlow")[0], "join")[0]["task_id"]
    refs = store.task_artifact_refs(join)
    got = {name: store.load_value(refs[name].blob_key, refs[name].encoding)
           for name in ("first", "last", "total")}
    assert got == {"first": 0, "last": 361, "total": sum(i * i for i in range(20))}
    store.close()


# (d) --max-num-splits through the flow command line


def test_max_num_splits_over_the_limit_fails_the_run(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = flow(BUSY, db, "run", "--max-workers", "1", "--max-num-splits", "5", "--n", "20")
    assert proc.returncode == 1, proc.stderr
    assert ("Foreach in step start yielded 20 child steps which is more than the current maximum of 5 "
            "children. You can raise the maximum with the --max-num-splits option.") in proc.stderr
    rows = json.loads(runstore_cmd(db, "sql", "--json", "SELECT status FROM runs"))
    assert rows == [{"status": "failed"}]
    ok = flow(BUSY, db, "--quiet", "run", "--max-workers", "1", "--max-num-splits", "20", "--n", "20")
    assert ok.returncode == 0, ok.stderr


# (e) the numpy codec is only used when the user imported numpy


def test_runstore_never_imports_numpy(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import runstore
        from runstore import Store
        store = Store(":memory:")
        for value in ([1, 2, 3], b"raw", {"a": [1.5, None]}, list(range(10)), (1, "x"), bytearray(b"ab")):
            stored = store.put_value(value)
            assert stored.encoding != "npy", stored
            assert store.load_value(stored.blob_key, stored.encoding) == value
        for mod in pkgutil.walk_packages(runstore.__path__, "runstore."):
            importlib.import_module(mod.name)
        assert "numpy" not in sys.modules, "runstore imported numpy"
        import numpy
        stored = store.put_value(numpy.arange(3))
        assert stored.encoding == "npy", stored.encoding
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# (f) the drawing in runstore/errors.py is the real tree


def test_error_tree_drawing_matches_the_classes() -> None:
    import runstore.errors as errors

    drawn: dict[str, tuple[str | None, str | None]] = {}  # name -> (drawn parent, builtin in parens)
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        match = re.match(r"^\s*(?:[│ ]*[├└]── )?([A-Z]\w+)(?: \((\w+)\))?", line)
        if not match or match.group(1) not in errors.__all__:
            continue
        depth = len(line) - len(line.lstrip(" │├└─"))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        drawn[match.group(1)] = (stack[-1][1] if stack else None, match.group(2))
        stack.append((depth, match.group(1)))
    assert set(drawn) == set(errors.__all__)  # every class drawn, nothing extra
    for name, (parent, extra) in drawn.items():
        cls = getattr(errors, name)
        bases = [b.__name__ for b in cls.__bases__]
        if parent is None:
            assert (name, bases) == ("RunstoreError", [extra]), (name, bases)
            continue
        assert bases[0] == parent, (name, bases, parent)
        expected = [parent] + ([extra] if extra and extra != parent and extra != "RunstoreError" else [])
        assert bases == expected, (name, bases, expected)


# (g) + (h) diff of two really different runs, show of a resumed run


def test_diff_of_really_different_runs_and_show_of_a_resumed_run(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    fail = tmp_path / "fail"
    assert flow(RESUME, db, "--quiet", "run", "--max-workers", "1", "--alpha", "1").returncode == 0
    other = flow(RESUME, db, "--quiet", "run", "--max-workers", "1", "--alpha", "2", "--label", "other",
                 env={"RUNSTORE_USER": "bob"})
    assert other.returncode == 0, other.stderr
    out = runstore_cmd(db, "diff", "ResumeFlow/1", "ResumeFlow/2")
    params, env = out.split("environment:")[0], out.split("environment:")[1].split("code:")[0]
    # each difference is marked (changed/added/removed) since diff compares artifacts too (#19)
    assert re.search(r"^alpha\s+1\s+2\s+changed$", params, re.M)
    assert re.search(r'^label\s+"base"\s+"other"\s+changed$', params, re.M)
    assert "learning" not in params  # only what differs
    assert re.search(r"^user\s+tester\s+bob\s+changed$", env, re.M), env
    assert "code: same" in out

    fail.touch()
    assert flow(RESUME, db, "--quiet", "run", "--max-workers", "1", env={"RESUME_FAIL_FILE": str(fail)}).returncode == 1
    fail.unlink()
    resumed = flow(RESUME, db, "--quiet", "resume", "--max-workers", "1", "--origin-run-id", "3")
    assert resumed.returncode == 0, resumed.stderr
    shown = runstore_cmd(db, "show", "ResumeFlow/4")
    assert re.search(r"^origin\s+ResumeFlow/3$", shown, re.M), shown
    assert re.search(r"^status\s+succeeded$", shown, re.M)
    assert json.loads(runstore_cmd(db, "show", "--json", "ResumeFlow/4"))["origin"] == "ResumeFlow/3"
    assert json.loads(runstore_cmd(db, "show", "--json", "ResumeFlow/3"))["origin"] is None
