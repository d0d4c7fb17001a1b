"""delete, gc and doctor: space comes back, shared and in-flight values survive, doctor sees damage."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storefill import add_run
from runstore import Store
from runstore.errors import InvalidPathspec, NotFound, StoreError


def _file_size(path: Path) -> int:
    return path.stat().st_size + (Path(f"{path}-wal").stat().st_size if Path(f"{path}-wal").exists() else 0)


def test_delete_and_gc_shrink_the_file_and_keep_shared_blobs(tmp_path: Path):
    path = tmp_path / "s.db"
    store = Store(path)
    shared = os.urandom(1 << 20)
    for i in range(4):
        add_run(store, model=os.urandom(1 << 20), result=shared)
    keep_model = store.sql("SELECT a.blob_key FROM artifacts a JOIN tasks t ON t.task_id = a.task_id"
                           " JOIN runs r ON r.run_id = t.run_id WHERE r.run_number = 4 AND a.name = 'model'").rows
    before = _file_size(path)
    assert store.delete_runs(["F/1", "F/2", "F/3"]) == ["F/1", "F/2", "F/3"]
    assert store.sql("SELECT count(*) FROM tasks").rows == [(3,)]  # cascaded

    dry = store.gc(dry_run=True)
    assert dry.blobs == 3 and dry.bytes_freed > 3 * (1 << 20) - 1000
    assert store.sql("SELECT count(*) FROM blobs").rows[0][0] > 3  # dry run changed nothing

    report = store.gc()
    assert (report.blobs, report.chunks) == (dry.blobs, dry.chunks)
    assert report.file_after is not None and report.file_after < before - 3 * (1 << 20)
    assert _file_size(path) == report.file_after
    # the run that is left still has all its values, including the one it shared
    assert store.load_value(keep_model[0][0], "bytes") is not None
    key = store.sql("SELECT blob_key FROM artifacts WHERE name = 'result'").rows[0][0]
    assert store.load_value(key, "bytes") == shared
    doctor = store.doctor()
    assert doctor.ok and doctor.warnings == []
    assert store.gc().blobs == 0  # nothing left to collect


def test_delete_whole_flow_keeps_numbering(memory_store: Store):
    for _ in range(3):
        add_run(memory_store)
    add_run(memory_store, "G")
    assert memory_store.delete_runs(["F"]) == ["F/1", "F/2", "F/3"]
    assert memory_store.sql("SELECT pathspec FROM runs_view").rows == [("G/1",)]
    assert add_run(memory_store)["pathspec"] == "F/4"  # numbers are never reused
    with pytest.raises(NotFound):
        memory_store.delete_runs(["F/1"])
    with pytest.raises(InvalidPathspec):
        memory_store.delete_runs(["F/x"])


def test_delete_is_all_or_nothing(memory_store: Store):
    add_run(memory_store)
    with pytest.raises(NotFound):
        memory_store.delete_runs(["F/1", "F/2"])
    assert memory_store.sql("SELECT count(*) FROM runs").rows == [(1,)]


def test_gc_keeps_what_a_live_run_is_writing(tmp_path: Path):
    store = Store(tmp_path / "s.db")
    add_run(store, model="old")
    store.delete_runs(["F/1"])
    # a live run (this process owns it) has flushed the chunks of a value but not yet
    # committed the artifact that uses it; and it put a value it will reference later
    live = store.create_run("F", user="tester")
    prepared = store.prepare_value(os.urandom(40 << 20))  # > 2 chunks: flushed early
    in_flight = store.sql("SELECT count(*) FROM blob_chunks b WHERE NOT EXISTS"
                          " (SELECT 1 FROM blob_parts p WHERE p.chunk_key = b.chunk_key)").rows[0][0]
    assert in_flight >= 2
    later = store.put_value({"to be used": True})
    report = store.gc()
    assert report.kept_after is not None
    assert report.blobs > 0  # the deleted run's values went
    task = store.create_task(live.run_id, "start")
    store.start_attempt(task, 0)
    store.finish_attempt(task, 0, "succeeded", artifacts={"big": prepared, "later": later})
    store.finish_run(live.run_id, "succeeded")
    assert store.doctor().ok
    assert len(store.load_value(prepared.stored.blob_key, "bytes")) == 40 << 20


def test_gc_collects_everything_when_the_only_running_run_is_dead(tmp_path: Path):
    store = Store(tmp_path / "s.db")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    store.create_run("F", user="tester", owner_pid=int(dead))
    store.put_value("orphan")
    report = store.gc()
    assert report.kept_after is None and report.blobs == 1
    doctor = store.doctor()
    assert doctor.ok and "F/1" in doctor.warnings[0] and "crashed" in doctor.warnings[0]


def test_doctor_reports_damage(tmp_path: Path):
    path = tmp_path / "s.db"
    store = Store(path)
    add_run(store, model="m1", result=b"r" * 5000)
    store.close()
    raw = sqlite3.connect(path)  # without foreign keys, as a careless tool would
    raw.execute("DELETE FROM blob_chunks WHERE chunk_id = (SELECT max(chunk_id) FROM blob_chunks)")
    raw.execute("DELETE FROM blobs WHERE blob_key = (SELECT blob_key FROM artifacts WHERE name = 'model')")
    raw.commit()
    raw.close()
    report = Store(path, readonly=True).doctor()
    assert not report.ok
    text = "\n".join(report.problems)
    assert "has 0 of 1 chunks" in text
    assert "artifact F/1/start/" in text and ".model points at missing blob" in text


def test_delete_refuses_a_live_run_but_not_a_crashed_one(memory_store: Store):
    live = memory_store.create_run("F", user="tester")  # owned by this (living) process
    with pytest.raises(StoreError, match="F/1 is still running"):
        memory_store.delete_runs(["F"])
    memory_store.finish_run(live.run_id, "failed")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    memory_store.create_run("F", user="tester", owner_pid=int(dead))
    assert memory_store.delete_runs(["F"]) == ["F/1", "F/2"]
