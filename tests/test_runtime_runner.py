"""Runner against in-memory stores (inline) and files (worker processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runstore import FlowSpec, Parameter, Runner, Store, current, step
from runstore.errors import ParameterError, RunFailed
from runstore.runtime import load_flow

FLOWS = Path(__file__).parent / "flows"
EXAMPLES = Path(__file__).parent.parent / "examples"


def _run_id(store: Store, flow: str) -> int:
    found = store.run_ref(flow)
    assert found is not None
    return found[0]


def _tasks(store: Store, flow: str, step: str | None = None) -> list[dict[str, Any]]:
    return store.run_tasks(_run_id(store, flow), step)


def _value(store: Store, task_id: int, name: str) -> Any:
    ref = store.task_artifact_refs(task_id)[name]
    return store.load_value(ref.blob_key, ref.encoding)


def _status(store: Store, flow: str) -> str:
    with store.read() as conn:
        return conn.execute("SELECT status FROM runs WHERE run_id = ?", (_run_id(store, flow),)).fetchone()[0]


class Linear(FlowSpec):
    alpha = Parameter("alpha", default=0.5)
    model_version = Parameter("model-version", default="v1")

    @step
    def start(self):
        self.x = 1
        self._hidden = "private"
        print("in start", current.step_name)
        self.next(self.middle)

    @step
    def middle(self):
        self.y = self.x + 1
        self.next(self.end)

    @step
    def end(self):
        self.z = self.alpha * self.y


@pytest.fixture(params=["memory", "workers"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    s = Store(":memory:") if request.param == "memory" else Store(tmp_path / "runs.db")
    s.max_workers = 1 if request.param == "memory" else 2  # type: ignore[attr-defined]
    yield s
    s.close()


def test_linear_flow_artifacts_params_and_logs(store: Store) -> None:
    Runner(Linear, store=store).run(alpha=2.0, model_version="v9", tags=["exp"], max_workers=store.max_workers)
    assert _status(store, "Linear") == "succeeded"
    tasks = {t["step"]: t for t in _tasks(store, "Linear")}
    assert set(tasks) == {"_parameters", "start", "middle", "end"}
    end = tasks["end"]["task_id"]
    assert _value(store, end, "z") == 4.0
    # parameters are artifacts of every task, by reference to the same blob
    keys = {store.task_artifact_refs(t["task_id"])["alpha"].blob_key for t in tasks.values()}
    assert len(keys) == 1
    assert _value(store, tasks["middle"]["task_id"], "model_version") == "v9"
    # inherited artifacts (including private ones) flow down by reference
    assert _value(store, end, "x") == 1 and _value(store, end, "_hidden") == "private"
    assert store.attempt_record(tasks["start"]["task_id"])["stdout"] == "in start start\n"


def test_graph_info_in_parameters_task(store: Store) -> None:
    Runner(Linear, store=store).run(max_workers=store.max_workers)
    params = _tasks(store, "Linear", "_parameters")[0]["task_id"]
    info = _value(store, params, "_graph_info")
    assert info["steps"]["start"]["next"] == ["middle"]
    assert {p["name"] for p in info["parameters"]} == {"alpha", "model_version"}


def test_bad_parameter_stores_nothing(memory_store: Store) -> None:
    with pytest.raises(ParameterError):
        Runner(Linear, store=memory_store).run(alpha="not a number")
    with pytest.raises(ParameterError):
        Runner(Linear, store=memory_store).run(nope=1)
    assert memory_store.run_ref("Linear") is None


def test_branch_join_and_merge(store: Store) -> None:
    Runner(load_flow(EXAMPLES / "branch_flow.py"), store=store).run(max_workers=store.max_workers)
    assert _status(store, "BranchFlow") == "succeeded"
    join = _tasks(store, "BranchFlow", "join")[0]["task_id"]
    assert _value(store, join, "total") == 120
    assert _value(store, join, "base") == 10  # merged
    assert "value" not in store.task_artifact_refs(join)  # excluded


def test_foreach_of_100(store: Store) -> None:
    flow = load_flow(EXAMPLES / "foreach_flow.py")
    Runner(flow, store=store).run(n=100, max_workers=store.max_workers)
    assert _status(store, "ForeachFlow") == "succeeded"
    children = _tasks(store, "ForeachFlow", "square")
    assert sorted(t["foreach_index"] for t in children) == list(range(100))
    join = _tasks(store, "ForeachFlow", "join")[0]["task_id"]
    assert _value(store, join, "results") == [i * i for i in range(100)]


def test_max_num_splits(memory_store: Store) -> None:
    flow = load_flow(EXAMPLES / "foreach_flow.py")
    Runner(flow, store=memory_store).run(n=5, max_num_splits=3, raise_on_failure=False)
    assert _status(memory_store, "ForeachFlow") == "failed"
    start = _tasks(memory_store, "ForeachFlow", "start")[0]["task_id"]
    assert "more than the current maximum of 3" in memory_store.attempt_record(start)["exception_message"]


def test_nested_foreach(store: Store) -> None:
    Runner(load_flow(FLOWS / "nested_flow.py"), store=store).run(max_workers=store.max_workers)
    assert _status(store, "NestedFlow") == "succeeded"
    end = _tasks(store, "NestedFlow", "end")[0]["task_id"]
    assert _value(store, end, "grid") == [["a1", "a2", "a3"], ["b1", "b2", "b3"]]
    cells = _tasks(store, "NestedFlow", "per_number")
    assert len(cells) == 6
    with store.read() as conn:
        paths = sorted(r[0] for r in conn.execute(
            "SELECT foreach_path FROM tasks t JOIN steps s USING (step_id) WHERE s.name = 'per_number'"))
    assert paths[0] == "start:0,per_letter:0" and paths[-1] == "start:1,per_letter:2"
    inner_joins = _tasks(store, "NestedFlow", "inner_join")
    assert sorted(_value(store, t["task_id"], "letter") for t in inner_joins) == ["a", "b"]


def test_merge_conflict_fails_the_run(memory_store: Store) -> None:
    Runner(load_flow(FLOWS / "conflict_flow.py"), store=memory_store).run(raise_on_failure=False)
    assert _status(memory_store, "ConflictFlow") == "failed"
    join = _tasks(memory_store, "ConflictFlow", "join")[0]["task_id"]
    record = memory_store.attempt_record(join)
    assert record["exception_type"] == "runstore.errors.MergeArtifactsError"
    assert "[x]" in record["exception_message"]


def test_failing_step_records_exception(store: Store) -> None:
    with pytest.raises(RunFailed) as info:
        Runner(load_flow(FLOWS / "failing_flow.py"), store=store).run(max_workers=store.max_workers)
    assert info.value.run.pathspec == "FailingFlow/1" and info.value.run.successful is False
    assert _status(store, "FailingFlow") == "failed"
    boom = _tasks(store, "FailingFlow", "boom")[0]
    assert boom["status"] == "failed"
    record = store.attempt_record(boom["task_id"])
    assert record["exception_type"] == "builtins.ValueError"
    assert record["exception_message"] == "boom goes the step"
    assert 'raise ValueError("boom goes the step")' in record["traceback"]
    assert record["stdout"] == "about to fail\n"
    assert _tasks(store, "FailingFlow", "end") == []
    # inputs are kept on the failed task
    assert _value(store, boom["task_id"], "before") == 1


def test_retry_and_catch(store: Store) -> None:
    Runner(load_flow(FLOWS / "retry_catch_flow.py"), store=store).run(max_workers=store.max_workers)
    assert _status(store, "RetryCatchFlow") == "succeeded"
    flaky = _tasks(store, "RetryCatchFlow", "flaky")[0]
    assert flaky["status"] == "succeeded" and flaky["attempt"] == 1
    first = store.attempt_record(flaky["task_id"], 0)
    assert first["status"] == "failed" and first["stdout"] == "flaky attempt 0\n"
    assert store.attempt_record(flaky["task_id"], 1)["stdout"] == "flaky attempt 1\n"
    risky = _tasks(store, "RetryCatchFlow", "risky")[0]
    assert risky["status"] == "caught"
    error = _value(store, risky["task_id"], "error")
    assert error.type == "builtins.KeyError"
    assert _value(store, risky["task_id"], "partial") == "set before the error"
    end = _tasks(store, "RetryCatchFlow", "end")[0]["task_id"]
    assert "always fails" in store.attempt_record(end)["stdout"]


def test_worker_that_dies_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARD_CRASH", "1")
    store = Store(tmp_path / "crash.db")
    Runner(load_flow(FLOWS / "retry_catch_flow.py"), store=store).run(max_workers=2)
    flaky = _tasks(store, "RetryCatchFlow", "flaky")[0]
    first = store.attempt_record(flaky["task_id"], 0)
    assert first["status"] == "failed" and "exited (code 13)" in first["exception_message"]
    assert flaky["status"] == "succeeded" and _status(store, "RetryCatchFlow") == "succeeded"


def test_current_inside_and_outside(memory_store: Store) -> None:
    seen: dict[str, Any] = {}

    class Cur(FlowSpec):
        @step
        def start(self):
            seen.update(current.as_dict())
            self.next(self.end)

        @step
        def end(self):
            pass

    Runner(Cur, store=memory_store).run(tags=["t1"])
    assert seen["is_running_flow"] is True and seen["flow_name"] == "Cur"
    assert seen["pathspec"] == f"Cur/{seen['run_id']}/start/{seen['task_id']}"
    assert seen["namespace"] == "user:tester" and seen["username"] == "tester"
    assert seen["tags"] == {"t1"} and seen["retry_count"] == 0 and seen["origin_run_id"] is None
    assert current.is_running_flow is False and current.task_id is None


def test_concurrent_inline_contexts_do_not_mix() -> None:
    """Two tasks' contexts in threads of one process: current and captured output stay apart."""
    import contextvars
    import threading

    from runstore.current import TaskContext, task_context
    from runstore.runtime.task import _capture, _Capture, install_output_capture
    import sys

    real_out, real_err = install_output_capture()
    captures = {}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        cap = _Capture(name, False, real_out, real_err)
        _capture.set(cap)
        with task_context(TaskContext("F", "1", name, name)):
            for i in range(50):
                barrier.wait() if i == 0 else None
                print(f"{current.step_name}-{i}")
        captures[name] = cap.close()[0]

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(work, n)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert captures["a"] == "".join(f"a-{i}\n" for i in range(50))
    assert captures["b"] == "".join(f"b-{i}\n" for i in range(50))
    assert isinstance(sys.stdout.write("ok\n"), int)


def test_parameter_kinds_and_include_file(memory_store: Store, tmp_path: Path) -> None:
    from runstore import IncludeFile, JSONType

    (tmp_path / "notes.txt").write_text("hello notes")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01")
    seen: dict[str, Any] = {}

    class Kinds(FlowSpec):
        req = Parameter("req", type=int, required=True)
        items = Parameter("items", default="a,b", separator=",")
        flag = Parameter("flag", default=False)
        cfg = Parameter("cfg", type=JSONType, default='{"k": 1}')
        notes = IncludeFile("notes", default=str(tmp_path / "notes.txt"))
        raw = IncludeFile("raw", default=str(tmp_path / "blob.bin"), is_text=False)

        @step
        def start(self):
            try:
                self.req = 5
            except AttributeError as exc:
                seen["readonly"] = str(exc)
            self.next(self.end)

        @step
        def end(self):
            seen.update(req=self.req, items=self.items, flag=self.flag, cfg=self.cfg, notes=self.notes,
                        raw=self.raw, names=current.parameter_names)

    with pytest.raises(ParameterError, match="Missing option '--req'"):
        Runner(Kinds, store=memory_store).run()
    assert memory_store.run_ref("Kinds") is None
    Runner(Kinds, store=memory_store).run(req="7", flag="true")
    assert seen["req"] == 7 and seen["items"] == ["a", "b"] and seen["flag"] is True
    assert seen["cfg"] == {"k": 1} and seen["notes"] == "hello notes" and seen["raw"] == b"\x00\x01"
    assert "not modifiable" in seen["readonly"]
    assert seen["names"] == ["cfg", "flag", "items", "notes", "raw", "req"]
    with pytest.raises(ParameterError, match="cannot read"):
        Runner(Kinds, store=memory_store).run(req=1, notes=str(tmp_path / "missing.txt"))


def test_reserved_and_duplicate_parameter_names() -> None:
    from runstore.errors import FlowDefinitionError

    with pytest.raises(FlowDefinitionError, match="reserved"):
        Parameter("max-workers")

    class Dup(FlowSpec):
        a = Parameter("lr")
        b = Parameter("LR")

        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(FlowDefinitionError, match="specified twice"):
        Dup._parameters()


def test_transition_mismatch_fails_the_task(memory_store: Store) -> None:
    class Liar(FlowSpec):
        @step
        def start(self):
            if True:
                pass
            self.next(self.end)

        @step
        def end(self):
            self.next(self.end)  # noqa - the end step must not call next

    from runstore.errors import FlowDefinitionError

    with pytest.raises(FlowDefinitionError, match="end step must not call"):
        Liar._graph()


class BranchInForeach(FlowSpec):
    @step
    def start(self):
        self.items = ["x", "y", "z"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.item = self.input
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = f"L{self.item}"
        self.next(self.left2)

    @step
    def left2(self):
        self.side += "2"
        self.next(self.meet)

    @step
    def right(self):
        self.side = f"R{self.item}"
        self.next(self.meet)

    @step
    def meet(self, inputs):
        self.pair = (inputs.left2.side, inputs.right.side)
        self.merge_artifacts(inputs, exclude=["side"])
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.pairs = [i.pair for i in inputs]
        self.items_seen = [i.item for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


def test_static_branches_inside_a_foreach(store: Store) -> None:
    Runner(BranchInForeach, store=store).run(max_workers=store.max_workers)
    assert _status(store, "BranchInForeach") == "succeeded"
    gather = _tasks(store, "BranchInForeach", "gather")[0]["task_id"]
    assert _value(store, gather, "pairs") == [("Lx2", "Rx"), ("Ly2", "Ry"), ("Lz2", "Rz")]
    assert _value(store, gather, "items_seen") == ["x", "y", "z"]
    assert len(_tasks(store, "BranchInForeach", "meet")) == 3


def test_unstorable_artifact_fails_the_task_clearly(memory_store: Store) -> None:
    import threading

    class Bad(FlowSpec):
        @step
        def start(self):
            self.lock = threading.Lock()
            self.next(self.end)

        @step
        def end(self):
            pass

    run = Runner(Bad, store=memory_store).run(raise_on_failure=False)
    assert not run.successful
    start = _tasks(memory_store, "Bad", "start")[0]
    record = memory_store.attempt_record(start["task_id"])
    assert record["exception_type"] == "runstore.errors.CodecError" and "lock" in record["exception_message"]


def test_concurrent_cli_runs_get_distinct_numbers(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "runstore.db"
    Store(db).close()
    procs = [subprocess.Popen([sys.executable, str(EXAMPLES / "hello_flow.py"), "--db", str(db), "--quiet", "run"])
             for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    store = Store(db)
    with store.read() as conn:
        rows = conn.execute("SELECT run_number, status FROM runs ORDER BY run_number").fetchall()
    assert rows == [(1, "succeeded"), (2, "succeeded"), (3, "succeeded"), (4, "succeeded")]


RUN_IN_CHILD = """
import sys
from runstore import Runner, Store
from runstore.runtime import load_flow
run = Runner(load_flow(sys.argv[1]), store=Store(sys.argv[2])).run(max_workers=2)
print("RESULT", run.successful)
"""


def test_worker_killed_by_sigkill_does_not_hang(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    db = tmp_path / "killed.db"
    # In a child with a timeout: a hang fails the test instead of stalling the suite.
    proc = subprocess.run([sys.executable, "-c", RUN_IN_CHILD, str(FLOWS / "retry_catch_flow.py"), str(db)],
                          env={**os.environ, "HARD_CRASH": "kill"}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "RESULT True"
    store = Store(db)
    flaky = _tasks(store, "RetryCatchFlow", "flaky")[0]
    assert "killed by SIGKILL" in store.attempt_record(flaky["task_id"], 0)["exception_message"]


def test_no_write_transaction_is_held_while_a_step_runs(tmp_path: Path) -> None:
    """Inside a step (worker process), another connection takes the write lock at once."""
    import sqlite3

    db = tmp_path / "open.db"
    outcome: dict[str, Any] = {}

    class Probe(FlowSpec):
        @step
        def start(self):
            conn = sqlite3.connect(str(db), timeout=0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("COMMIT")
                self.lock = "free"
            except sqlite3.OperationalError as exc:
                self.lock = str(exc)
            finally:
                conn.close()
            self.next(self.end)

        @step
        def end(self):
            pass

    store = Store(db)
    for workers in (2, 1):
        run = Runner(Probe, store=store).run(max_workers=workers)
        outcome[workers] = run["start"].task.data.lock
    assert outcome == {2: "free", 1: "free"}
