"""Interrupts are interrupts (issue #13): Ctrl-C and SIGTERM stop a run in every mode.

Each test starts ``python flow.py run`` in a child process (SIGINT reset to the default
there, as a terminal gives it), waits until a step is running, sends the signal, and
reads the store afterwards: the run, the task and its attempt are ``interrupted`` (not
``failed``, not ``crashed``), what the step printed is kept, ``@retry`` did not run
it again, ``@catch`` did not swallow it, and the exit code is 130 (SIGINT) or 143
(SIGTERM).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import invoke_cli, run_flow

from runstore import FlowSpec, Run, Runner, Store, catch, namespace_scope, retry, step
from runstore.util import Terminated, resolve_username

FLOW = '''
import os
import re
import time

from runstore import FlowSpec, catch, retry, step


class StopFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.wait)

{decorators}    @step
    def wait(self):
        print("before the signal", flush=True)
        if os.environ.get("SLEEP", "60") != "0":
            with open(os.environ["MARKER"], "a") as fh:
                fh.write("started\\n")
            time.sleep(float(os.environ.get("SLEEP", "60")))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StopFlow()
'''

DECORATORS = {
    "none": "",
    "retry": "    @retry(times=2)\n",
    "catch": "    @catch(var='err')\n",
    "retry+catch": "    @catch(var='err')\n    @retry(times=2)\n",
}
MODES = {"workers": ["--max-workers", "2"], "inline": ["--max-workers", "1"]}
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def write_flow(tmp_path: Path, decorators: str = "none") -> Path:
    script = tmp_path / "stop_flow.py"
    script.write_text(FLOW.format(decorators=DECORATORS[decorators]))
    return script


def start_and_signal(script: Path, db: Path, marker: Path, sig: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``python script --db db run ARGS``, then ``sig`` to its process group once a step started."""
    proc = subprocess.Popen([sys.executable, str(script), "--db", str(db), "run", *args],
                            env={**os.environ, "MARKER": str(marker)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.05)  # the step is in time.sleep (a worker's last output is flushed before it is killed)
        os.killpg(proc.pid, sig)  # the whole group, as a terminal's Ctrl-C (workers included)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no worker left behind
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("sig,decorators", [
    (signal.SIGINT, "none"), (signal.SIGINT, "retry"), (signal.SIGINT, "catch"), (signal.SIGINT, "retry+catch"),
    (signal.SIGTERM, "none"), (signal.SIGTERM, "retry+catch"),
])
def test_a_signal_interrupts_the_run_in_every_mode(tmp_path: Path, mode: str, sig: int, decorators: str) -> None:
    db, marker = tmp_path / "runstore.db", tmp_path / "marker"
    proc = start_and_signal(write_flow(tmp_path, decorators), db, marker, sig, *MODES[mode])
    assert proc.returncode == CODES[sig], proc.stderr
    assert "Traceback" not in proc.stderr
    assert ("Error: interrupted" if sig == signal.SIGINT else "Error: terminated (SIGTERM)") in proc.stderr
    assert marker.read_text() == "started\n"  # @retry did not start the step again
    run = Run("StopFlow/1", store=Store(db))
    assert run.status == "interrupted" and not run.successful and not run.finished  # its end never ran
    assert run.finished_at is not None
    assert rows(db, "SELECT status FROM runs_view") == [("interrupted",)]
    task = run["wait"].task
    assert task.status == "interrupted" and not task.successful
    attempts = rows(db, "SELECT a.attempt, a.status, a.exception_type FROM attempts a JOIN tasks t USING (task_id)"
                        " JOIN steps s USING (step_id) WHERE s.name = 'wait'")
    kind = "KeyboardInterrupt" if sig == signal.SIGINT else "Terminated"
    assert [(n, status) for n, status, _ in attempts] == [(0, "interrupted")]
    assert attempts[0][2].endswith(kind)
    assert "before the signal" in task.stdout  # what the step printed is kept
    assert "end" not in [step.id for step in run]  # nothing ran after it
    with pytest.raises(AttributeError):
        task.data.err  # @catch never ran: no caught exception was stored


def test_resume_reruns_an_interrupted_run_from_the_interrupted_step(tmp_path: Path) -> None:
    db, marker = tmp_path / "runstore.db", tmp_path / "marker"
    script = write_flow(tmp_path, "retry")
    proc = start_and_signal(script, db, marker, signal.SIGINT, "--max-workers", "1")
    assert proc.returncode == 130
    resumed = run_flow(script, db, "resume", env={"SLEEP": "0", "MARKER": str(marker)}, quiet=True)
    assert resumed.returncode == 0, resumed.stderr
    store = Store(db)
    run = Run("StopFlow/2", store=store)
    assert run.successful and run.origin_pathspec == "StopFlow/1"
    assert run["start"].task.origin_pathspec is not None  # cloned, not run again
    assert run["wait"].task.origin_pathspec is None and run["wait"].task.successful
    assert Run("StopFlow/1", store=store).status == "interrupted"  # the origin stays as it was
    listed = invoke_cli("runs", "StopFlow", "--all", "--status", "interrupted", "--json", db=db)
    assert [r["pathspec"] for r in json.loads(listed.output)] == ["StopFlow/1"]


def test_stale_heartbeat_never_turns_interrupted_into_crashed(tmp_path: Path) -> None:
    store = Store(tmp_path / "runstore.db")
    record = store.create_run("OldFlow", user=resolve_username())
    store.finish_run(record.run_id, "interrupted")
    with store.write() as conn:  # a week old, heartbeat long stale
        conn.execute("UPDATE runs SET created_at = created_at - 7 * 86400, heartbeat_at = 0, owner_pid = 1")
    assert Run("OldFlow/1", store=store).status == "interrupted"
    with store.read() as conn:
        assert conn.execute("SELECT status FROM runs_view").fetchall() == [("interrupted",)]


CALLS: list[str] = []


class CtrlCFlow(FlowSpec):
    """Ctrl-C in inline mode is a KeyboardInterrupt raised inside the step's own code."""

    @catch(var="err")
    @retry(times=2)
    @step
    def start(self):
        CALLS.append("start")
        print("working", flush=True)
        raise (Terminated() if os.environ.get("AS_SIGTERM") else KeyboardInterrupt())
        self.next(self.end)

    @step
    def end(self):
        CALLS.append("end")


@pytest.mark.parametrize("as_sigterm", [False, True])
def test_an_interrupt_in_an_inline_step_escapes_retry_and_catch(run_flow: Any, runstore_store: Store,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 as_sigterm: bool) -> None:
    """The pytest plugin's in-memory store (Runner, inline): the interrupt reaches the caller."""
    if as_sigterm:
        monkeypatch.setenv("AS_SIGTERM", "1")
    CALLS.clear()
    with pytest.raises(Terminated if as_sigterm else KeyboardInterrupt):
        run_flow(CtrlCFlow)
    assert CALLS == ["start"]  # not retried, not caught, nothing after it
    with namespace_scope(None):
        run = Run("CtrlCFlow/1", store=runstore_store)
        assert run.status == "interrupted"
        task = run["start"].task
        assert task.status == "interrupted" and "working" in task.stdout
        assert task.exception.type.endswith("Terminated" if as_sigterm else "KeyboardInterrupt")
        with pytest.raises(AttributeError):
            task.data.err


def test_an_interrupt_outside_the_step_still_records_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the runtime itself works (here: storing the step's artifacts) — the
    attempt is not left running: the scheduler marks it interrupted, the run too."""
    from runstore.runtime import task as task_module

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(task_module, "_collect", interrupted)
    store = Store(tmp_path / "runstore.db")
    CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        Runner(HelloAgain, store=store).run(max_workers=1)
    with namespace_scope(None):
        run = Run("HelloAgain/1", store=store)
        assert run.status == "interrupted"
        assert run["start"].task.status == "interrupted"


class HelloAgain(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_the_web_app_filters_and_colours_interrupted_runs(tmp_path: Path) -> None:
    pytest.importorskip("starlette", reason="the ui extra is part of the test extra")
    from starlette.testclient import TestClient

    from runstore.ui import create_app

    store = Store(tmp_path / "runstore.db")
    with pytest.raises(KeyboardInterrupt):
        Runner(CtrlCFlow, store=store).run(max_workers=1)
    Runner(HelloAgain, store=store).run()
    client = TestClient(create_app(store))
    page = client.get("/?ns=_all&status=interrupted").text
    assert re.findall(r'class="runlink" href="/run/([^"]+)"', page) == ["CtrlCFlow/1"]
    assert '<option value="interrupted" selected>' in page
    run_page = client.get("/run/CtrlCFlow/1").text
    assert 'class="status st-interrupted"' in run_page and "KeyboardInterrupt" in run_page  # under the failures
