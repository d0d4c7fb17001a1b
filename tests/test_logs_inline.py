"""Inline tasks stream their logs too (#13): ``--max-workers 1`` and ``Store(":memory:")``.

An inline task runs in the scheduler's process, its output captured from ``sys.stdout`` /
``sys.stderr`` (runstore/runtime/task.py ``_Capture``) and streamed in batches by one
background thread (runstore/runtime/logtap.py ``InlineLog``): a running inline task can be
tailed from a second connection, and past the cap the head and the tail are kept.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from runstore import FlowSpec, Run, Runner, Store, Task, step
from runstore.runtime.logtap import InlineLog, _StreamLog
from tests.test_logs_stream import FLOW, start_task

GATE = threading.Event()


class GateFlow(FlowSpec):
    @step
    def start(self):
        print("first line")
        print("to stderr", file=sys.stderr)
        assert GATE.wait(30)
        print("after the gate")
        self.next(self.end)

    @step
    def end(self):
        pass


def wait_for(condition, what: str, seconds: float = 30):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + seconds
    while True:
        try:
            found = condition()
        except Exception:  # noqa: BLE001 - not there yet
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_running_inline_task_can_be_tailed_from_another_process(tmp_path: Path) -> None:
    flow_file = tmp_path / "stream_flow.py"
    flow_file.write_text(textwrap.dedent(FLOW))
    db, gate = tmp_path / "runs.db", tmp_path / "gate"
    env = {**os.environ, "LOG_MODE": "gate", "LOG_GATE": str(gate)}
    proc = subprocess.Popen([sys.executable, str(flow_file), "--db", str(db), "run", "--max-workers", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        run, task = wait_for(lambda: (lambda r, t: (r, t) if t.stdout and t.stderr else None)(*start_task(db)),
                             "the running inline task's output never reached the store")
        assert not gate.exists() and proc.poll() is None and run.status == "running"
        assert task.stdout == "first line\n" and task.stderr == "to stderr\n"
        [(when, line)] = list(task.loglines())
        assert line == "first line" and when.tzinfo is not None
        assert task.metadata_dict.get("attempt") is None  # the attempt has not finished yet
        gate.write_text("go")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, task = start_task(db)
    assert task.stdout == "first line\nafter the gate\n"
    lines = list(task.loglines())
    assert [line for _, line in lines] == ["first line", "after the gate"]
    assert lines[0][0] < lines[1][0]  # dated by when they were written


def test_a_running_task_of_an_in_memory_store_can_be_tailed_from_another_thread() -> None:
    store = Store(":memory:")
    GATE.clear()
    outcome: list[object] = []
    runner = threading.Thread(target=lambda: outcome.append(Runner(GateFlow, store=store).run()))
    runner.start()
    try:
        def running_task() -> Task | None:
            task = Run("GateFlow/1", store=store, _namespace_check=False)["start"].task
            return task if task.stdout else None

        task = wait_for(running_task, "the in-memory task's output never reached the store")
        assert runner.is_alive()
        assert task.stdout == "first line\n"
        assert wait_for(lambda: task.stderr, "stderr never arrived") == "to stderr\n"
        assert [line for _, line in task.loglines()] == ["first line"]
    finally:
        GATE.set()
        runner.join(60)
    assert outcome and outcome[0].successful
    done = outcome[0]["start"].task
    assert done.stdout == "first line\nafter the gate\n" and done.stderr == "to stderr\n"


def test_an_inline_log_past_the_cap_keeps_the_head_and_the_tail() -> None:
    log = InlineLog(None, 0, 0)
    log.logs["stdout"] = _StreamLog(cap=100)
    for i in range(50):
        log.write("stdout", f"line {i:02d}\n")  # 8 characters each
    out, _ = log.close()
    lines = out.splitlines()
    assert lines[0] == "line 00" and lines[-1] == "line 49"
    [marker] = [line for line in lines if line.startswith("[runstore:")]
    assert "304 bytes (38 lines) of output dropped here" in marker and len(lines) == 6 + 1 + 6


def test_inline_batches_are_stored_while_the_task_writes(file_store: Store) -> None:
    run = file_store.create_run("F", user="anne")
    task_id = file_store.create_task(run.run_id, "start")
    file_store.start_attempt(task_id, 0)
    log = InlineLog(file_store, task_id, 0)
    try:
        log.write("stdout", "one\ntw")
        reader = Store(file_store.path, readonly=True)
        assert wait_for(lambda: reader.find_attempt(task_id, 0, logs=True)["stdout"], "no batch", 10) == "one\n"
        log.write("stdout", "o\n")
        assert wait_for(lambda: reader.find_attempt(task_id, 0, logs=True)["stdout"] == "one\ntwo\n",
                        "no second batch", 10)
    finally:
        assert log.close() == ("one\ntwo\n", "")
    assert [line for _, line in file_store.list_log_lines(task_id, 0, "stdout")] == ["one", "two"]


@pytest.fixture(autouse=True)
def _release_the_gate() -> None:
    yield
    GATE.set()
