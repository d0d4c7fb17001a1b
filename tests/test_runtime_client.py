"""What the runtime writes, read back through the client API (the contract in use)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import run_flow

from runstore import Flow, FlowSpec, Run, Runner, Store, Task, current, namespace, step, use_store
from runstore.flowspec import CaughtException
from runstore.runtime import load_flow

EXAMPLES = Path(__file__).parent.parent / "examples"
FLOWS = Path(__file__).parent / "flows"


def _cli(path: Path, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_flow(path, db, *args, quiet=True)


def test_model_artifact_via_client(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    assert _cli(EXAMPLES / "model_flow.py", db, "run", "--tag", "exp").returncode == 0
    store = Store(db)
    run = Flow("ModelFlow", store=store).latest_run
    assert run.successful and run.finished
    model = run["start"].task.data.model
    assert model.predict(4) == 3.0
    assert run["evaluate"].task.data.prediction == 3.0
    # user tags are visible from the run down to artifacts
    assert "exp" in run.tags and "exp" in run["start"].tags and "exp" in run["start"].task.tags
    assert "exp" in run["start"].task["model"].tags
    assert {"runtime:local", "user:tester"} <= set(run.system_tags)
    assert run.code.script_name == "model_flow.py" and "class ModelFlow" in run.code.flowspec
    assert run.code.info["flow_name"] == "ModelFlow"
    meta = run["start"].task.metadata_dict
    assert meta["user"] == "tester" and meta["runtime"] == "local" and meta["attempt"] == "0"


def test_current_flow_stdout_via_task(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    assert _cli(EXAMPLES / "current_flow.py", db, "run").returncode == 0
    with use_store(Store(db)):
        task = Flow("CurrentFlow").latest_run["start"].task
        out = Task(task.pathspec).stdout
    assert f"pathspec = '{task.pathspec}'" in out and "is_running_flow = True" in out


def test_param_flow_values_in_run_data(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    assert _cli(EXAMPLES / "param_flow.py", db, "run", "--model-version", "v2", "--learning-rate", "0.01").returncode == 0
    run = Flow("ParamFlow", store=Store(db)).latest_run
    assert run.data.model_version == "v2" and run.data.learning_rate == 0.01
    assert run["start"].task.data.learning_rate == 0.01


def test_foreach_and_failure_via_client(memory_store: Store) -> None:
    run = Runner(load_flow(EXAMPLES / "foreach_flow.py"), store=memory_store).run(n=7)
    squares = list(run["square"])
    assert sorted(t.index for t in squares) == list(range(7))
    assert all(t.data.result == t.index ** 2 for t in squares)
    assert run["join"].task.data.total == sum(i * i for i in range(7))
    failed = Runner(load_flow(FLOWS / "failing_flow.py"), store=memory_store).run(raise_on_failure=False)
    assert not failed.successful
    boom = failed["boom"].task
    assert not boom.successful and "boom goes the step" in str(boom.exception)
    assert "about to fail" in boom.stdout


def test_retry_attempts_via_client(memory_store: Store) -> None:
    run = Runner(load_flow(FLOWS / "retry_catch_flow.py"), store=memory_store).run()
    flaky = run["flaky"].task
    assert flaky.successful and flaky.current_attempt == 1
    risky = run["risky"].task
    assert risky.finished and not risky.successful
    assert run["end"].task.data.error.type == "builtins.KeyError"


def test_a_caught_exception_is_safepickle_and_loads_from_a_strangers_file(memory_store: Store) -> None:
    # @catch's record is on the safe codec's allow-list: a colleague reads it without `runstore trust`.
    run = Runner(load_flow(FLOWS / "retry_catch_flow.py"), store=memory_store).run()
    artifact = run["risky"].task["error"]
    assert artifact.encoding == "safepickle" and artifact.type == "runstore.codecs.CaughtException"
    with memory_store.write() as conn:
        conn.execute("DELETE FROM blob_trust")  # as if someone else wrote the file
    error = Run(run.pathspec, store=memory_store)["end"].task.data.error
    assert type(error) is CaughtException and error.type == "builtins.KeyError" and "always fails" in error.message
    assert "Traceback" in error.traceback


def test_current_run_and_task_and_namespace_inside_steps(memory_store: Store) -> None:
    seen = {}

    class Inside(FlowSpec):
        @step
        def start(self):
            seen["task"] = current.task.pathspec
            seen["run"] = current.run.pathspec
            from runstore import get_namespace

            seen["ns"] = get_namespace()
            self.next(self.end)

        @step
        def end(self):
            pass

    run = Runner(Inside, store=memory_store).run(namespace="")
    assert seen["run"] == run.pathspec and seen["task"] == run["start"].task.pathspec
    assert seen["ns"] is None  # --namespace "" means global inside steps
    Runner(Inside, store=memory_store).run(namespace="user:someone")
    assert seen["ns"] == "user:someone"
    Runner(Inside, store=memory_store).run()
    assert seen["ns"] == "user:tester"


def test_runner_from_path_with_file_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    run = Runner(str(EXAMPLES / "branch_flow.py"), store=store).run(max_workers=2, tags=["x"])
    assert isinstance(run.run, Run) and run.successful and run.data.total == 120  # an ExecutingRun standing for it
    namespace(None)
    assert [r.pathspec for r in Flow("BranchFlow", store=store).runs("x")] == [run.pathspec]
