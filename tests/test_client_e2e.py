"""The client against runs made by the real runtime (`python flow.py run`, Runner)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest
from helpers import run_flow

from runstore import Flow, NamespaceMismatch, Run, Store, namespace, use_store

PREDICTION_FLOW = textwrap.dedent('''
    from runstore import FlowSpec, Parameter, current, get_namespace, step, Flow

    class PredictionFlow(FlowSpec):
        alpha = Parameter("alpha", default=0.5)

        @step
        def start(self):
            self.seen_namespace = get_namespace()
            self.seen_current = current.namespace
            try:
                self.others = [r.pathspec for r in Flow("PredictionFlow")]
            except Exception as exc:
                self.others = type(exc).__name__
            print("predicting with", self.alpha)
            self.next(self.end)

        @step
        def end(self):
            self.accuracy = round(0.8 + self.alpha / 10, 3)

    if __name__ == "__main__":
        PredictionFlow()
''')

HELLO_FLOW = textwrap.dedent('''
    from runstore import FlowSpec, step

    class HelloFlow(FlowSpec):
        @step
        def start(self):
            self.greeting = "Hello, runstore!"
            self._secret = 42
            self.next(self.hello)

        @step
        def hello(self):
            print(self.greeting)
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        HelloFlow()
''')

RETRY_FLOW = textwrap.dedent('''
    from runstore import FlowSpec, catch, current, retry, step

    class RetryFlow(FlowSpec):
        @retry(times=1)
        @step
        def start(self):
            print(f"attempt {current.retry_count}")
            if current.retry_count == 0:
                raise RuntimeError("first attempt fails")
            self.value = "second time lucky"
            self.next(self.risky)

        @catch(var="error")
        @step
        def risky(self):
            raise KeyError("always fails")
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        RetryFlow()
''')


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, text in [("prediction.py", PREDICTION_FLOW), ("hello.py", HELLO_FLOW), ("retry.py", RETRY_FLOW)]:
        (tmp_path / name).write_text(text)
    return tmp_path


def flow_cli(project: Path, script: str, *args: str, user: str = "tester") -> subprocess.CompletedProcess:
    env = {"RUNSTORE_USER": user, "RUNSTORE_DB": str(project / "runstore.db")}
    return run_flow(project / script, None, *args, quiet=True, cwd=project, env=env)


def test_run_with_a_tag_then_find_it(project):
    result = flow_cli(project, "hello.py", "run", "--tag", "crazy_test")
    assert result.returncode == 0, result.stderr
    store = Store(project / "runstore.db")
    namespace("user:tester")
    run = list(Flow("HelloFlow", store=store).runs("crazy_test"))[0]
    assert run.successful and run.finished and run.status == "succeeded"
    assert run.user_tags == {"crazy_test"}
    assert {"user:tester", "runtime:local"} <= run.system_tags
    assert any(t.startswith("python_version:") for t in run.system_tags)
    assert any(t.startswith("date:") for t in run.system_tags)
    assert [s.id for s in run] == ["end", "hello", "start"]
    start = run["start"].task
    assert start.data.greeting == "Hello, runstore!"
    assert "_secret" not in start.data and start["_secret"].data == 42
    assert run["hello"].task.stdout == "Hello, runstore!\n"
    for obj in (run["hello"], start, start["greeting"]):
        assert "crazy_test" in obj.tags
    assert run.code is not None and "class HelloFlow" in run.code.flowspec
    assert run.origin_pathspec is None and start.origin_pathspec is None
    assert start.metadata_dict["user"] == "tester"


def test_two_users_share_a_store(project):
    for user, alpha in [("anne", "0.1"), ("will", "0.2"), ("anne", "0.3"), ("will", "0.4")]:
        assert flow_cli(project, "prediction.py", "run", "--alpha", alpha, user=user).returncode == 0
    store = Store(project / "runstore.db")
    with use_store(store):
        os.environ["RUNSTORE_USER"] = "anne"
        namespace("user:anne")
        latest = Flow("PredictionFlow").latest_run
        assert (latest.id, latest.user, latest.data.alpha) == ("3", "anne", 0.3)
        with pytest.raises(NamespaceMismatch, match="namespace\\('user:will'\\)"):
            Run("PredictionFlow/4")
        namespace("user:will")
        assert Flow("PredictionFlow").latest_run.data.accuracy == 0.84
        namespace(None)
        assert [r.id for r in Flow("PredictionFlow")] == ["4", "3", "2", "1"]
        # inside the steps, the client saw only its own user's runs
        assert Run("PredictionFlow/4")["start"].task.data.others == ["PredictionFlow/4", "PredictionFlow/2"]


def test_namespace_option_reaches_the_steps(project):
    assert flow_cli(project, "prediction.py", "run", user="will").returncode == 0
    assert flow_cli(project, "prediction.py", "run", "--namespace", "user:will", user="anne").returncode == 0
    assert flow_cli(project, "prediction.py", "run", "--namespace", "", user="anne").returncode == 0
    store = Store(project / "runstore.db")
    namespace(None)
    second = Run("PredictionFlow/2", store=store)["start"].task.data
    assert (second.seen_namespace, second.seen_current) == ("user:will", "user:anne")
    assert second.others == ["PredictionFlow/1"]
    third = Run("PredictionFlow/3", store=store)["start"].task.data
    assert third.seen_namespace is None
    assert third.others == ["PredictionFlow/3", "PredictionFlow/2", "PredictionFlow/1"]


def test_retries_and_catch(project):
    flow_cli(project, "retry.py", "run")
    store = Store(project / "runstore.db")
    namespace(None)
    run = Flow("RetryFlow", store=store).latest_run
    start = run["start"].task
    assert start.successful and start.current_attempt == 1 and start.data.value == "second time lucky"
    first = Run(run.pathspec, store=store)["start"].task
    first = type(first)(first.pathspec, attempt=0, store=store)
    assert not first.successful and first.exception.type.endswith("RuntimeError")
    assert "first attempt fails" in str(first.exception) and first.stdout == "attempt 0\n"
    risky = run["risky"].task
    assert risky.finished and not risky.successful and risky.exception is None  # caught, as in Metaflow
    assert "KeyError" in risky.data.error.type and risky.data.error.stacktrace.startswith("Traceback")


def test_flow_cli_tag_commands(project):
    assert flow_cli(project, "hello.py", "run").returncode == 0
    added = flow_cli(project, "hello.py", "tag", "add", "--run-id", "1", "best")
    assert added.returncode == 0, added.stderr
    missing = flow_cli(project, "hello.py", "tag", "add", "best")
    assert missing.returncode == 2 and "Please specify a run-id using --run-id" in missing.stderr
    listed = flow_cli(project, "hello.py", "tag", "list", "--json")
    assert json.loads(listed.stdout)[0]["user_tags"] == ["best"]
    namespace(None)
    assert Run("HelloFlow/1", store=Store(project / "runstore.db")).user_tags == {"best"}


def test_sql_views_over_real_runs(project):
    for alpha in ("0.1", "0.5"):
        assert flow_cli(project, "prediction.py", "run", "--alpha", alpha).returncode == 0
    conn = sqlite3.connect(project / "runstore.db")
    best = conn.execute("SELECT pathspec, value FROM artifacts_view WHERE name = 'accuracy'"
                        " ORDER BY value DESC LIMIT 1").fetchone()
    assert best == ("PredictionFlow/2/end/" + best[0].split("/")[3] + "/accuracy", 0.85)
    params = [json.loads(p) for (p,) in conn.execute(
        "SELECT parameters FROM parameters_view ORDER BY run_number")]
    assert params == [{"alpha": 0.1}, {"alpha": 0.5}]
    statuses = conn.execute("SELECT status FROM runs_view").fetchall()
    assert statuses == [("succeeded",), ("succeeded",)]
    conn.close()


NESTED_FLOW = textwrap.dedent('''
    from runstore import FlowSpec, step

    class NestFlow(FlowSpec):
        @step
        def start(self):
            self.xs = [1, 2]
            self.next(self.outer, foreach="xs")

        @step
        def outer(self):
            self.ys = ["a", "b", "c"]
            self.next(self.inner, foreach="ys")

        @step
        def inner(self):
            self.pair = (self.input, self.index)
            self.next(self.inner_join)

        @step
        def inner_join(self, inputs):
            self.pairs = [i.pair for i in inputs]
            self.next(self.outer_join)

        @step
        def outer_join(self, inputs):
            self.count = sum(len(i.pairs) for i in inputs)
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        NestFlow()
''')


def test_parent_and_child_tasks_follow_foreach_paths(project):
    (project / "nest.py").write_text(NESTED_FLOW)
    result = flow_cli(project, "nest.py", "run")
    assert result.returncode == 0, result.stderr
    namespace(None)
    run = Flow("NestFlow", store=Store(project / "runstore.db")).latest_run
    assert run["outer_join"].task.data.count == 6
    start = run["start"].task
    assert sorted(t.index for t in start.child_tasks) == [0, 1]
    outer = {t.index: t for t in run["outer"]}
    inner_of_1 = outer[1].child_tasks
    assert sorted(t.index for t in inner_of_1) == [0, 1, 2]
    assert all(t.foreach_path.startswith("start:1,") for t in inner_of_1)
    join_of_1 = [t for t in run["inner_join"] if t.foreach_path == "start:1"][0]
    assert sorted(t.pathspec for t in join_of_1.parent_tasks) == sorted(t.pathspec for t in inner_of_1)
    assert [t.pathspec for t in inner_of_1[0].child_tasks] == [join_of_1.pathspec]
    assert len(run["outer_join"].task.parent_tasks) == 2
    assert run["end"].task.parent_tasks == [run["outer_join"].task]
    assert start.parent_tasks == [] and run["end"].task.child_tasks == []
