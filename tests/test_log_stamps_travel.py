"""Per-line log times (``log_stamps``) travel with the logs: export, merge and resume's clones
keep ``Task.loglines`` equal to the original's; a hostile file's stamps are bounded on merge."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import run_flow

from runstore import Run, Store

FLOW = '''
import os, sys, time
from runstore import FlowSpec, step


class StampFlow(FlowSpec):
    @step
    def start(self):
        print("first", flush=True)
        print("warned", file=sys.stderr, flush=True)
        time.sleep(0.6)
        print("second", flush=True)
        time.sleep(0.6)
        print("third")
        self.next(self.end)

    @step
    def end(self):
        if os.environ.get("STAMP_FAIL"):
            raise RuntimeError("boom")


if __name__ == "__main__":
    StampFlow()
'''


def lines_of(store: Store, pathspec: str, step: str = "start") -> dict[str, list[tuple[object, str]]]:
    task = Run(pathspec, store=store, _namespace_check=False)[step].task
    return {stream: list(task.loglines(stream)) for stream in ("stdout", "stderr")}


@pytest.fixture
def streamed(tmp_path: Path) -> tuple[Path, Path]:
    """A store with StampFlow/1 (failed at end) run by workers: its start's lines have distinct times."""
    script = tmp_path / "stamp_flow.py"
    script.write_text(FLOW)
    db = tmp_path / "runstore.db"
    proc = run_flow(script, db, "run", "--max-workers", "2", env={"STAMP_FAIL": "1", "RUNSTORE_USER": "anne"})
    assert proc.returncode == 1, proc.stderr
    return script, db


def test_export_and_merge_keep_the_line_times(streamed: tuple[Path, Path], tmp_path: Path) -> None:
    _, db = streamed
    store = Store(db)
    original = lines_of(store, "StampFlow/1")
    assert [line for _, line in original["stdout"]] == ["first", "second", "third"]
    assert len({when for when, _ in original["stdout"]}) == 3  # three batches, three times
    assert [line for _, line in original["stderr"]] == ["warned"]

    exported = tmp_path / "out.db"
    store.export_runs(["StampFlow/1"], exported)
    assert lines_of(Store(exported), "StampFlow/1") == original

    other = Store(tmp_path / "other.db")
    other.create_run("StampFlow", user="will")  # the merged run is renumbered to 2
    other.merge_from(db)
    assert lines_of(other, "StampFlow/2") == original


def test_resume_clones_keep_the_line_times(streamed: tuple[Path, Path]) -> None:
    script, db = streamed
    resumed = run_flow(script, db, "resume", "--max-workers", "2", env={"RUNSTORE_USER": "anne"})
    assert resumed.returncode == 0, resumed.stderr
    store = Store(db)
    clone = Run("StampFlow/2", store=store, _namespace_check=False)["start"].task
    assert clone.origin_pathspec is not None or clone.metadata_dict.get("origin-task-id")
    assert lines_of(store, "StampFlow/2") == lines_of(store, "StampFlow/1")


def test_a_clone_of_an_inline_attempt_keeps_its_start_time(tmp_path: Path) -> None:
    script = tmp_path / "stamp_flow.py"
    script.write_text(FLOW.replace("time.sleep(0.6)", "pass"))
    db = tmp_path / "runstore.db"
    env = {"RUNSTORE_USER": "anne"}
    assert run_flow(script, db, "run", "--max-workers", "1", env={**env, "STAMP_FAIL": "1"}).returncode == 1
    resumed = run_flow(script, db, "resume", "--max-workers", "1", env=env)
    assert resumed.returncode == 0, resumed.stderr
    store = Store(db)
    original = lines_of(store, "StampFlow/1")
    assert [line for _, line in original["stdout"]] == ["first", "second", "third"]
    assert lines_of(store, "StampFlow/2") == original


def test_hostile_log_stamps_are_bounded_on_merge(streamed: tuple[Path, Path], tmp_path: Path) -> None:
    _, db = streamed
    original = lines_of(Store(db), "StampFlow/1")
    conn = sqlite3.connect(db)
    before = conn.execute("SELECT stream, line, ts FROM log_stamps ORDER BY 1, 2, 3").fetchall()
    task_id, attempt = conn.execute(
        "SELECT t.task_id, t.attempt FROM tasks t JOIN steps s ON s.step_id = t.step_id WHERE s.name = 'start'").fetchone()
    end_task = conn.execute(
        "SELECT t.task_id FROM tasks t JOIN steps s ON s.step_id = t.step_id WHERE s.name = 'end'").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA ignore_check_constraints = ON")
    hostile = [
        (task_id, attempt, "stdout", 10**9, 1.0),        # far past the last line
        (task_id, attempt, "stdout", -5, 1.0),           # before the first
        (task_id, attempt, "stdout", "1; DROP", 1.0),     # not a line number
        (task_id, attempt, "stderr", 1, 1e300),          # not a time
        (task_id, attempt, "stdout", 3, -1.0),           # before 1970
        (task_id, attempt, "evil", 0, 1.0),              # no such stream
        (task_id, attempt + 7, "stdout", 0, 1.0),        # no such attempt
        (99999, 0, "stdout", 0, 1.0),                    # no such task
    ]
    conn.executemany("INSERT INTO log_stamps(task_id, attempt, stream, line, ts) VALUES (?, ?, ?, ?, ?)", hostile)
    conn.executemany("INSERT INTO log_stamps(task_id, attempt, stream, line, ts) VALUES (?, ?, ?, ?, ?)",
                     [(end_task, 0, "stdout", line, 1.0) for line in range(5000)])  # the end step printed nothing
    conn.commit()
    conn.close()

    victim = Store(tmp_path / "victim.db")
    report = victim.merge_from(db)
    assert report.copied
    assert lines_of(victim, "StampFlow/1") == original  # the bad rows changed nothing
    assert victim.sql("SELECT stream, line, ts FROM log_stamps ORDER BY 1, 2, 3").rows == before
    assert victim.sql("SELECT max(ts) < 1e11, min(ts) > 0 FROM log_stamps").rows == [(1, 1)]
