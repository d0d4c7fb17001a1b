"""resume and run --clone (SPEC §9), run as users run them: real flow files, subprocesses, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import run_flow

from runstore import NotFound, ResumeError, Run, Runner, Store, get_version, namespace

FLOWS = Path(__file__).parent / "flows"
RESUME_FLOW = FLOWS / "resume_flow.py"
FOREACH_FLOW = FLOWS / "resume_foreach_flow.py"


def count(store: Store, table: str) -> int:
    with store.read() as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def artifact_keys(task: Any) -> dict[str, str]:
    return {a.id: a.sha for a in task.artifacts}


def run_of(store: Store, pathspec: str) -> Run:
    return Run(pathspec, store=store, _namespace_check=False)


def test_failed_middle_step_resumed_twice_then_start(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    fail = tmp_path / "fail"
    fail.touch()
    env = {"RESUME_FAIL_FILE": str(fail)}
    first = run_flow(RESUME_FLOW, db, "run", "--alpha", "3", "--tag", "orig", env=env)
    assert first.returncode == 1 and "middle fails on purpose" in first.stderr
    store = Store(db)
    blobs_before = count(store, "blobs")

    again = run_flow(RESUME_FLOW, db, "resume", "--tag", "retry", env=env)  # fails again
    assert again.returncode == 1
    assert "Cloning previously run task ResumeFlow/1/start/" in again.stderr
    assert count(store, "blobs") == blobs_before  # start cloned by reference: no new blob
    fail.unlink()
    done = run_flow(RESUME_FLOW, db, "resume", env=env)
    assert done.returncode == 0, done.stderr

    orig, second, third = (run_of(store, f"ResumeFlow/{n}") for n in (1, 2, 3))
    # both resumes name the first run as origin (not the previous resume)
    assert second.origin_pathspec == third.origin_pathspec == "ResumeFlow/1"
    assert second.invocation == third.invocation == "resume" and orig.origin_pathspec is None
    assert not second.successful and third.successful
    assert second.user_tags == frozenset({"retry"}) and third.user_tags == frozenset()
    assert third.data.origin == "1" and third.data.total == 3 * sum(range(1000))  # parameters frozen

    start0, start2 = orig["start"].task, third["start"].task
    assert start2.origin_pathspec == start0.pathspec
    assert artifact_keys(start2) == artifact_keys(start0)  # same blobs
    assert start2.stdout == start0.stdout == "start origin=None\n"  # logs kept on the clone
    meta = start2.metadata_dict
    assert meta["origin-run-id"] == "1" and meta["origin-task-id"] == start0.id
    middle = third["middle"].task
    assert middle.origin_pathspec is None and middle.stdout == "middle origin=1\n"
    assert middle.metadata_dict["origin-run-id"] == "1" and "origin-task-id" not in middle.metadata_dict
    assert third.data.alpha == 3
    assert f"runstore_version:{get_version()}" in third.system_tags
    assert start2.metadata_dict["runstore_version"] == get_version()

    # resume start: everything runs again (only the parameters are taken over)
    everything = run_flow(RESUME_FLOW, db, "resume", "start", "--origin-run-id", "3")
    assert everything.returncode == 0, everything.stderr
    assert "Cloning previously run task" not in everything.stderr
    fourth = run_of(store, "ResumeFlow/4")
    assert fourth.origin_pathspec == "ResumeFlow/3"
    assert all(s.task.origin_pathspec is None for s in fourth)
    assert fourth.data.alpha == 3 and fourth.data.origin == "3"


def test_another_user_resumes_into_their_namespace(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    fail = tmp_path / "fail"
    fail.touch()
    anne = run_flow(RESUME_FLOW, db, "run", env={"RUNSTORE_USER": "anne", "RESUME_FAIL_FILE": str(fail)})
    assert anne.returncode == 1
    fail.unlink()
    # will has no run of his own: the default origin is per user
    nothing = run_flow(RESUME_FLOW, db, "resume", env={"RUNSTORE_USER": "will"})
    assert nothing.returncode != 0 and "will has no run of ResumeFlow" in nothing.stderr
    assert "Traceback" not in nothing.stderr
    will = run_flow(RESUME_FLOW, db, "resume", "--origin-run-id", "1", "--tag", "fixed",
                env={"RUNSTORE_USER": "will"})
    assert will.returncode == 0, will.stderr
    store = Store(db)
    run = run_of(store, "ResumeFlow/2")  # the refused resume above created no run
    assert run.user == "will" and run.namespace == "user:will"
    assert "user:will" in run.system_tags and "user:anne" not in run.tags
    assert run.user_tags == frozenset({"fixed"})
    assert run.origin_pathspec == "ResumeFlow/1"
    namespace("user:will")
    assert Run("ResumeFlow/2", store=store).successful
    assert run["start"].task.origin_pathspec == run_of(store, "ResumeFlow/1")["start"].task.pathspec


def test_unknown_origin_or_step_creates_no_run(file_store: Store) -> None:
    runner = Runner(RESUME_FLOW, store=file_store)
    with pytest.raises(NotFound, match="no run of ResumeFlow"):
        runner.resume()
    first = runner.run(alpha=2)
    assert first.successful
    with pytest.raises(NotFound, match="could not find run ResumeFlow/42"):
        runner.resume(origin_run_id=42)
    with pytest.raises(ResumeError, match="invalid step name 'bogus'"):
        runner.resume("bogus")
    with pytest.raises(ResumeError):
        runner.resume(origin_run_id="latest")
    assert count(file_store, "runs") == 1
    # CLI: one line, non-zero exit, no run
    db = file_store.path
    bad = run_flow(RESUME_FLOW, db, "resume", "--origin-run-id", "9")
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0
    assert bad.stderr.startswith("Error: Resume could not find run ResumeFlow/9")
    bogus = run_flow(RESUME_FLOW, db, "resume", "bogus")
    assert bogus.returncode == 2 and bogus.stderr.startswith("Error: invalid step name 'bogus'")
    assert count(file_store, "runs") == 1


def test_resume_of_a_successful_run_clones_everything(memory_store: Store) -> None:
    runner = Runner(RESUME_FLOW, store=memory_store)
    runner.run(alpha=5, label="x")
    blobs = count(memory_store, "blobs")
    resumed = runner.resume()
    assert resumed.successful and resumed.origin_pathspec == "ResumeFlow/1"
    assert all(s.task.origin_pathspec for s in resumed)
    assert resumed.data.alpha == 5 and resumed.data.label == "x"
    assert count(memory_store, "blobs") == blobs
    again = runner.resume("end")
    assert again.origin_pathspec == "ResumeFlow/1"  # resumes never become the default origin
    assert again["middle"].task.origin_pathspec and again["end"].task.origin_pathspec is None


def test_foreach_children_matched_by_index(memory_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fail = tmp_path / "fail"
    fail.touch()
    monkeypatch.setenv("FAIL_FILE", str(fail))
    monkeypatch.setenv("FAIL_INDEX", "2")  # inline tasks: the children after a failure never start
    runner = Runner(FOREACH_FLOW, store=memory_store)
    first = runner.run(raise_on_failure=False)
    assert not first.successful
    fail.unlink()
    resumed = runner.resume()
    assert resumed.successful
    assert resumed.data.outs == ["a0", "b1", "c2"]
    origin = {t.index: t for t in first["each"]}
    children = {t.index: t for t in resumed["each"]}
    # children 0 and 1 cloned from the same index, child 2 ran again
    for i in (0, 1):
        assert children[i].origin_pathspec == origin[i].pathspec
        assert children[i].foreach_path == origin[i].foreach_path == f"start:{i}"
        assert artifact_keys(children[i]) == artifact_keys(origin[i])
    assert children[2].origin_pathspec is None and children[2].data.out == "c2"
    assert resumed["start"].task.origin_pathspec == first["start"].task.pathspec
    assert resumed["join"].task.origin_pathspec is None
    # resume of the split step: every child runs again
    split = runner.resume("start", origin_run_id=2)
    assert all(t.origin_pathspec is None for t in split["each"])


def test_resume_of_a_killed_run(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    block = tmp_path / "block"
    block.touch()
    env = {**os.environ, "RESUME_BLOCK_FILE": str(block)}
    proc = subprocess.Popen([sys.executable, str(RESUME_FLOW), "--db", str(db), "--quiet", "run", "--max-workers", "2"],
                            env=env, start_new_session=True)
    store = Store(db)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with store.read() as conn:
            running = conn.execute("SELECT count(*) FROM tasks t JOIN steps s ON s.step_id = t.step_id"
                                   " WHERE s.name = 'middle' AND t.status = 'running'").fetchone()[0]
        if running:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the middle step never started")
    os.killpg(proc.pid, signal.SIGKILL)  # scheduler and worker, mid-step
    proc.wait()
    block.unlink()
    crashed = run_of(store, "ResumeFlow/1")
    assert crashed.status == "crashed"
    done = run_flow(RESUME_FLOW, db, "resume")
    assert done.returncode == 0, done.stderr
    assert "Resuming ResumeFlow/1 (by tester, crashed)." in done.stderr
    resumed = run_of(store, "ResumeFlow/2")
    assert resumed.successful and resumed.origin_pathspec == "ResumeFlow/1"
    assert resumed["start"].task.origin_pathspec == crashed["start"].task.pathspec
    assert resumed["middle"].task.origin_pathspec is None


def test_run_clone_keeps_the_other_parameters(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    first = run_flow(RESUME_FLOW, db, "run", "--alpha", "7", "--label", "orig", "--learning-rate", "0.5")
    assert first.returncode == 0, first.stderr
    clone = run_flow(RESUME_FLOW, db, "run", "--clone", "1", "--learning-rate", "0.1")
    assert clone.returncode == 0, clone.stderr
    store = Store(db)
    run = run_of(store, "ResumeFlow/2")
    assert run.invocation == "run" and run.origin_pathspec is None
    assert (run.data.alpha, run.data.label, run.data.learning_rate) == (7, "orig", 0.1)
    assert run["start"].task.origin_pathspec is None  # a fresh run: nothing cloned
    missing = run_flow(RESUME_FLOW, db, "run", "--clone", "12")
    assert missing.returncode == 1 and "cannot clone ResumeFlow/12" in missing.stderr
    assert count(store, "runs") == 2
    # from Python too
    again = Runner(RESUME_FLOW, store=store).run(clone=2, alpha=1)
    assert (again.data.alpha, again.data.label, again.data.learning_rate) == (1, "orig", 0.1)


def test_nested_foreach_clones_by_full_foreach_path(memory_store: Store) -> None:
    runner = Runner(FLOWS / "nested_flow.py", store=memory_store)
    first = runner.run()
    resumed = runner.resume("inner_join")
    assert resumed.data.grid == first.data.grid == [["a1", "a2", "a3"], ["b1", "b2", "b3"]]
    origin = {t.foreach_path: t.pathspec for t in first["per_number"]}
    cells = {t.foreach_path: t.origin_pathspec for t in resumed["per_number"]}
    assert cells == origin and len(cells) == 6  # start:1,per_letter:2 -> the same path in the origin
    assert all(t.origin_pathspec is None for t in resumed["inner_join"])


def test_foreach_elements_survive_gc_and_export_so_resume_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each foreach element is a blob of its own; only the child's _foreach_input row keeps
    # it referenced. Without that row gc dropped the elements and export left them out,
    # and the resume below failed with NotFound (found by review, pinned here).
    store = Store(tmp_path / "runstore.db")
    fail = tmp_path / "fail"
    fail.touch()
    monkeypatch.setenv("FAIL_FILE", str(fail))
    monkeypatch.setenv("FAIL_INDEX", "2")
    runner = Runner(FOREACH_FLOW, store=store)
    first = runner.run(raise_on_failure=False)
    assert not first.successful
    assert not any("no longer used" in w for w in store.doctor().warnings)
    assert store.gc().blobs == 0
    exported = store.export_runs([first.pathspec], tmp_path / "export.db")
    assert len(exported.copied) == 1
    fail.unlink()
    for target in (store, Store(tmp_path / "export.db")):
        resumed = Runner(FOREACH_FLOW, store=target).resume(origin_run_id=first.id)
        assert resumed.successful
        assert resumed.data.outs == ["a0", "b1", "c2"]
        children = {t.index: t for t in resumed["each"]}
        assert children[0].origin_pathspec is not None and children[2].origin_pathspec is None
