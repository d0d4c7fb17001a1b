"""@timeout, @resources, @environment and ``run --with`` (issue #12), on real flow files.

A step sleeping 120 s past its 3 s ``@timeout`` must end in seconds (the subprocess
timeout bounds the wall time), be retried by ``@retry`` and caught by ``@catch``, with
forked workers and inline (``--max-workers 1``: SIGALRM in the main thread); a step
that swallows the TimeoutException is killed by the scheduler. Dask: test_executor_dask.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runstore import Run, Runner, Store, Task
from runstore.runtime import load_flow

from helpers import run_flow

FLOWS = Path(__file__).parent / "flows"
TIMEOUT_FLOW = FLOWS / "timeout_flow.py"
PLAIN_FLOW = FLOWS / "plain_slow_flow.py"
KIND = "runstore.errors.TimeoutException"
MODES = {"workers": ["--max-workers", "2"], "inline": ["--max-workers", "1"]}


def _timed(script: Path, db: Path, *args: str) -> tuple[object, float]:
    start = time.monotonic()
    proc = run_flow(script, db, "--quiet", "run", *args, timeout=60)
    return proc, time.monotonic() - start


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_step_past_its_timeout_is_stopped_and_retried(mode: str, tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc, elapsed = _timed(TIMEOUT_FLOW, db, *MODES[mode])
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 40  # the step asked for 120 s of sleep
    task = Run("TimeoutFlow/1", store=Store(db))["slow"].task
    assert task.status == "succeeded" and task.data.attempt == 1 and task.data.err is None
    first = Task(task.pathspec, attempt=0, store=Store(db)).exception
    assert first.type == KIND and "timed out after 3 seconds" in first.message


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_step_timing_out_every_attempt_is_caught(mode: str, tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc, elapsed = _timed(TIMEOUT_FLOW, db, "--always", "true", *MODES[mode])
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 40
    run = Run("TimeoutFlow/1", store=Store(db))
    task = run["slow"].task
    assert task.status == "caught"
    assert task.data.err.type == KIND and "timed out" in task.data.err.message
    assert run["end"].task.data.err.type == KIND  # passed down like any artifact
    # the caught attempt has no Task.exception, as in Metaflow: the exception is in the @catch var
    assert [getattr(Task(task.pathspec, attempt=a, store=Store(db)).exception, "type", None)
            for a in (0, 1)] == [KIND, None]


def test_a_step_swallowing_the_timeout_is_killed_by_the_scheduler(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc, elapsed = _timed(TIMEOUT_FLOW, db, "--always", "true", "--stubborn", "true", "--max-workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 40
    store = Store(db)
    task = Run("TimeoutFlow/1", store=store)["slow"].task
    pids = set()
    for attempt in (0, 1):
        exc = Task(task.pathspec, attempt=attempt, store=store).exception
        assert exc.type == KIND and "was killed" in exc.message
        pids.add(exc.message.split("worker process ")[1].split()[0])
    assert len(pids) == 2  # each killed attempt had its own worker; a fresh one ran the retry
    for pid in pids:  # and the killed workers are gone
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
    # no process is left to catch it in: one more attempt records the failure for @catch
    assert task.status == "caught" and task.data.err.type == KIND


@pytest.mark.parametrize("workers", [1, 2], ids=["inline", "workers"])
def test_runner_times_out_catches_and_keeps_the_environment_to_the_step(workers: int, tmp_path: Path) -> None:
    assert "RUNSTORE_TEST_DECO" not in os.environ
    store = Store(tmp_path / "runstore.db")
    start = time.monotonic()
    run = Runner(load_flow(TIMEOUT_FLOW), store=store, quiet=True).run(max_workers=workers, always=True)
    assert time.monotonic() - start < 40
    assert run["slow"].task.data.err.type == KIND
    assert run["start"].task.data.seen == "from-environment"
    assert run["end"].task.data.leaked is None
    assert "RUNSTORE_TEST_DECO" not in os.environ  # restored in this (the scheduler's) process


def test_resources_are_in_the_metadata_and_environment_only_in_its_step(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(TIMEOUT_FLOW, db, "--quiet", "run", "--max-workers", "2", timeout=60)
    assert proc.returncode == 0, proc.stderr
    run = Run("TimeoutFlow/1", store=Store(db))
    import json

    assert json.loads(run["start"].task.metadata_dict["resources"]) == {"cpu": 2, "memory": 1000, "gpu": 1}
    assert "resources" not in run["end"].task.metadata_dict
    assert run["start"].task.data.seen == "from-environment"
    assert run["end"].task.data.leaked is None  # the same worker may run end: restored


def test_with_retry_and_catch_apply_to_every_step(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(PLAIN_FLOW, db, "--quiet", "run", "--fail-once", "true", "--with", "retry", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert Run("PlainFlow/1", store=Store(db))["work"].task.data.attempt == 1
    proc = run_flow(PLAIN_FLOW, db, "--quiet", "run", "--fail-once", "true", "--with", "catch:var=problem",
                    timeout=60)
    assert proc.returncode == 0, proc.stderr
    work = Run("PlainFlow/2", store=Store(db))["work"].task
    assert work.status == "caught" and work.data.problem.type == "builtins.ValueError"
    # without --with the same run fails
    proc = run_flow(PLAIN_FLOW, db, "--quiet", "run", "--fail-once", "true", timeout=60)
    assert proc.returncode == 1


@pytest.mark.parametrize("mode", sorted(MODES))
def test_with_timeout_seconds_stops_a_sleeping_step(mode: str, tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc, elapsed = _timed(PLAIN_FLOW, db, "--sleep", "true", "--with", "timeout:seconds=1",
                           "--with", "catch:var=e", *MODES[mode])
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 40
    assert Run("PlainFlow/1", store=Store(db))["work"].task.data.e.type == KIND


def test_with_does_not_override_a_step_s_own_decorator(tmp_path: Path) -> None:
    """timeout_flow's slow step has @retry(times=1): --with retry:times=4 leaves it at 1."""
    db = tmp_path / "runstore.db"
    proc = run_flow(TIMEOUT_FLOW, db, "--quiet", "run", "--always", "true", "--with", "retry:times=4", timeout=60)
    assert proc.returncode == 0, proc.stderr
    store = Store(db)
    task = Run("TimeoutFlow/1", store=store)["slow"].task
    assert Task(task.pathspec, attempt=0, store=store).exception.type == KIND
    assert Task(task.pathspec, attempt=1, store=store).exception is None  # caught (the var holds it)
    assert task.status == "caught" and task.data.err.type == KIND


def test_resume_takes_with_too(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    assert run_flow(PLAIN_FLOW, db, "--quiet", "run", "--fail-once", "true", timeout=60).returncode == 1
    proc = run_flow(PLAIN_FLOW, db, "--quiet", "resume", "--with", "catch:var=problem", timeout=60)
    assert proc.returncode == 0, proc.stderr  # fail-once is a parameter of the origin: fails again, caught


@pytest.mark.parametrize("spec, words", [
    ("bogus", "unknown decorator 'bogus'"),
    ("timeout:sec=1", "unexpected keyword argument 'sec'"),
    ("timeout:seconds", "expected NAME:key=value"),
    ("timeout:seconds=-1", "non-negative number"),
    ("retry:times=99", "maximum number of retries"),
])
def test_a_bad_with_spec_is_one_usage_line(spec: str, words: str, tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(PLAIN_FLOW, db, "run", "--with", spec, timeout=60)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and words in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_with_catch_skips_a_foreach_split_and_catches_its_children(tmp_path: Path) -> None:
    flow = tmp_path / "fe_flow.py"
    flow.write_text('''
from runstore import FlowSpec, step
class FeFlow(FlowSpec):
    @step
    def start(self):
        self.xs = [1, 2]
        self.next(self.each, foreach="xs")
    @step
    def each(self):
        if self.input == 2:
            raise ValueError("two")
        self.next(self.join)
    @step
    def join(self, inputs):
        self.caught = [None if i.oops is None else i.oops.message for i in inputs]
        self.next(self.end)
    @step
    def end(self):
        pass
if __name__ == "__main__":
    FeFlow()
''')
    db = tmp_path / "runstore.db"
    proc = run_flow(flow, db, "--quiet", "run", "--with", "catch:var=oops", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert Run("FeFlow/1", store=Store(db))["join"].task.data.caught == [None, "two"]


def test_a_killed_worker_under_catch_is_caught_after_its_retries(tmp_path: Path) -> None:
    """The fallback attempt serves any killed attempt, not only timeouts (issue #12, @catch)."""
    flow = tmp_path / "killed_flow.py"
    flow.write_text('''
import os, signal
from runstore import FlowSpec, catch, retry, step
class KilledFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.die)
    @catch(var="err")
    @retry(times=1)
    @step
    def die(self):
        os.kill(os.getpid(), signal.SIGKILL)
        self.next(self.end)
    @step
    def end(self):
        self.seen = self.err.type
if __name__ == "__main__":
    KilledFlow()
''')
    db = tmp_path / "runstore.db"
    proc = run_flow(flow, db, "--quiet", "run", "--max-workers", "2", timeout=60)
    assert proc.returncode == 0, proc.stderr
    store = Store(db)
    run = Run("KilledFlow/1", store=store)
    task = run["die"].task
    assert [Task(task.pathspec, attempt=a, store=store).exception.message.endswith("SIGKILL") for a in (0, 1)] \
        == [True, True]
    assert task.status == "caught" and run["end"].task.data.seen == "runstore.WorkerDied"
