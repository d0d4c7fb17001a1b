"""The seed examples and the flow command line, run as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers import run_flow

from runstore import Store

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
FLOWS = Path(__file__).parent / "flows"


def tasks(db: Path, flow_name: str, step: str | None = None) -> list[dict[str, Any]]:
    store = Store(db)
    found = store.run_ref(flow_name)
    assert found is not None
    return store.run_tasks(found[0], step)


def value(db: Path, task_id: int, name: str) -> Any:
    store = Store(db)
    ref = store.task_artifact_refs(task_id)[name]
    return store.load_value(ref.blob_key, ref.encoding)


def run_row(db: Path, flow_name: str) -> dict[str, Any]:
    store = Store(db)
    with store.read() as conn:
        conn.row_factory = None
        row = conn.execute("SELECT * FROM runs_view WHERE flow = ? ORDER BY run_number DESC LIMIT 1",
                           (flow_name,)).fetchone()
        names = [d[0] for d in conn.execute("SELECT * FROM runs_view LIMIT 0").description]
    return dict(zip(names, row))


def test_hello_flow(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(EXAMPLES / "hello_flow.py", db, "run", "--tag", "first")
    assert proc.returncode == 0, proc.stderr
    assert "[1/hello/" in proc.stdout and "Hello, runstore!" in proc.stdout
    assert "Done! HelloFlow/1 succeeded." in proc.stderr
    row = run_row(db, "HelloFlow")
    assert row["status"] == "succeeded" and json.loads(row["user_tags"]) == ["first"]
    system = json.loads(row["system_tags"])
    assert "user:tester" in system and "runtime:local" in system
    assert {t.split(":")[0] for t in system} == {"user", "runtime", "python_version", "runstore_version", "date"}


def test_current_flow_output_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(EXAMPLES / "current_flow.py", db, "--quiet", "run", "--tag", "t")
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
    start = tasks(db, "CurrentFlow", "start")[0]["task_id"]
    out = Store(db).attempt_record(start)["stdout"]
    for field in ("flow_name = 'CurrentFlow'", "run_id = '1'", "step_name = 'start'", f"task_id = '{start}'",
                  "retry_count = 0", f"pathspec = 'CurrentFlow/1/start/{start}'", "namespace = 'user:tester'",
                  "username = 'tester'", "parameter_names = ['label']", "tags = {'t'}",
                  "is_running_flow = True", "is_production = False", "origin_run_id = None"):
        assert field in out
    logs = run_flow(EXAMPLES / "current_flow.py", db, "logs", "1/start")
    assert logs.returncode == 0 and logs.stdout == out


def test_param_flow_with_dashes(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(EXAMPLES / "param_flow.py", db, "run", "--model-version", "v2", "--learning-rate", "0.01")
    assert proc.returncode == 0, proc.stderr
    assert "training v2 at lr=0.01" in proc.stdout
    end = tasks(db, "ParamFlow", "end")[0]["task_id"]
    assert value(db, end, "model_version") == "v2" and value(db, end, "learning_rate") == 0.01
    assert value(db, end, "config") == {"layers": [64, 32]}


@pytest.mark.parametrize("args,message", [
    (["--learning-rate", "fast"], "Invalid value for '--learning-rate'"),
    (["--epochs", "1.5"], "Invalid value for '--epochs'"),
    (["--config", "{bad"], "is not a valid JSON object"),
    (["--no-such", "1"], "No such option"),
    (["--tag", ""], "empty"),
])
def test_bad_values_are_usage_errors_and_store_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(EXAMPLES / "param_flow.py", db, "run", *args)
    assert proc.returncode == 2, proc.stderr
    assert message.lower() in proc.stderr.lower() and "Traceback" not in proc.stderr
    assert not db.exists() or Store(db).run_ref("ParamFlow") is None


def test_model_flow_artifacts(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(EXAMPLES / "model_flow.py", db, "run", "--max-workers", "2")
    assert proc.returncode == 0, proc.stderr
    start = tasks(db, "ModelFlow", "start")[0]["task_id"]
    assert value(db, start, "model").weights == [0.5, 0.25]
    dump = run_flow(EXAMPLES / "model_flow.py", db, "dump", "1/evaluate")
    assert "prediction [size:" in dump.stdout and "= 3.0" in dump.stdout


def test_branch_foreach_show_check(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    assert run_flow(EXAMPLES / "branch_flow.py", db, "run").returncode == 0
    proc = run_flow(EXAMPLES / "foreach_flow.py", db, "run", "--n", "100", "--run-id-file", str(tmp_path / "id"))
    assert proc.returncode == 0 and (tmp_path / "id").read_text() == "1"
    assert len(tasks(db, "ForeachFlow", "square")) == 100
    show = run_flow(EXAMPLES / "foreach_flow.py", db, "show")
    assert "Step start" in show.stdout and "foreach over 'numbers'" in show.stdout
    assert run_flow(EXAMPLES / "foreach_flow.py", db, "check").returncode == 0


def test_failing_flow_exits_1(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(FLOWS / "failing_flow.py", db, "run")
    assert proc.returncode == 1
    assert "ValueError: boom goes the step" in proc.stderr and "Workflow failed." in proc.stderr
    assert run_row(db, "FailingFlow")["status"] == "failed"
    logs = run_flow(FLOWS / "failing_flow.py", db, "logs", "1/boom", "--stderr")
    assert "ValueError: boom goes the step" in logs.stdout
    bad = run_flow(FLOWS / "failing_flow.py", db, "logs", "7/boom")
    assert bad.returncode != 0 and "does not exist" in bad.stderr


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)
       .filter(lambda s: not s.startswith("-")),
       number=st.floats(allow_nan=False, allow_infinity=False, width=64),
       count=st.integers(min_value=-2**62, max_value=2**62),
       flag=st.booleans(),
       cfg=st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
def test_parameter_values_round_trip_through_the_cli(text: str, number: float, count: int, flag: bool,
                                                   cfg: dict[str, int]) -> None:
    from click.testing import CliRunner

    from runstore.cli.flow import make_cli
    from runstore.runtime.runner import load_flow

    import tempfile

    flow_class = load_flow(FLOWS / "param_kinds_flow.py")  # one parameter of each kind

    db = Path(tempfile.mkdtemp()) / "rt.db"
    result = CliRunner().invoke(make_cli(flow_class), [
        "--db", str(db), "--quiet", "run", "--max-workers", "1", "--label", text, "--rate", repr(number),
        "--n", str(count), "--on", str(flag), "--config", json.dumps(cfg)])
    assert result.exit_code == 0, result.output
    store = Store(db)
    params = store.run_tasks(store.run_ref("ParamKindsFlow")[0], "_parameters")[0]["task_id"]
    got = {name: store.load_value(ref.blob_key, ref.encoding)
           for name, ref in store.task_artifact_refs(params).items() if not name.startswith("_")}
    assert got == {"label": text, "rate": number, "n": count, "on": flag, "config": cfg}
    store.close()


def test_code_package_and_metadata(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    assert run_flow(EXAMPLES / "hello_flow.py", db, "run").returncode == 0
    assert run_flow(EXAMPLES / "hello_flow.py", db, "run").returncode == 0
    store = Store(db)
    with store.read() as conn:
        codes = conn.execute("SELECT DISTINCT code_id FROM runs").fetchall()
        script = conn.execute("SELECT script_name FROM code_packages").fetchall()
        meta = dict(conn.execute(
            "SELECT m.name, m.value FROM metadata m JOIN tasks t USING (task_id) JOIN steps s USING (step_id)"
            " WHERE s.name = 'start' AND t.run_id = (SELECT max(run_id) FROM runs)").fetchall())
    assert len(codes) == 1 and codes[0][0] is not None and script == [("hello_flow.py",)]
    assert meta["user"] == "tester" and meta["runtime"] == "local" and meta["attempt"] == "0"
    assert meta["script-name"] == "hello_flow.py" and meta["python_version"].count(".") == 2
    if (ROOT / ".git").exists():
        git = json.loads(meta["git-info"])
        assert set(git) == {"commit", "branch", "dirty", "repo"}


def test_code_package_is_deterministic(tmp_path: Path) -> None:
    import io
    import tarfile

    from runstore.runtime.environment import code_package

    (tmp_path / "f.py").write_text("print(1)\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.py").write_text("secret\n")
    (tmp_path / "data.csv").write_text("a,b\n")
    first = code_package(tmp_path / "f.py", "F")
    time.sleep(0.01)
    os.utime(tmp_path / "f.py")
    assert code_package(tmp_path / "f.py", "F") == first
    names = tarfile.open(fileobj=io.BytesIO(first)).getnames()
    assert names == ["f.py", ".runstore/INFO"]


@pytest.mark.stress
def test_kill_9_of_the_scheduler_leaves_a_sound_file_and_a_crashed_run(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, str(FLOWS / "slow_flow.py"), "--db", str(db), "--quiet", "run",
                             "--max-workers", "2"], env={**os.environ, "MARKER": str(marker)},
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        store = Store(db)
        assert store.integrity_problems() == []
        with store.read() as conn:
            conn.execute("SELECT 1").fetchone()
        from runstore.store import effective_status

        with store.read() as conn:
            row = conn.execute("SELECT status, heartbeat_at, created_at, owner_host, owner_pid FROM runs").fetchone()
        assert row[0] == "running" and row[4] == proc.pid
        assert effective_status(*row) == "crashed"
        start = tasks(db, "SlowFlow", "start")[0]
        assert start["status"] == "succeeded"
        # The worker dies with its scheduler (PR_SET_PDEATHSIG) instead of finishing the step.
        deadline = time.monotonic() + 20
        while True:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, "a worker outlived its killed scheduler"
            time.sleep(0.05)
        assert tasks(db, "SlowFlow", "wait")[0]["status"] == "running"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_tag_commands_are_mounted_and_use_db(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.db"
    assert run_flow(EXAMPLES / "hello_flow.py", db, "--quiet", "run", "--tag", "a").returncode == 0
    added = run_flow(EXAMPLES / "hello_flow.py", db, "tag", "add", "--run-id", "1", "b")
    assert added.returncode == 0, added.stderr
    listed = run_flow(EXAMPLES / "hello_flow.py", db, "tag", "list")
    assert "a, b" in listed.stdout
    assert not (Path.cwd() / "runstore.db").exists()


@pytest.mark.stress
def test_ctrl_c_interrupts_the_run_and_stops_workers(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, str(FLOWS / "slow_flow.py"), "--db", str(db), "run"],
                            env={**os.environ, "MARKER": str(marker)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            # SIGINT as a terminal gives it, even when pytest runs with it ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 130 and "Traceback" not in out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert run_row(db, "SlowFlow")["status"] == "interrupted"  # issue #13: was "failed"
    wait = tasks(db, "SlowFlow", "wait")[0]
    assert wait["status"] == "interrupted"
    attempt = Store(db).attempt_record(wait["task_id"])
    assert (attempt["status"], attempt["exception_type"]) == ("interrupted", "builtins.KeyboardInterrupt")
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no worker left behind


CATCH_FLOW = '''
from runstore import FlowSpec, catch, step


class QuietCatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.quiet)

    @catch(var="quiet_error", print_exception=False)
    @step
    def quiet(self):
        raise KeyError("hush-hush")
        self.next(self.loud)

    @catch(var="loud_error")
    @step
    def loud(self):
        raise KeyError("shout-shout")
        self.next(self.end)

    @step
    def end(self):
        print("caught", self.quiet_error.type, self.loud_error.type)


if __name__ == "__main__":
    QuietCatchFlow()
'''


def test_catch_print_exception_false_does_not_print_it(tmp_path: Path) -> None:
    """@catch(print_exception=False): no traceback on the console or in the log; still recorded (#19)."""
    script, db = tmp_path / "quiet_catch.py", tmp_path / "runstore.db"
    script.write_text(CATCH_FLOW)
    proc = run_flow(script, db, "run")
    assert proc.returncode == 0, proc.stderr
    assert "hush-hush" not in proc.stdout + proc.stderr
    assert "shout-shout" in proc.stdout + proc.stderr  # the default still prints it
    assert "caught builtins.KeyError builtins.KeyError" in proc.stdout
    from runstore import Run

    run = Run("QuietCatchFlow/1", store=Store(db), _namespace_check=False)
    quiet, loud = run["quiet"].task, run["loud"].task
    assert quiet.status == "caught" and "hush-hush" in quiet.data.quiet_error.message and "hush" not in quiet.stderr
    assert quiet.exception is None  # a caught attempt, as in Metaflow: the @catch var holds it
    assert "shout-shout" in loud.stderr


SEPARATOR_FLOW = '''
from runstore import FlowSpec, Parameter, step


class SplitFlow(FlowSpec):
    rates = Parameter("rates", default="0.1,0.01", separator=",")

    @step
    def start(self):
        self.next(self.train, foreach="rates")

    @step
    def train(self):
        self.rate = float(self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = sorted(i.rate for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("seen", self.seen, self.rates)


if __name__ == "__main__":
    SplitFlow()
'''


@pytest.mark.parametrize(("args", "expected"), [((), "[0.01, 0.1] ['0.1', '0.01']"),
                                                (("--rates", "0.5,2"), "[0.5, 2.0] ['0.5', '2']"),
                                                (("--rates", "3"), "[3.0] ['3']")])
def test_separator_parameter_from_the_command_line_is_split_once(tmp_path: Path, args: tuple[str, ...],
                                                                   expected: str) -> None:
    """`--rates 0.5,2` gives ['0.5', '2'], not the text of a list split again (docs/flows.md's example)."""
    script = tmp_path / "split_flow.py"
    script.write_text(SEPARATOR_FLOW)
    proc = run_flow(script, tmp_path / "runstore.db", "run", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"seen {expected}" in proc.stdout


SEPARATOR_AND_JSON_FLOW = '''
from runstore import FlowSpec, JSONType, Parameter, step


class ConvertOnceFlow(FlowSpec):
    lst = Parameter("lst", default="a,b", separator=",")
    cfg = Parameter("cfg", type=JSONType, default='{"k": 1}')

    @step
    def start(self):
        self.seen = (self.lst, self.cfg)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ConvertOnceFlow()
'''


@pytest.mark.parametrize("args, want", [
    ((), (["a", "b"], {"k": 1})),
    (("--lst", "x,y,z", "--cfg", "null"), (["x", "y", "z"], None)),  # issue #12: null became the default
    (("--cfg", '"5"'), (["a", "b"], "5")),
    (("--cfg", '"hello"'), (["a", "b"], "hello")),
])
def test_command_line_parameter_values_are_converted_once(tmp_path: Path, args: tuple[str, ...], want: Any) -> None:
    script = tmp_path / "convert_once_flow.py"
    script.write_text(SEPARATOR_AND_JSON_FLOW)
    db = tmp_path / "runstore.db"
    proc = run_flow(script, db, "--quiet", "run", *args)
    assert proc.returncode == 0, proc.stderr
    start = tasks(db, "ConvertOnceFlow", "start")[0]
    assert value(db, start["task_id"], "seen") == want


def test_foreach_of_20_on_2_workers_reuses_them_and_join_indexes_inputs(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(FLOWS / "busy_flow.py", db, "--quiet", "run", "--max-workers", "2", "--n", "20")
    assert proc.returncode == 0, proc.stderr
    store = Store(db)
    with store.read() as conn:
        owner = conn.execute("SELECT owner_pid FROM runs").fetchone()[0]
        rows = conn.execute("SELECT s.name, a.pid FROM attempts a JOIN tasks t USING (task_id)"
                            " JOIN steps s USING (step_id)").fetchall()
    children = [pid for step, pid in rows if step == "work"]
    assert len(children) == 20
    workers = {pid for _, pid in rows} - {owner}
    assert 1 <= len(workers) <= 2, workers  # 20 children, 2 processes: workers are reused
    assert set(children) <= workers
    join = store.run_tasks(store.run_ref("BusyFlow")[0], "join")[0]["task_id"]
    refs = store.task_artifact_refs(join)
    got = {name: store.load_value(refs[name].blob_key, refs[name].encoding)
           for name in ("first", "last", "total")}
    assert got == {"first": 0, "last": 361, "total": sum(i * i for i in range(20))}
    store.close()


def test_max_num_splits_over_the_limit_fails_the_run(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    proc = run_flow(FLOWS / "busy_flow.py", db, "run", "--max-workers", "1", "--max-num-splits", "5", "--n", "20")
    assert proc.returncode == 1, proc.stderr
    assert ("Foreach in step start yielded 20 child steps which is more than the current maximum of 5 "
            "children. You can raise the maximum with the --max-num-splits option.") in proc.stderr
    with Store(db).read() as conn:
        assert [tuple(r) for r in conn.execute("SELECT status FROM runs")] == [("failed",)]
    ok = run_flow(FLOWS / "busy_flow.py", db, "--quiet", "run", "--max-workers", "1", "--max-num-splits", "20", "--n", "20")
    assert ok.returncode == 0, ok.stderr
