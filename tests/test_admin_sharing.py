"""export, merge and copying the .db alone: sharing a store loses nothing and adds nothing."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storefill import add_run, snapshot
from runstore import Store
from runstore.errors import InvalidPathspec, NotFound, StoreError


def _load(store: Store, pathspec_step: str, name: str):
    flow_run, step = pathspec_step.rsplit("/", 1)
    flow, number = flow_run.split("/")
    key, encoding = store.sql(
        "SELECT a.blob_key, a.encoding FROM artifacts a JOIN tasks t ON t.task_id = a.task_id"
        " JOIN steps s ON s.step_id = t.step_id JOIN runs r ON r.run_id = t.run_id"
        " JOIN flows f ON f.flow_id = r.flow_id WHERE f.name = ? AND r.run_number = ? AND s.name = ?"
        " AND a.name = ?", (flow, int(number), step, name)).rows[0]
    return store.load_value(key, encoding)


def test_export_two_runs_out_of_ten(tmp_path: Path):
    store = Store(tmp_path / "all.db")
    runs = [add_run(store, alpha=i / 10, model={"weights": [i] * 100}, result=b"r%d" % i) for i in range(10)]
    add_run(store, "OtherFlow", alpha=9.0)
    report = store.export_runs(["F/3", "F/7"], tmp_path / "two.db")
    assert report.copied == [("F/3", "F/3"), ("F/7", "F/7")]

    two = Store(tmp_path / "two.db")
    assert two.sql("SELECT pathspec FROM runs_view ORDER BY run_number").rows == [("F/3",), ("F/7",)]
    assert two.uuid != store.uuid
    # same UUIDs, numbers and task ids; provenance says where they came from
    for run in (runs[2], runs[6]):
        row = two.sql("SELECT uuid, source_store, source_run_number FROM runs WHERE run_number = ?",
                      (int(run["pathspec"].split("/")[1]),)).rows[0]
        assert row == (run["uuid"], store.uuid, int(run["pathspec"].split("/")[1]))
        task_ids = {name: tid for tid, name in two.sql(
            "SELECT t.task_id, s.name FROM tasks t JOIN steps s ON s.step_id = t.step_id"
            " JOIN runs r ON r.run_id = t.run_id WHERE r.uuid = ?", (run["uuid"],)).rows}
        assert task_ids == run["tasks"]
    # only the blobs those runs use (10 runs' distinct models are not all there)
    used = {k for (k,) in store.sql(
        "SELECT a.blob_key FROM artifacts a JOIN tasks t ON t.task_id = a.task_id JOIN runs r"
        " ON r.run_id = t.run_id WHERE r.run_number IN (3, 7) AND r.flow_id = 1"
        " UNION SELECT c.blob_key FROM code_packages c JOIN runs r ON r.code_id = c.code_id"
        " WHERE r.run_number IN (3, 7) AND r.flow_id = 1").rows}
    assert {k for (k,) in two.sql("SELECT blob_key FROM blobs").rows} == used
    assert _load(two, "F/7/start", "model") == {"weights": [6] * 100}
    assert _load(two, "F/3/end", "result") == b"r2"
    assert two.doctor().ok and not two.doctor().warnings
    # what users see of the two runs is identical in both files
    chosen = {runs[2]["uuid"], runs[6]["uuid"]}
    original, exported = snapshot(store), snapshot(two)
    for table in ("runs", "tasks", "artifacts", "attempts", "metadata", "code"):
        assert exported[table] == [row for row in original[table] if row[0] in chosen], table
    # a new run in the exported store continues after the highest exported number
    assert add_run(two)["pathspec"] == "F/8"
    two.close()


def test_export_refuses_bad_input(tmp_path: Path, memory_store: Store):
    add_run(memory_store)
    with pytest.raises(NotFound):
        memory_store.export_runs(["F/9"], tmp_path / "x.db")
    with pytest.raises(InvalidPathspec):
        memory_store.export_runs(["F/1/start"], tmp_path / "x.db")
    (tmp_path / "exists.db").write_bytes(b"")
    with pytest.raises(StoreError, match="already exists"):
        memory_store.export_runs(["F/1"], tmp_path / "exists.db")
    assert not (tmp_path / "x.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.db"]  # no temp files left


def test_merge_independent_stores_twice(tmp_path: Path):
    a, b = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    for i in range(3):
        add_run(a, alpha=i, model={"a": i}, tags=("from-a",))
    shared_model = {"shared": list(range(50))}
    for i in range(4):
        add_run(b, alpha=10 + i, model=shared_model, result=b"x" * 1000, tags=("from-b",), user="bob")
    add_run(b, "OnlyInB", alpha=1.0, user="bob")
    b_before = snapshot(b)

    report = a.merge_from(tmp_path / "b.db")
    assert report.renumbered == {"F/1": "F/4", "F/2": "F/5", "F/3": "F/6", "F/4": "F/7"}
    assert ("OnlyInB/1", "OnlyInB/1") in report.copied and len(report.copied) == 5
    assert report.blobs > 0 and report.chunks > 0
    first = snapshot(a)

    again = a.merge_from(tmp_path / "b.db")
    assert again.copied == [] and len(again.skipped) == 5 and again.blobs == 0 and again.chunks == 0
    assert snapshot(a) == first  # counts and data identical after the second merge
    assert snapshot(b) == b_before  # the source is untouched

    # every run of b is in a with its UUID, status, tags, artifacts and provenance
    for uuid, flow, status, user, ns, user_tags, sys_tags in b_before["runs"]:
        assert (uuid, flow, status, user, ns, user_tags, sys_tags) in first["runs"]
    assert set(b_before["artifacts"]) <= set(first["artifacts"])
    assert set(b_before["metadata"]) <= set(first["metadata"])
    assert set(b_before["attempts"]) <= set(first["attempts"])
    rows = a.sql("SELECT run_number, source_store, source_run_number FROM runs r JOIN flows f"
                 " ON f.flow_id = r.flow_id WHERE f.name = 'F' ORDER BY run_number").rows
    assert rows[:3] == [(1, None, None), (2, None, None), (3, None, None)]
    assert rows[3:] == [(n, b.uuid, n - 3) for n in (4, 5, 6, 7)]
    # values load, the shared model is stored once, the next run continues the numbering
    assert _load(a, "F/5/start", "model") == shared_model
    assert a.sql("SELECT count(*) FROM blobs b JOIN artifacts x ON x.blob_key = b.blob_key"
                 " WHERE x.name = 'model' AND x.type = 'dict'").rows[0][0] == 7
    assert add_run(a)["pathspec"] == "F/8"
    assert a.doctor().ok
    # task ids stay unique store-wide
    assert a.sql("SELECT count(*) = count(DISTINCT task_id) FROM tasks").rows == [(1,)]


def test_merge_keeps_resume_links(tmp_path: Path):
    a, b = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    add_run(a)
    origin = add_run(b)
    resumed = b.create_run("F", user="tester", invocation="resume", origin_run_id=origin["run_id"],
                           origin_pathspec="F/1")
    old_task = origin["tasks"]["start"]
    clone = b.create_task(resumed.run_id, "start", origin_task_id=old_task,
                          origin_pathspec=f"F/1/start/{old_task}")
    b.start_attempt(clone, 0)
    b.finish_attempt(clone, 0, "succeeded", metadata={"origin-run-id": "1", "origin-task-id": str(old_task)})
    b.finish_run(resumed.run_id, "succeeded")

    report = a.merge_from(b)
    assert report.renumbered == {"F/1": "F/2", "F/2": "F/3"}
    run = a.sql("SELECT origin_run_id, origin_pathspec FROM runs WHERE run_number = 3").rows[0]
    assert run == (a.sql("SELECT run_id FROM runs WHERE run_number = 2").rows[0][0], "F/2")
    new_origin = a.sql("SELECT t.task_id FROM tasks t JOIN steps s ON s.step_id = t.step_id"
                       " JOIN runs r ON r.run_id = t.run_id WHERE r.run_number = 2 AND s.name = 'start'").rows[0][0]
    cloned = a.sql("SELECT t.task_id, t.origin_task_id, t.origin_pathspec FROM tasks t JOIN runs r"
                   " ON r.run_id = t.run_id WHERE r.run_number = 3").rows[0]
    assert cloned[1:] == (new_origin, f"F/2/start/{new_origin}")
    meta = dict(a.sql("SELECT name, value FROM metadata WHERE task_id = ?", (cloned[0],)).rows)
    assert meta == {"origin-run-id": "2", "origin-task-id": str(new_origin)}


def test_merge_is_all_or_nothing(tmp_path: Path):
    a, b = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    add_run(a)
    add_run(b, model="first")
    add_run(b, model="only in b")
    b.close()
    raw = sqlite3.connect(tmp_path / "b.db")  # damage b: the last value's chunk disappears
    raw.execute("DELETE FROM blob_chunks WHERE chunk_id = (SELECT max(chunk_id) FROM blob_chunks)")
    raw.commit()
    raw.close()
    before = snapshot(a)
    with pytest.raises(StoreError, match="missing"):
        a.merge_from(tmp_path / "b.db")
    assert snapshot(a) == before


def test_merge_refuses_self_and_missing(tmp_path: Path, file_store: Store):
    with pytest.raises(StoreError, match="itself"):
        file_store.merge_from(file_store.path)
    with pytest.raises(StoreError, match="does not exist"):
        file_store.merge_from(tmp_path / "nope.db")
    (tmp_path / "text.db").write_text("hello, not sqlite " * 20)
    with pytest.raises(StoreError):
        file_store.merge_from(tmp_path / "text.db")


def test_copying_only_the_db_file_of_a_finished_store_loses_nothing(tmp_path: Path):
    store = Store(tmp_path / "orig.db")
    for i in range(3):
        add_run(store, alpha=i, model={"m": i}, result=bytes(range(256)) * 100)
    expected = snapshot(store)
    # the store is still open (its WAL file may exist): copy just the .db
    shutil.copyfile(tmp_path / "orig.db", tmp_path / "copy.db")
    copy = Store(tmp_path / "copy.db", readonly=True)
    assert snapshot(copy) == expected
    assert _load(copy, "F/3/end", "result") == bytes(range(256)) * 100
    assert copy.doctor().ok


FLOW = '''
from runstore import FlowSpec, Parameter, step


class CopyFlow(FlowSpec):
    size = Parameter("size", default=1000)

    @step
    def start(self):
        self.blob = bytes(range(256)) * self.size
        self.numbers = list(range(self.size))
        print("started")
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.numbers)


if __name__ == "__main__":
    CopyFlow()
'''


def test_db_file_alone_is_complete_after_a_real_run(tmp_path: Path):
    flow = tmp_path / "copy_flow.py"
    flow.write_text(FLOW)
    db = tmp_path / "runstore.db"
    reader = Store(db)  # an idle reader keeps the WAL file from being deleted at exit
    for size in (1000, 2000):
        proc = subprocess.run([sys.executable, str(flow), "--db", str(db), "--quiet", "run", "--size", str(size)],
                              capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    expected = snapshot(reader)
    assert len(expected["runs"]) == 2 and all(r[2] == "succeeded" for r in expected["runs"])
    shutil.copyfile(db, tmp_path / "copy.db")  # the .db only, not -wal / -shm
    copy = Store(tmp_path / "copy.db", readonly=True)
    assert snapshot(copy) == expected
    assert _load(copy, "CopyFlow/2/start", "blob") == bytes(range(256)) * 2000
    assert _load(copy, "CopyFlow/2/end", "total") == sum(range(2000))
    assert copy.doctor().ok


def test_merge_real_runs_and_read_them_with_the_client(tmp_path: Path):
    from runstore import Flow, Run
    from runstore.namespace import namespace

    flow = tmp_path / "copy_flow.py"
    flow.write_text(FLOW)
    for name, sizes in (("a.db", (1, 2)), ("b.db", (3, 4, 5))):
        for size in sizes:
            proc = subprocess.run([sys.executable, str(flow), "--db", str(tmp_path / name), "--quiet", "run",
                                   "--size", str(size)], capture_output=True, text=True, cwd=tmp_path)
            assert proc.returncode == 0, proc.stderr
    a = Store(tmp_path / "a.db")
    report = a.merge_from(tmp_path / "b.db")
    # b's 1 and 2 collide with a's; then b's 3 collides with the new 3
    assert report.renumbered == {"CopyFlow/1": "CopyFlow/3", "CopyFlow/2": "CopyFlow/4", "CopyFlow/3": "CopyFlow/5"}
    assert len(report.copied) == 3
    first = snapshot(a)
    assert a.merge_from(tmp_path / "b.db").copied == []
    assert snapshot(a) == first
    namespace(None)
    totals = {run.id: run.data.total for run in Flow("CopyFlow", store=a)}
    assert totals == {"1": 0, "2": 1, "3": 3, "4": 6, "5": 10}
    merged = Run("CopyFlow/3", store=a)
    assert merged.successful and merged["start"].task.stdout == "started\n"
    assert merged.code is not None and "class CopyFlow" in merged.code.flowspec
    assert a.doctor().ok


def test_merge_from_an_older_schema_leaves_that_file_untouched(tmp_path: Path, file_store: Store):
    from test_migration import OLD_STORE_UUID, write_version_1

    old = tmp_path / "old.db"
    write_version_1(old)
    before = old.read_bytes()
    report = file_store.merge_from(old)
    assert report.copied == [("OldFlow/7", "OldFlow/7")]
    assert file_store.sql("SELECT v.pathspec, v.user, v.status, r.source_store FROM runs_view v"
                          " JOIN runs r USING (run_id)").rows == [("OldFlow/7", "anne", "succeeded", OLD_STORE_UUID)]
    assert old.read_bytes() == before  # read from a private upgraded copy
    assert not [p for p in tmp_path.iterdir() if "backup" in p.name]  # no upgrade backup next to it
    assert file_store.merge_from(old).copied == []


def test_merge_from_a_directory_says_so(file_store: Store, tmp_path: Path):
    folder = tmp_path / "somedir"
    folder.mkdir()
    with pytest.raises(StoreError, match="is a directory"):
        file_store.merge_from(folder)


def test_export_no_runs_is_refused(file_store: Store, tmp_path: Path):
    out = tmp_path / "empty.db"
    with pytest.raises(InvalidPathspec, match="at least one run"):
        file_store.export_runs([], out)
    with pytest.raises(InvalidPathspec):
        file_store.export_runs(iter(()), out)
    assert not out.exists()


def test_remerging_does_not_bring_back_deleted_runs(tmp_path: Path):
    """Issue #19: a deleted run's UUID is remembered; merging the colleague's file
    again skips it (and says so) unless include_deleted."""
    mine, theirs = Store(tmp_path / "mine.db"), Store(tmp_path / "theirs.db")
    add_run(mine, alpha=0.1)
    for alpha in (0.2, 0.3):
        add_run(theirs, alpha=alpha)
    theirs.close()
    first = mine.merge_from(tmp_path / "theirs.db")
    assert first.renumbered == {"F/1": "F/2", "F/2": "F/3"} and first.deleted == []
    uuid_of_2 = mine.sql("SELECT uuid FROM runs WHERE run_number = 2").rows[0][0]
    assert mine.delete_runs(["F/2"]) == ["F/2"]
    assert mine.sql("SELECT uuid, pathspec FROM deleted_runs").rows == [(uuid_of_2, "F/2")]

    again = mine.merge_from(tmp_path / "theirs.db")
    assert again.copied == [] and again.deleted == ["F/1"] and again.skipped == ["F/2"]
    assert "1 deleted here before" in again.summary()
    assert mine.sql("SELECT run_number FROM runs ORDER BY run_number").rows == [(1,), (3,)]

    back = mine.merge_from(tmp_path / "theirs.db", include_deleted=True)
    assert back.copied == [("F/1", "F/4")] and back.deleted == []
    assert mine.sql("SELECT uuid FROM runs WHERE run_number = 4").rows == [(uuid_of_2,)]
    assert mine.sql("SELECT count(*) FROM deleted_runs").rows == [(0,)]  # tombstone forgotten
    assert mine.merge_from(tmp_path / "theirs.db").copied == []


def test_merge_cli_skips_deleted_runs_unless_include_deleted(tmp_path: Path):
    from helpers import invoke_cli

    mine, theirs = Store(tmp_path / "mine.db"), Store(tmp_path / "theirs.db")
    add_run(theirs)
    theirs.close()
    mine.merge_from(tmp_path / "theirs.db")
    mine.delete_runs(["F"])
    mine.close()
    result = invoke_cli("merge", str(tmp_path / "theirs.db"), db=tmp_path / "mine.db")
    assert result.exit_code == 0
    assert "copied 0 runs (0 already present, 1 deleted here before)" in result.output
    assert "not copied (deleted here before; --include-deleted to copy): F/1" in result.output
    assert Store(tmp_path / "mine.db").sql("SELECT count(*) FROM runs").rows == [(0,)]
    result = invoke_cli("merge", "--include-deleted", "--json", str(tmp_path / "theirs.db"), db=tmp_path / "mine.db")
    assert result.exit_code == 0 and '"deleted": []' in result.output
    assert Store(tmp_path / "mine.db").sql("SELECT run_number FROM runs").rows == [(1,)]  # its own number again
