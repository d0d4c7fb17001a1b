"""`runstore flatten OUT [FLOW...]`: a plain SQLite file of runs, tasks and artifacts (runstore/flat.py).

Real stores in tmp_path, the real command; hostile names and a hostile pickle are planted
in the source file by hand with the sqlite3 module after runstore wrote it (SPEC §13).
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import invoke_cli
from storefill import add_run, fill_run
from runstore import Store
from runstore.errors import OutputExistsError
from runstore.flat import MAX_NAME, flatten


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def columns(db: Path, table: str) -> list[str]:
    return [r[1] for r in rows(db, f"PRAGMA table_info({table})")]


def run_row(db: Path, pathspec: str) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM runs WHERE pathspec = ?", (pathspec,)).fetchone())
    finally:
        conn.close()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """P/1 (alpha, opt; end: score, a list), P/2 (alpha, beta; end: score), Q/1 by bob."""
    db = tmp_path / "runstore.db"
    store = Store(db)
    fill_run(store, "P", user="tester", params={"alpha": 0.5, "opt": "adam"}, tags=("exp",),
             artifacts={"end": {"score": 0.9, "curve": [1, 2], "label": "good"}})
    fill_run(store, "P", user="tester", params={"alpha": 0.7, "beta": True}, artifacts={"end": {"score": 0.8}})
    fill_run(store, "Q", user="bob", params={"alpha": 1}, artifacts={"end": {"score": 0.1}})
    store.close()
    return db


def test_runs_get_a_column_per_parameter_and_scalar_end_artifact(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "flat.db"
    result = invoke_cli("flatten", str(out), "P", db=source)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("wrote 2 run(s), 6 task(s)")
    assert columns(out, "runs") == [
        "pathspec", "flow", "run_number", "status", "user", "namespace", "created_at", "finished_at",
        "duration_s", "tags", "system_tags", "param_alpha", "param_opt", "artifact_label", "artifact_score",
        "param_beta"]
    first, second = run_row(out, "P/1"), run_row(out, "P/2")
    assert (first["param_alpha"], first["param_opt"], first["param_beta"]) == (0.5, "adam", None)
    assert (second["param_alpha"], second["param_opt"], second["param_beta"]) == (0.7, None, 1)
    assert (first["artifact_score"], first["artifact_label"], second["artifact_label"]) == (0.9, "good", None)
    assert first["status"] == "succeeded" and first["run_number"] == 1 and json.loads(first["tags"]) == ["exp"]
    assert "user:tester" in json.loads(first["system_tags"]) and first["duration_s"] >= 0
    # the list artifact is no column, private and inherited names neither; it is in `artifacts`
    assert not any(c in columns(out, "runs") for c in ("artifact_curve", "artifact__note", "artifact_alpha"))
    assert rows(out, "SELECT value_json, encoding, type FROM artifacts WHERE pathspec LIKE 'P/1/end/%/curve'") == [
        ("[1,2]", "json", "list")]
    assert rows(out, "SELECT kind, name FROM run_columns WHERE \"column\" = 'param_beta'") == [("param", "beta")]
    # tasks: one row per task, pointing at its run; artifacts point at their task
    assert rows(out, "SELECT step, status, attempt FROM tasks WHERE run_pathspec = 'P/2' ORDER BY task_id") == [
        ("_parameters", "succeeded", 0), ("start", "succeeded", 0), ("end", "succeeded", 0)]
    assert rows(out, "SELECT count(*) FROM artifacts a LEFT JOIN tasks t ON t.pathspec = a.task_pathspec"
                     " WHERE t.pathspec IS NULL") == [(0,)]
    assert rows(out, "PRAGMA foreign_key_check") == []
    indexes = {r[0] for r in rows(out, "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    assert {"idx_tasks_run_pathspec", "idx_artifacts_task_pathspec"} <= indexes
    # same types as the store's views, read back without runstore
    assert rows(out, "SELECT typeof(param_alpha), typeof(run_number), typeof(duration_s) FROM runs LIMIT 1") == [
        ("real", "integer", "real")]


def test_namespace_flows_and_all(source: Path, tmp_path: Path) -> None:
    def pathspecs(*args: str) -> list[str]:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}.db"
        result = invoke_cli("flatten", str(out), *args, db=source)
        assert result.exit_code == 0, result.output
        return [r[0] for r in rows(out, "SELECT pathspec FROM runs ORDER BY pathspec")]

    assert pathspecs() == ["P/1", "P/2"]  # yours (user:tester) by default, as `runstore runs`
    assert pathspecs("--namespace", "user:bob") == ["Q/1"]
    assert pathspecs("--all") == ["P/1", "P/2", "Q/1"]
    assert pathspecs("--all", "Q") == ["Q/1"]
    assert pathspecs("--namespace", "exp") == ["P/1"]  # a namespace is any tag
    assert pathspecs("--all", "NoSuchFlow") == []
    result = invoke_cli("flatten", str(tmp_path / "x.db"), "--all", "--namespace", "user:bob", db=source)
    assert result.exit_code == 2 and "use either --namespace or --all" in result.output


def test_an_existing_out_is_refused_in_one_line_and_kept_unless_replace(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "flat.db"
    out.write_bytes(b"precious")
    proc = subprocess.run([sys.executable, "-m", "runstore", "--db", str(source), "flatten", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == f"Error: {out} exists already (--replace to overwrite it)\n"
    assert out.read_bytes() == b"precious"
    with pytest.raises(OutputExistsError) as caught:
        flatten(Store(source, readonly=True), out)
    assert isinstance(caught.value, FileExistsError)
    result = invoke_cli("flatten", str(out), "--replace", "--all", db=source)
    assert result.exit_code == 0, result.output
    assert rows(out, "SELECT count(*) FROM runs") == [(3,)]
    assert [p.name for p in tmp_path.iterdir() if "tmp" in p.name] == []  # no temporary file left


def test_a_failed_export_leaves_no_out_and_no_temporary_file(source: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import runstore.flat as flat

    real = flat._stream

    def broken(store: Store, query: str, params: Any) -> Any:
        if "artifacts_view" in query and "task_pathspec" in query:  # the last table, the file half written
            raise OSError("disk on fire")
        return real(store, query, params)

    out = tmp_path / "flat.db"
    monkeypatch.setattr(flat, "_stream", broken)
    with pytest.raises(OSError, match="disk on fire"):
        flatten(Store(source, readonly=True), out, namespace=None)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("runstore.db")) == []


HOSTILE = {
    "alpha": 'a"; DROP TABLE runs; --',
    "opt": "[x]",
    "beta": "X",
    "gamma": "x",
    "delta": "n" * 10_000,
    "eps": "ctl\x00\x1b[31m\nred",
    "zeta": "ctl\x00\x1b[31m\tred",  # the same once control characters are replaced
    "eta": "param_alpha",  # would be `param_param_alpha`: no clash, kept
}


def test_hostile_names_become_quoted_distinct_columns_and_nothing_is_injected(tmp_path: Path) -> None:
    src = tmp_path / "received.db"
    store = Store(src)
    params = {name: i for i, name in enumerate(HOSTILE)}
    fill_run(store, "P", user="tester", params=params, artifacts={"end": {"score": 0.5, "Score": 0.25}})
    fill_run(store, "P", user="tester", params={"alpha": 99})
    store.close()
    conn = sqlite3.connect(src)
    with conn:
        for old, new in HOSTILE.items():
            conn.execute("UPDATE run_params SET name = ? WHERE name = ?", (new, old))
        for old, new in [*HOSTILE.items(), ("score", "s'); DROP TABLE artifacts; --"),
                         ("Score", "S'); DROP TABLE ARTIFACTS; --")]:
            conn.execute("UPDATE artifacts SET name = ? WHERE name = ?", (new, old))
            conn.execute("UPDATE task_values SET name = ? WHERE name = ?", (new, old))
    conn.close()

    out = tmp_path / "flat.db"
    result = invoke_cli("flatten", str(out), db=src)
    assert result.exit_code == 0, result.output
    assert rows(out, "PRAGMA integrity_check") == [("ok",)]
    assert {r[0] for r in rows(out, "SELECT name FROM sqlite_master WHERE type = 'table'")} == {
        "runs", "tasks", "artifacts", "run_columns"}
    assert rows(out, "SELECT pathspec FROM runs ORDER BY run_number") == [("P/1",), ("P/2",)]
    mapping = {name: (column, kind) for column, kind, name in rows(out, "SELECT * FROM run_columns")}
    # every stored name is traceable, exactly as stored, to its own column
    assert set(mapping) == set(HOSTILE.values()) | {"s'); DROP TABLE artifacts; --", "S'); DROP TABLE ARTIFACTS; --"}
    cols = columns(out, "runs")
    assert len({c.lower() for c in cols}) == len(cols)
    for name, (column, kind) in mapping.items():
        assert column in cols and kind in ("param", "artifact")
        assert not any(ord(ch) < 32 for ch in column) and len(column) <= len(kind) + 1 + MAX_NAME + 3
    assert mapping["X"][0] == "param_X" and mapping["x"][0] == "param_x_2"
    assert mapping['a"; DROP TABLE runs; --'][0] == 'param_a"; DROP TABLE runs; --'
    assert mapping["[x]"][0] == "param_[x]" and mapping["param_alpha"][0] == "param_param_alpha"
    assert mapping["n" * 10_000][0] == "param_" + "n" * MAX_NAME
    # names are taken in sorted order, so the first of a clash keeps the plain name
    assert mapping["ctl\x00\x1b[31m\tred"][0] == "param_ctl__[31m_red"
    assert mapping["ctl\x00\x1b[31m\nred"][0] == "param_ctl__[31m_red_2"
    assert mapping["s'); DROP TABLE artifacts; --"][0] == "artifact_s'); DROP TABLE artifacts; --_2"
    conn = sqlite3.connect(out)
    conn.row_factory = sqlite3.Row
    first = dict(conn.execute("SELECT * FROM runs WHERE pathspec = 'P/1'").fetchone())
    second = dict(conn.execute("SELECT * FROM runs WHERE pathspec = 'P/2'").fetchone())
    conn.close()
    for i, name in enumerate(HOSTILE.values()):
        assert first[mapping[name][0]] == i, name
    assert second[mapping['a"; DROP TABLE runs; --'][0]] == 99 and second[mapping["x"][0]] is None
    assert first[mapping["s'); DROP TABLE artifacts; --"][0]] == 0.5
    assert first[mapping["S'); DROP TABLE ARTIFACTS; --"][0]] == 0.25
    # the command's report names the renamed columns on one printable line each
    assert "param 'x' -> column param_x_2" in result.output and "\x1b" not in result.output
    # the source store is untouched and still opens
    assert Store(src, readonly=True).sql("SELECT count(*) FROM runs_view").rows == [(2,)]


class Payload:
    """Writes a marker file when unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "pwned"))


def test_pickled_artifacts_are_listed_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    src = tmp_path / "runstore.db"
    store = Store(src)
    add_run(store, "EvilFlow", model=Payload(str(marker)), result=Payload(str(marker)))
    store.close()
    assert rows(src, "SELECT DISTINCT encoding FROM artifacts WHERE name IN ('model', 'result')") == [("pickle",)]
    out = tmp_path / "flat.db"
    proc = subprocess.run([sys.executable, "-m", "runstore", "--db", str(src), "flatten", str(out), "--all"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    assert rows(out, "SELECT name, encoding, value_json FROM artifacts WHERE name IN ('model', 'result')"
                     " ORDER BY name") == [("model", "pickle", None), ("result", "pickle", None)]
    assert "artifact_result" not in columns(out, "runs")
    # the control: loading the stored value (trusted: this user wrote it) is what runs the code
    ((key, encoding),) = rows(src, "SELECT blob_key, encoding FROM artifacts WHERE name = 'result'")
    Store(src).load_value(key, encoding)
    assert marker.read_text() == "pwned"


def test_sqlite_utils_is_loaded_by_flatten_only() -> None:
    code = ("import sys\nfrom runstore.cli.root import cli\n"
            "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
            "try:\n    cli(['flatten', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('sqlite_utils' in sys.modules, 'runstore.flat' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "False False"


def test_thousands_of_parameter_names_stay_under_the_column_limit(tmp_path: Path) -> None:
    from runstore.flat import MAX_COLUMNS

    src = tmp_path / "received.db"
    store = Store(src)
    record = fill_run(store, "P", user="tester", params={"alpha": 1})
    store.close()
    conn = sqlite3.connect(src)
    with conn:
        conn.executemany("INSERT INTO run_params(run_id, name, value) VALUES (?, ?, ?)",
                         [(record.run_id, f"p{i:05d}", str(i)) for i in range(2500)])
    conn.close()
    out = tmp_path / "flat.db"
    proc = subprocess.run([sys.executable, "-m", "runstore", "--db", str(src), "flatten", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"1601 name(s) past {MAX_COLUMNS} columns left out of runs" in proc.stdout
    cols = columns(out, "runs")
    assert len([c for c in cols if c.startswith("param_")]) == MAX_COLUMNS
    assert run_row(out, "P/1")["param_alpha"] == 1 and run_row(out, "P/1")["param_p00898"] == 898  # names in sorted order


def test_out_in_a_missing_directory_is_one_line(source: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "runstore", "--db", str(source), "flatten",
                           str(tmp_path / "nowhere" / "flat.db")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == f"Error: cannot write {tmp_path / 'nowhere' / 'flat.db'}: no directory {tmp_path / 'nowhere'}\n"


def test_runs_of_a_real_flow_read_back_with_plain_sqlite(tmp_path: Path) -> None:
    from helpers import EXAMPLES, run_flow

    db = tmp_path / "runstore.db"
    for args in ((), ("--learning-rate", "0.3", "--model-version", "v2")):
        proc = run_flow(EXAMPLES / "param_flow.py", db, "run", *args, quiet=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    out = tmp_path / "flat.db"
    result = invoke_cli("flatten", str(out), "ParamFlow", db=db)
    assert result.exit_code == 0, result.output
    got = rows(out, "SELECT pathspec, status, param_model_version, param_learning_rate, param_epochs, param_config,"
                    " artifact_score FROM runs ORDER BY run_number")
    assert got == [("ParamFlow/1", "succeeded", "v1", 0.1, 3, '{"layers": [64, 32]}', 0.9667),
                   ("ParamFlow/2", "succeeded", "v2", 0.3, 3, '{"layers": [64, 32]}', 0.9)]
    assert rows(out, "SELECT step FROM tasks WHERE run_pathspec = 'ParamFlow/2' ORDER BY task_id") == [
        ("_parameters",), ("start",), ("end",)]


def test_a_temporary_file_of_a_killed_flatten_is_removed_by_the_next_one(source: Path, tmp_path: Path) -> None:
    # A real child, stopped mid-write by SIGKILL: its `.OUT.PID.flat.tmp` stays behind; the
    # next flatten to the same OUT removes it, but keeps the temporary file of a live writer.
    import os
    import signal
    import time

    out = tmp_path / "flat.db"
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, runstore.flat as flat\n"
        "from runstore import Store\n"
        "real = flat._stream\n"
        "def slow(store, query, params):\n"
        "    if 'tasks_view' in query:  # runs are written: the file exists, half done\n"
        "        time.sleep(600)\n"
        "    return real(store, query, params)\n"
        "flat._stream = slow\n"
        f"flat.flatten(Store({str(source)!r}, readonly=True), {str(out)!r}, namespace=None)\n")])
    stale = tmp_path / f".flat.db.{child.pid}.flat.tmp"
    deadline = time.monotonic() + 60
    while not stale.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stale.exists(), "the child never started writing"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        in_progress = tmp_path / f".flat.db.{live.pid}.flat.tmp"
        in_progress.write_bytes(b"")
        flatten(Store(source, readonly=True), out, namespace=None)
        assert not stale.exists() and in_progress.exists() and out.exists()
    finally:
        live.kill()
        live.wait()
