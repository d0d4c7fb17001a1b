"""A file written at an older schema version is upgraded in place, after a backup."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runstore import Store, StoreReadOnlyError
from runstore.schema import MIGRATIONS, SCHEMA_VERSION
from runstore.store._db import _split_sql

#: The store UUID of the version-1 file (a real UUID: merge validates the ones it reads).
OLD_STORE_UUID = "01d00000-0000-4000-8000-000000000001"


def write_version_1(path: Path) -> None:
    """What runstore at schema version 1 wrote: only the first migration, one run."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    for statement in _split_sql(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("INSERT INTO store_info(key, value) VALUES ('uuid', ?), ('created_at', '1.0')", (OLD_STORE_UUID,))
    conn.execute("INSERT INTO flows(name, created_at, last_run_number) VALUES ('OldFlow', 1.0, 7)")
    conn.execute(
        "INSERT INTO runs(flow_id, run_number, uuid, user_name, namespace, status, created_at, finished_at)"
        " VALUES (1, 7, '01d00000-0000-4000-8000-000000000007', 'anne', 'user:anne', 'succeeded', 100.0, 160.0)"
    )
    conn.execute("INSERT INTO run_tags VALUES (1, 'user:anne', 1, 1, 100.0)")
    conn.execute("PRAGMA user_version = 1")
    conn.close()


def schema_of(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    conn.close()
    return rows


def version_of(path: Path) -> int:
    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    return version


def test_version_1_file_is_upgraded_with_data_kept_and_a_backup(tmp_path: Path) -> None:
    assert SCHEMA_VERSION > 1
    path = tmp_path / "runstore.db"
    write_version_1(path)
    store = Store(path)
    assert version_of(path) == SCHEMA_VERSION
    assert store.uuid == OLD_STORE_UUID
    with store.read() as conn:
        row = conn.execute("SELECT pathspec, user, status, duration_s FROM runs_view").fetchone()
    assert row == ("OldFlow/7", "anne", "succeeded", 60.0)
    # The counter carried over: the next run continues the old numbering.
    assert store.create_run("OldFlow", user="anne").run_number == 8
    assert store.integrity_problems() == []

    backup = tmp_path / "runstore.v1-backup.db"
    assert backup.exists()
    assert version_of(backup) == 1
    conn = sqlite3.connect(backup)
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    conn.close()
    store.close()
    Store(path).close()  # opening again: nothing to do, no second backup
    assert sorted(p.name for p in tmp_path.iterdir() if "backup" in p.name) == ["runstore.v1-backup.db"]


def test_upgraded_schema_equals_a_fresh_one(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    write_version_1(old)
    Store(old).close()
    fresh = tmp_path / "fresh.db"
    Store(fresh).close()
    assert schema_of(old) == schema_of(fresh)


def test_older_file_opened_readonly_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "runstore.db"
    write_version_1(path)
    before = path.read_bytes()
    with pytest.raises(StoreReadOnlyError, match="needs an upgrade"):
        Store(path, readonly=True)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*backup*"))


def test_second_backup_gets_a_new_name(tmp_path: Path) -> None:
    path = tmp_path / "runstore.db"
    write_version_1(path)
    (tmp_path / "runstore.v1-backup.db").write_text("an earlier backup the user kept")
    Store(path).close()
    assert (tmp_path / "runstore.v1-backup.db").read_text() == "an earlier backup the user kept"
    assert version_of(tmp_path / "runstore.v1-backup-1.db") == 1


def test_migrations_are_ordered_scripts() -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS)
    for script in MIGRATIONS:
        assert _split_sql(script)


def write_version_7(path: Path) -> None:
    """A version-7 file (before ``interrupted``) with a run, tags, tasks, attempts, logs, artifacts, and a
    deleted run's ids above the largest left (the AUTOINCREMENT counters must not go back)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    for script in MIGRATIONS[:7]:
        for statement in _split_sql(script):
            conn.execute(statement)
    conn.executescript("""
        INSERT INTO store_info(key, value) VALUES ('uuid', '01d00000-0000-4000-8000-000000000007'),
                                                  ('created_at', '1.0');
        INSERT INTO flows(name, created_at, last_run_number) VALUES ('OldFlow', 1.0, 3);
        INSERT INTO runs(run_id, flow_id, run_number, uuid, user_name, namespace, status, created_at, finished_at)
            VALUES (1, 1, 1, '01d00000-0000-4000-8000-000000000101', 'anne', 'user:anne', 'succeeded', 100, 160),
                   (2, 1, 2, '01d00000-0000-4000-8000-000000000102', 'anne', 'user:anne', 'failed', 200, 230),
                   (3, 1, 3, '01d00000-0000-4000-8000-000000000103', 'anne', 'user:anne', 'failed', 300, 330);
        UPDATE runs SET origin_run_id = 1 WHERE run_id = 2;
        INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at)
            VALUES (1, 'user:anne', 1, 1, 100), (2, 'user:anne', 1, 1, 200), (2, 'keep', 0, 1, 200),
                   (3, 'user:anne', 1, 1, 300);
        INSERT INTO steps(step_id, run_id, name, created_at) VALUES (1, 1, 'start', 100), (2, 2, 'start', 200),
                                                                   (3, 3, 'start', 300);
        INSERT INTO tasks(task_id, run_id, step_id, created_at, finished_at, status, attempt)
            VALUES (1, 1, 1, 100, 101, 'succeeded', 0), (2, 2, 2, 200, 201, 'caught', 1),
                   (3, 3, 3, 300, 301, 'failed', 0);
        INSERT INTO attempts(task_id, attempt, started_at, finished_at, status, stdout, stderr, exception_type)
            VALUES (1, 0, 100, 101, 'succeeded', 'hello\n', '', NULL), (2, 0, 200, 200.5, 'failed', '', 'boom\n', 'E'),
                   (2, 1, 200.5, 201, 'caught', '', 'boom\n', 'E'), (3, 0, 300, 301, 'failed', 'x\n', '', 'E');
        INSERT INTO log_stamps(task_id, attempt, stream, line, ts) VALUES (1, 0, 'stdout', 0, 100.5);
        INSERT INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data) VALUES ('c1', 'none', 2, 1, X'3432');
        INSERT INTO blobs(blob_key, size, n_chunks, created_at) VALUES ('b1', 2, 1, 1);
        INSERT INTO blob_parts(blob_key, seq, chunk_key) VALUES ('b1', 0, 'c1');
        INSERT INTO artifacts(task_id, attempt, name, blob_key, encoding, type, size, created_at, json_value)
            VALUES (1, 0, 'answer', 'b1', 'json', 'int', 2, 101, '42');
        INSERT INTO metadata(task_id, attempt, name, value, type, created_at) VALUES (1, 0, 'attempt', '0', 'str', 101);
        INSERT INTO deleted_runs(uuid, pathspec, deleted_at) VALUES ('01d00000-0000-4000-8000-000000000109', 'OldFlow/9', 5);
    """)
    conn.execute("UPDATE sqlite_sequence SET seq = 9 WHERE name = 'runs'")  # run 9 was deleted
    conn.execute("UPDATE sqlite_sequence SET seq = 40 WHERE name = 'tasks'")
    conn.execute("PRAGMA user_version = 7")
    conn.close()


def dump(path: Path, *tables: str) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}
    finally:
        conn.close()


KEPT = ("runs", "run_tags", "steps", "tasks", "attempts", "log_stamps", "artifacts", "metadata", "blob_parts",
        "deleted_runs")


def test_version_7_file_keeps_its_rows_when_statuses_gain_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "runstore.db"
    write_version_7(path)
    before = dump(path, *KEPT)
    store = Store(path)
    assert version_of(path) == SCHEMA_VERSION
    after = dump(path, *KEPT)
    # Migration 8 moved the JSON preview from the artifact row to its blob (one text per value).
    moved = [row[:-1] + (None,) for row in before["artifacts"]]
    assert after == dict(before, artifacts=moved)  # every row, every column, nothing cascaded away
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT json_value FROM blobs WHERE blob_key = 'b1'").fetchone() == ("42",)
    assert conn.execute("SELECT run_id, name, value FROM run_params").fetchall() == []  # no _parameters step
    conn.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert dict(conn.execute("SELECT name, seq FROM sqlite_sequence WHERE name IN ('runs', 'tasks')")) == {
        "runs": 9, "tasks": 40}
    conn.close()
    assert store.integrity_problems() == []
    assert schema_of(path) == schema_of(_fresh(tmp_path))
    # The counters went on from the old high-water marks; the new status is accepted,
    # the trigger copying it into run_tags is back and the views read it.
    record = store.create_run("OldFlow", user="anne")
    assert (record.run_id, record.run_number) == (10, 4)
    task = store.create_task(record.run_id, "start")
    assert task == 41
    store.start_attempt(task, 0)
    store.finish_attempt(task, 0, "interrupted", exception=("builtins.KeyboardInterrupt", "interrupted", ""))
    store.finish_run(record.run_id, "interrupted")
    with store.read() as read:
        assert read.execute("SELECT DISTINCT run_status FROM run_tags WHERE run_id = 10").fetchall() == [
            ("interrupted",)]
        assert read.execute("SELECT pathspec, status FROM runs_view ORDER BY run_id").fetchall() == [
            ("OldFlow/1", "succeeded"), ("OldFlow/2", "failed"), ("OldFlow/3", "failed"),
            ("OldFlow/4", "interrupted")]
        assert read.execute("SELECT status FROM tasks_view WHERE task_id = 41").fetchone() == ("interrupted",)
    # the rebuilt tables' ON DELETE CASCADE: deleting run 3 takes its task and attempt, nothing else
    store.delete_runs(["OldFlow/3"], force=True)
    store.close()
    after = dump(path, "tasks", "attempts", "log_stamps")
    assert [row[0] for row in after["tasks"]] == [1, 2, 41]
    assert [row[:2] for row in after["attempts"]] == [(1, 0), (2, 0), (2, 1), (41, 0)]
    assert after["log_stamps"] == before["log_stamps"]


def _fresh(tmp_path: Path) -> Path:
    fresh = tmp_path / "fresh.db"
    Store(fresh).close()
    return fresh
