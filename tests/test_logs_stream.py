"""Logs stream into the store while a task runs (#13), captured at the file descriptors.

Every case runs a real flow (``python flow.py run --max-workers 2``: forked workers,
whose fds 1 and 2 are pipes read by runstore/runtime/logtap.py) and reads the store
from this process, a different one from the worker writing it:

* what an attempt printed is in the store when its worker dies by ``os._exit``,
  SIGKILL or a segfault (``ctypes.string_at(0)``);
* ``os.write(1, ...)`` (what a C extension does), a subprocess's output and a
  ``logging.basicConfig()`` handler made at import time (holding the old stderr) are
  all captured, and the ``[RUN/STEP/TASK]`` console echo still shows them;
* a task waiting on a gate file can be tailed: ``task.stdout``, ``Task.loglines`` and
  ``runstore logs --follow`` (a third process) return its lines before it ends;
* past the cap, the head and the tail are kept with a line saying how much was dropped;
* what a worker printed right before it died, still in its pipe, is read by the scheduler.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runstore import Flow, Store, namespace, use_store
from runstore.runtime.logtap import MAX_LOG_BYTES
from tests.helpers import run_flow

FLOW = '''
import ctypes, logging, os, signal, subprocess, sys, time
from pathlib import Path
from runstore import FlowSpec, step

logging.basicConfig(level=logging.INFO, format="LOG %(message)s")  # keeps the real stderr
log = logging.getLogger("streamed")
MODE = os.environ["LOG_MODE"]


class StreamFlow(FlowSpec):
    @step
    def start(self):
        print("first line", flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        if MODE == "capture":
            os.write(1, b"c-level write\\n")
            subprocess.run([sys.executable, "-c", "import sys; print('from a child'); "
                            "print('child err', file=sys.stderr)"], check=True)
            log.info("a log record")
        elif MODE == "gate":
            gate = Path(os.environ["LOG_GATE"])
            while not gate.exists():
                time.sleep(0.05)
            print("after the gate")
        elif MODE == "lastwords":  # a print, then the process ends at once
            print("last words")
            os._exit(3)
        elif MODE == "c-lastwords":  # C writes and dies without ever releasing the GIL:
            libc = ctypes.PyDLL(None)  # the worker's reader thread cannot read them
            libc.write(1, b"c last words\\n", 13)
            libc._exit(3)
        elif MODE == "cap":
            out = sys.stdout
            for i in range(int(os.environ["LOG_LINES"])):
                out.write(f"line {i:08d}\\n")
        else:
            time.sleep(1.0)  # a few batches' time: the lines are streamed before the death
            if MODE == "exit":
                os._exit(3)
            elif MODE == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif MODE == "segfault":
                ctypes.string_at(0)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StreamFlow()
'''


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "stream_flow.py"
    path.write_text(textwrap.dedent(FLOW))
    return path


def ui_live_tail(db: Path, pathspec: str) -> dict:
    """What the web UI's live-tail endpoint answers for ``pathspec`` (skipped without the ui extra)."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from runstore.ui import create_app

    return TestClient(create_app(Store(db, readonly=True))).get(f"/api/log/{pathspec}?stream=stdout").json()


def start_task(db: Path):
    namespace(None)
    with use_store(Store(db, readonly=True)):
        run = Flow("StreamFlow").latest_run
        return run, run["start"].task


@pytest.mark.parametrize("mode", ["exit", "sigkill", "segfault"])
def test_a_dying_worker_keeps_what_its_attempt_printed(tmp_path: Path, flow_file: Path, mode: str) -> None:
    db = tmp_path / "runs.db"
    proc = run_flow(flow_file, db, "run", "--max-workers", "2", env={"LOG_MODE": mode}, timeout=60)
    assert proc.returncode != 0
    run, task = start_task(db)
    assert run.status == "failed"
    assert task.stdout == "first line\n"
    assert task.stderr == "to stderr\n"
    assert [line for _, line in task.loglines("stdout")] == ["first line"]
    assert not task.successful


def test_fd_level_writes_subprocesses_and_import_time_logging_are_captured(tmp_path: Path, flow_file: Path) -> None:
    db = tmp_path / "runs.db"
    proc = run_flow(flow_file, db, "run", "--max-workers", "2", env={"LOG_MODE": "capture"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    _, task = start_task(db)
    assert task.stdout == "first line\nc-level write\nfrom a child\n"
    assert task.stderr == "to stderr\nchild err\nLOG a log record\n"
    # the console echo still shows every captured line, prefixed, on the run's own streams
    for line in ("first line", "c-level write", "from a child"):
        assert f"[1/start/2] {line}\n" in proc.stdout
    for line in ("to stderr", "child err", "LOG a log record"):
        assert f"[1/start/2] {line}\n" in proc.stderr
    assert "[1/start/2] Task finished successfully." in proc.stderr
    # the runtime's own messages are echoed, never stored
    assert "Task is starting" not in task.stderr


def test_a_running_task_can_be_tailed_from_another_process(tmp_path: Path, flow_file: Path) -> None:
    db = tmp_path / "runs.db"
    gate = tmp_path / "gate"
    env = {**os.environ, "LOG_MODE": "gate", "LOG_GATE": str(gate)}
    run_proc = subprocess.Popen([sys.executable, str(flow_file), "--db", str(db), "run", "--max-workers", "2"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    follow = None
    try:
        deadline = time.monotonic() + 30
        while True:  # this process reads what the worker streams, while the task waits on the gate
            assert time.monotonic() < deadline, "the running task's output never reached the store"
            try:
                run, task = start_task(db)
                if task.stdout:
                    break
            except Exception:  # noqa: BLE001 - the run or its task is not there yet
                pass
            time.sleep(0.05)
        assert not gate.exists() and run_proc.poll() is None and run.status == "running"
        assert task.stdout == "first line\n" and task.stderr in ("", "to stderr\n")
        [(when, line)] = list(task.loglines())
        assert line == "first line" and when.tzinfo is not None
        ui_log = ui_live_tail(db, task.pathspec)  # the UI's live tail re-reads the store
        assert ui_log["text"] == "first line\n" and ui_log["done"] is False
        follow = subprocess.Popen([sys.executable, "-m", "runstore", "--db", str(db), "logs", "--follow",
                                   task.pathspec], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert follow.stdout is not None
        assert follow.stdout.readline() == "first line\n"  # printed while the task still waits
        assert run_proc.poll() is None
        gate.write_text("go")
        assert run_proc.wait(timeout=60) == 0
        rest, err = follow.communicate(timeout=30)
        assert follow.returncode == 0, err
        assert rest == "after the gate\n"
    finally:
        for proc in (run_proc, follow):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    _, task = start_task(db)
    lines = list(task.loglines())
    assert [line for _, line in lines] == ["first line", "after the gate"]
    assert lines[0][0] < lines[1][0]  # dated by when they were read, not by when the task ended


def test_past_the_cap_the_head_and_the_tail_are_kept_with_the_dropped_count(tmp_path: Path,
                                                                           flow_file: Path) -> None:
    db = tmp_path / "runs.db"
    total = MAX_LOG_BYTES // 14 + 200_000  # lines of 14 bytes: well past the cap
    proc = run_flow(flow_file, db, "run", "--max-workers", "2", quiet=True,
                    env={"LOG_MODE": "cap", "LOG_LINES": str(total)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    _, task = start_task(db)
    lines = task.stdout.splitlines()
    assert lines[0] == "first line" and lines[1] == "line 00000000"
    assert lines[-1] == f"line {total - 1:08d}"  # the tail, where errors usually are
    [marker] = [i for i, line in enumerate(lines) if line.startswith("[runstore:")]
    found = re.fullmatch(r"\[runstore: (\d+) bytes \((\d+) lines\) of output dropped here; .*\]", lines[marker])
    assert found
    dropped_bytes, dropped_lines = int(found[1]), int(found[2])
    kept = len(lines) - 2  # the marker and "first line"
    assert dropped_lines == total - kept and dropped_lines > 0
    assert dropped_bytes == dropped_lines * 14
    # the kept lines are contiguous: the head up to the marker, the tail after it
    assert lines[marker - 1] == f"line {marker - 2:08d}"
    assert lines[marker + 1] == f"line {marker - 2 + 1 + dropped_lines:08d}"
    assert len(task.stdout.encode()) <= MAX_LOG_BYTES + 200
    assert len(list(task.loglines())) == len(lines)


@pytest.mark.parametrize("mode, last", [("lastwords", "last words"), ("c-lastwords", "c last words")])
def test_output_right_before_a_worker_dies_is_kept(tmp_path: Path, flow_file: Path, mode: str, last: str) -> None:
    """A worker that dies right after printing loses nothing: what its reader thread took but
    had not stored yet is in memory shared with the scheduler, and what it never read is still
    in the pipes, whose read ends the scheduler keeps (runtime/logtap.py ``Shadow``, ``drain``)."""
    db = tmp_path / "runs.db"
    proc = run_flow(flow_file, db, "run", "--max-workers", "2", env={"LOG_MODE": mode}, timeout=60)
    assert proc.returncode != 0
    run, task = start_task(db)
    assert run.status == "failed" and not task.successful
    assert task.stdout == f"first line\n{last}\n"
    assert task.stderr == "to stderr\n"
    lines = list(task.loglines("stdout"))
    assert [line for _, line in lines] == ["first line", last] and lines[0][0] <= lines[1][0]
