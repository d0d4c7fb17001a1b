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
