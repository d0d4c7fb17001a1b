"""The admin verbs of the `runstore` command: sql, backup, delete, gc, export, merge, trust, doctor."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import invoke_cli
from storefill import add_run, snapshot
from runstore import Store, __version__
from runstore.cli import cli


@pytest.fixture
def db(runs_db: Path) -> Path:
    """The conftest ``runs_db`` (three runs of F), under the name these tests use."""
    return runs_db


invoke = invoke_cli


def test_sql_table_json_csv(db: Path):
    result = invoke("sql", "SELECT pathspec, status FROM runs_view ORDER BY run_number", db=db)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["pathspec", "status"] and lines[2].split() == ["F/1", "succeeded"]
    rows = json.loads(invoke("sql", "--json", "SELECT run_number, uuid FROM runs", db=db).output)
    assert [r["run_number"] for r in rows] == [1, 2, 3]
    text = invoke("sql", "--csv", "SELECT chunk_key, data FROM blob_chunks LIMIT 1", db=db).output
    header, row = list(csv.reader(io.StringIO(text)))
    assert header == ["chunk_key", "data"] and row[1].endswith("bytes>")


@pytest.mark.parametrize("query", [
    "DELETE FROM runs",
    "UPDATE runs SET status = 'failed'",
    "INSERT INTO flows(name, created_at) VALUES ('X', 0)",
    "DROP TABLE runs",
    "CREATE TABLE t(x)",
    "CREATE TEMP TABLE t(x)",
    "ATTACH DATABASE 'other.db' AS o",
    "ATTACH DATABASE ':memory:' AS m",
    "PRAGMA query_only = 0",
    "PRAGMA user_version = 99",
    "PRAGMA journal_mode = DELETE",
    "VACUUM",
    "SELECT 1; DELETE FROM runs",
    "SELECT load_extension('x')",
    "SELEKT nonsense",
])
def test_sql_cannot_write_or_escape(db: Path, query: str, tmp_path: Path):
    before = snapshot(Store(db, readonly=True))
    result = CliRunner().invoke(cli, ["--db", str(db), "sql", query])
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("Error: SQL error")
    assert "Traceback" not in result.output
    assert snapshot(Store(db, readonly=True)) == before
    assert not (Path.cwd() / "other.db").exists()


def test_sql_reads_table_pragmas(db: Path):
    result = invoke("sql", "--json", "PRAGMA table_info(runs)", db=db)
    assert result.exit_code == 0, result.output
    assert "run_number" in {row["name"] for row in json.loads(result.output)}


@pytest.mark.stress
def test_ctrl_c_stops_a_runaway_query(db: Path):
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "runstore", "--db", str(db), "sql",
         "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # SIGINT as a terminal gives it, even when pytest runs with it ignored (`pytest &`, nohup)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(1.0)  # let it start; the query itself never ends
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert "Traceback" not in err


def test_sql_on_memory_store_is_read_only_too(memory_store: Store):
    add_run(memory_store)
    with pytest.raises(Exception, match="only reading"):
        memory_store.sql("DELETE FROM runs")
    # the shared connection is left writable for the store itself
    assert add_run(memory_store)["pathspec"] == "F/2"


def test_backup_and_db_env(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RUNSTORE_DB", str(db))
    result = invoke("backup", str(tmp_path / "copy.db"))
    assert result.exit_code == 0 and "copy.db" in result.output
    assert snapshot(Store(tmp_path / "copy.db")) == snapshot(Store(db))
    again = CliRunner().invoke(cli, ["backup", str(tmp_path / "copy.db")])
    assert again.exit_code == 1 and "already exists" in again.output


def test_delete_gc_doctor(db: Path):
    before = db.stat().st_size
    assert CliRunner().invoke(cli, ["--db", str(db), "delete", "F/1"], input="n\n").exit_code == 1
    result = invoke("delete", "--yes", "F/1", "F/2", db=db)
    assert result.exit_code == 0 and "deleted 2 run(s): F/1, F/2" in result.output
    dry = json.loads(invoke("gc", "--dry-run", "--json", db=db).output)
    assert dry["blobs"] == 6 and dry["dry_run"]  # two runs' model, alpha and x
    result = invoke("gc", db=db)
    assert result.exit_code == 0 and result.output.startswith("freed")
    assert db.stat().st_size <= before
    doctor = invoke("doctor", db=db)
    assert doctor.exit_code == 0 and doctor.output.rstrip().endswith("ok")
    assert json.loads(invoke("doctor", "--json", db=db).output)["ok"] is True


def test_doctor_exit_code_on_damage(db: Path):
    raw = sqlite3.connect(db)
    raw.execute("DELETE FROM blob_chunks WHERE chunk_id = 1")
    raw.commit()
    raw.close()
    result = invoke("doctor", db=db)
    assert result.exit_code == 1 and "PROBLEM:" in result.output


def test_export_and_merge_commands(db: Path, tmp_path: Path):
    out = tmp_path / "two.db"
    result = invoke("export", "F/1", "F/3", "-o", str(out), db=db)
    assert result.exit_code == 0 and "copied 2 runs" in result.output
    other = tmp_path / "other.db"
    store = Store(other)
    add_run(store, alpha=7.0)
    store.close()
    result = invoke("merge", str(out), db=other)
    assert result.exit_code == 0, result.output
    assert "F/1 -> F/2" in result.output and "F/3 -> F/3" not in result.output
    again = json.loads(invoke("merge", "--json", str(out), db=other).output)
    assert again["copied"] == [] and sorted(again["skipped"]) == ["F/1", "F/3"]
    assert Store(other).sql("SELECT count(*) FROM runs").rows == [(3,)]
    if importlib.util.find_spec("runstore.client"):
        shown = json.loads(invoke("show", "--json", "F/2", db=other).output)
        assert shown["merged_from"] == f"{Store(db).uuid} run 1"


def test_trust_command(db: Path):
    result = invoke("trust", str(db))
    assert result.exit_code == 0 and "trusted 0 pickled value(s)" in result.output


@pytest.mark.parametrize("args, message", [
    (["sql", "SELECT 1"], "no store at"),
    (["merge", "missing.db"], "does not exist"),
    (["export", "F/1"], "Missing option"),
])
def test_errors_are_one_line(args: list[str], message: str):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output
    assert not Path("runstore.db").exists()  # commands never create a store by accident


def test_bad_pathspec_and_not_a_store(db: Path, tmp_path: Path):
    result = CliRunner().invoke(cli, ["--db", str(db), "delete", "-y", "F/1/start"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 10)
    result = CliRunner().invoke(cli, ["--db", str(junk), "doctor"])
    assert result.exit_code == 1 and "not a runstore database" in result.output


def test_python_dash_m_and_version(db: Path):
    out = subprocess.run([sys.executable, "-m", "runstore", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout
    out = subprocess.run([sys.executable, "-m", "runstore", "--db", str(db), "sql", "SELECT count(*) AS n FROM runs"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split()[-1] == "3"
    out = subprocess.run([sys.executable, "-m", "runstore", "--db", str(db), "sql", "DELETE FROM runs"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
