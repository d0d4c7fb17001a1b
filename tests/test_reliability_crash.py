"""kill -9 at named points of a real run, then: a sound file, nothing half-visible, resume.

Each case runs ``python tests/flows/crash_flow.py run`` as a user would, stops the
run at one point, SIGKILLs either the scheduler (the ``run`` process) or the worker
running the task, and checks what a user would see afterwards:

* the file passes ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check``;
* every artifact listed (through the client, and every artifact row in the file)
  loads: no half-written value is visible;
* the run shows as ``crashed`` (scheduler killed) or ``failed`` (worker killed), never
  successful;
* ``python crash_flow.py resume --origin-run-id 1`` completes it, with artifacts equal
  to a clean run's, cloning exactly the steps upstream of the kill.

The points: user code of a step (the flow sleeps there, ``CRASH_FLOW_WAIT_IN``);
``task_persist`` (a 20 MiB array encoded, its first 16 MiB chunk written in its own
transaction, the attempt's commit not yet done) and ``run_finish`` (every task done,
the run's final status not yet written), both through the runtime's test hook
``RUNSTORE_TEST_PAUSE_AT`` (runstore.util.pause_point). The kill -9 of a scheduler
in a plain sleeping step is tests/test_runtime_cli.py::test_kill_9_of_the_scheduler_...;
this file adds the other points, the worker kills, the artifact checks and resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from runstore import Flow, Store, namespace, use_store

pytestmark = pytest.mark.stress

FLOW = Path(__file__).parent / "flows" / "crash_flow.py"
SIZE_MIB = 20  # > one 16 MiB chunk, so the first chunk is flushed before the commit


def flow_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RUNSTORE_TEST_PAUSE_AT", "CRASH_FLOW_WAIT_IN")}
    return {**env, **(extra or {})}


def identity_env(tmp_path: Path) -> dict[str, str]:
    """The test identity, fixed here because module-scoped fixtures run before conftest's."""
    return {
        "RUNSTORE_USER": "tester",
        "RUNSTORE_HOME": str(tmp_path / "home" / ".runstore"),
        "HOME": str(tmp_path / "home"),
    }


def flow_cmd(db: Path, *args: str) -> list[str]:
    # not --quiet: the flow's "crash-flow-waiting" line (written to fd 2, which a worker
    # captures since #13) reaches the run's stderr through the [RUN/STEP/TASK] echo
    return [sys.executable, str(FLOW), "--db", str(db), *args]


# ------------------------------------------------------------------ helpers


class Crash:
    """A ``run`` started in its own session, its stderr in a file we can poll."""

    def __init__(self, tmp_path: Path, db: Path, args: list[str], env: dict[str, str]) -> None:
        self.err_path = tmp_path / f"{args[0]}.err"
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            flow_cmd(db, *args),
            stdout=subprocess.DEVNULL,
            stderr=self.err,
            env=flow_env(env),
            start_new_session=True,
        )

    def wait_for(self, pattern: str, timeout: float = 90) -> int:
        """Poll stderr until ``pattern`` (with a ``pid=(\\d+)`` group) appears; return that pid."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            found = regex.search(self.err_path.read_text(errors="replace"))
            if found:
                return int(found.group(1))
            if self.proc.poll() is not None:
                pytest.fail(
                    f"the run ended ({self.proc.returncode}) before {pattern!r}:\n"
                    + self.err_path.read_text(errors="replace")
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out waiting for {pattern!r}:\n" + self.err_path.read_text(errors="replace")
                )
            time.sleep(0.02)

    def finish(self, timeout: float = 90) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # orphaned workers still sleeping in a step
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=30)
        self.err.close()


def fingerprint(value: Any) -> Any:
    """A comparable form of an artifact value (arrays by dtype, shape and content hash)."""
    if hasattr(value, "dtype") and hasattr(value, "tobytes"):
        return ("array", str(value.dtype), value.shape, hashlib.sha256(value.tobytes()).hexdigest())
    return value


def run_artifacts(db: Path, number: int) -> dict[tuple[str, Any], dict[str, Any]]:
    """``{(step, foreach index): {artifact: fingerprint}}`` of one run, through the client."""
    store = Store(db, readonly=True)
    out: dict[tuple[str, Any], dict[str, Any]] = {}
    with use_store(store):
        namespace(None)
        run = Flow("CrashFlow")[str(number)]
        for step in run:
            for task in step:
                out[(step.id, task.index)] = {a.id: fingerprint(a.data) for a in task}
    store.close()
    return out


def check_sound(db: Path) -> Store:
    """integrity + foreign keys, and every artifact listed (client and file) loads."""
    store = Store(db)
    assert store.integrity_problems() == []
    with store.read() as conn:
        rows = conn.execute("SELECT DISTINCT blob_key, encoding FROM artifacts").fetchall()
    for key, encoding in rows:  # every artifact row in the file, private ones included
        store.load_value(key, encoding)
    with use_store(store):
        namespace(None)
        for run in Flow("CrashFlow"):
            for step in run:
                for task in step:
                    for artifact in task:
                        artifact.data  # noqa: B018 - loading is the check
    return store


def orphan_chunks(store: Store) -> int:
    """Chunks written by an attempt that never committed (no blob lists them)."""
    with store.read() as conn:
        return conn.execute(
            "SELECT count(*) FROM blob_chunks c WHERE NOT EXISTS"
            " (SELECT 1 FROM blob_parts p WHERE p.chunk_key = c.chunk_key)"
        ).fetchone()[0]


def run_status(store: Store, number: int = 1) -> tuple[str, bool]:
    with use_store(store):
        namespace(None)
        run = Flow("CrashFlow")[str(number)]
        return run.status, run.successful


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, Any], dict[str, Any]]:
    """The artifacts of an undisturbed run (what every resumed run must equal)."""
    tmp_path = tmp_path_factory.mktemp("clean")
    db = tmp_path / "runstore.db"
    env = flow_env(identity_env(tmp_path))
    out = subprocess.run(
        flow_cmd(db, "run", "--max-workers", "2", "--size_mib", str(SIZE_MIB)),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return run_artifacts(db, 1)


def resume_and_compare(db: Path, clean: dict[tuple[str, Any], dict[str, Any]]) -> set[str]:
    out = subprocess.run(
        flow_cmd(db, "resume", "--origin-run-id", "1"),
        capture_output=True,
        text=True,
        env=flow_env(identity_env(db.parent)),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "locked" not in out.stderr
    store = Store(db)
    assert store.integrity_problems() == []
    assert run_status(store, 2) == ("succeeded", True)
    store.close()
    assert run_artifacts(db, 2) == clean
    return cloned_steps(db, 2)


def cloned_steps(db: Path, number: int) -> set[str]:
    """Steps of a resumed run whose every task was cloned from the origin (not re-run)."""
    store = Store(db, readonly=True)
    with use_store(store):
        namespace(None)
        run = Flow("CrashFlow")[str(number)]
        steps = {step.id for step in run if all(task.origin_pathspec for task in step)}
    store.close()
    return steps


# ------------------------------------------------------------------ the cases

# (test id, max workers, env, what to wait for, who is killed, expected status)
CASES = [
    (
        "scheduler-in-step",
        2,
        {"CRASH_FLOW_WAIT_IN": "work"},
        r"crash-flow-waiting work pid=(\d+)",
        "scheduler",
        "crashed",
    ),
    (
        "worker-in-step",
        2,
        {"CRASH_FLOW_WAIT_IN": "work"},
        r"crash-flow-waiting work pid=(\d+)",
        "worker",
        "failed",
    ),
    (
        "scheduler-persisting-artifact",
        1,
        {"RUNSTORE_TEST_PAUSE_AT": "task_persist@big:120"},
        r"runstore-test-pause task_persist pid=(\d+)",
        "scheduler",
        "crashed",
    ),
    (
        "worker-persisting-artifact",
        2,
        {"RUNSTORE_TEST_PAUSE_AT": "task_persist@big:120"},
        r"runstore-test-pause task_persist pid=(\d+)",
        "worker",
        "failed",
    ),
    (
        "worker-starting-task",
        2,
        {"RUNSTORE_TEST_PAUSE_AT": "task_start@join:120"},
        r"runstore-test-pause task_start pid=(\d+)",
        "worker",
        "failed",
    ),
    (
        "scheduler-finishing-run",
        2,
        {"RUNSTORE_TEST_PAUSE_AT": "run_finish:120"},
        r"runstore-test-pause run_finish pid=(\d+)",
        "scheduler",
        "crashed",
    ),
]

# Steps resume clones (every task copied by reference) instead of re-running, per case:
# everything upstream of the step that was running when the kill came. After a kill
# while finishing the run, every task had succeeded, so all are cloned.
CLONED = {
    "scheduler-in-step": {"start"},
    "worker-in-step": {"start"},
    "scheduler-persisting-artifact": {"start", "work", "join"},
    "worker-persisting-artifact": {"start", "work", "join"},
    "worker-starting-task": {"start", "work"},
    "scheduler-finishing-run": {"start", "work", "join", "big", "end"},
}


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def crashed(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, str, Store]]:
    """A store whose run 1 was killed -9 at one point (made once per case): (db, case id, store)."""
    name, workers, env, pattern, victim, expected = request.param
    tmp_path = tmp_path_factory.mktemp(name)
    db = tmp_path / "runstore.db"
    args = ["run", "--max-workers", str(workers), "--size_mib", str(SIZE_MIB)]
    crash = Crash(tmp_path, db, args, {**env, **identity_env(tmp_path)})
    try:
        pid = crash.wait_for(pattern)
        if victim == "scheduler":
            if workers == 1 or name.endswith("finishing-run"):
                assert pid == crash.proc.pid  # the pause is in the scheduler itself
            os.kill(crash.proc.pid, signal.SIGKILL)
            assert crash.finish() == -signal.SIGKILL
        else:
            assert pid != crash.proc.pid  # a forked worker, not the scheduler
            os.kill(pid, signal.SIGKILL)
            assert crash.finish() == 1  # the scheduler saw its worker die and failed the run
            assert "was killed by SIGKILL" in crash.err_path.read_text()
    finally:
        crash.cleanup()
    store = check_sound(db)
    assert run_status(store) == (expected, False)
    yield db, name, store
    store.close()


def test_kill_9_leaves_a_sound_file_and_an_unsuccessful_run(crashed: tuple[Path, str, Store]) -> None:
    db, name, store = crashed
    with store.read() as conn:
        # tasks that hold the array (its row, or a binding to it: an inherited value is stored once)
        big = conn.execute("SELECT count(*) FROM task_values WHERE name = 'blob'").fetchone()[0]
        done = conn.execute("SELECT count(*) FROM tasks WHERE status = 'succeeded'").fetchone()[0]
    if "persisting" in name:
        # Killed after the first 16 MiB chunk was written, before the attempt's commit:
        # the chunk is in the file, yet no blob or artifact row refers to it.
        assert orphan_chunks(store) >= 1
        assert big == 0
    if "finishing" in name:
        # every task committed (big and end both hold the array); only the run row is left
        assert big == 2 and done == 8
    report = store.doctor()
    assert report.problems == []
    # what a user sees on the command line: the status, and doctor naming the crashed run
    listing = subprocess.run(
        [sys.executable, "-m", "runstore", "--db", str(db), "runs", "--all", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert [r["status"] for r in json.loads(listing.stdout)] == [run_status(store)[0]]
    crashed_warning = any("CrashFlow/1" in w for w in report.warnings)
    assert crashed_warning == (run_status(store)[0] == "crashed")


def test_resume_after_kill_9_equals_a_clean_run(crashed: tuple[Path, str, Store], clean_run: dict) -> None:
    db, name, store = crashed
    store.close()
    assert resume_and_compare(db, clean_run) == CLONED[name]


def test_kill_9_during_resume_then_resume_again(tmp_path: Path, clean_run: dict) -> None:
    """A resume killed while persisting the large artifact is itself resumed to completion."""
    db = tmp_path / "runstore.db"
    env = {"RUNSTORE_TEST_PAUSE_AT": "task_persist@big:120", **identity_env(tmp_path)}
    pattern = r"runstore-test-pause task_persist pid=(\d+)"
    for args in (
        ["run", "--max-workers", "2", "--size_mib", str(SIZE_MIB)],
        ["resume", "--origin-run-id", "1", "--max-workers", "2"],
    ):
        crash = Crash(tmp_path, db, args, env)
        try:
            os.kill(crash.wait_for(pattern), signal.SIGKILL)  # the worker writing the array
            assert crash.finish() == 1
        finally:
            crash.cleanup()
    store = check_sound(db)
    assert run_status(store, 1) == ("failed", False) and run_status(store, 2) == ("failed", False)
    store.close()
    out = subprocess.run(
        flow_cmd(db, "resume", "--origin-run-id", "2"),
        capture_output=True,
        text=True,
        env=flow_env(identity_env(tmp_path)),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert run_artifacts(db, 3) == clean_run
    assert cloned_steps(db, 3) == {"start", "work", "join"}
