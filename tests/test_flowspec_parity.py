"""Metaflow parity of flow authoring (issue #12, SPEC §14): parameters from the environment,
callable defaults with a context, class-level constants, reserved names, ``name``/``script_name``,
all-or-nothing ``merge_artifacts`` and what ``@catch`` keeps.

Every flow here is a real file in ``tmp_path`` run through ``python flow.py ...``.
"""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest

from runstore import FlowSpec, Parameter, Run, Store, step
from runstore.errors import FlowDefinitionError
from runstore.flowspec import RESERVED_ATTRIBUTE_NAMES

from helpers import run_flow


def write_flow(tmp_path: Path, name: str, body: str) -> Path:
    script = tmp_path / name
    script.write_text(textwrap.dedent(body))
    return script


def run_count(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def one_line_error(proc, *needles: str) -> str:
    """The child failed with exactly one ``Error: ...`` line on stderr (no traceback)."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- parameters from the environment

ENV_FLOW = """
    from runstore import FlowSpec, Parameter, step

    class EnvFlow(FlowSpec):
        alpha = Parameter("alpha", default=0.5)
        learning_rate = Parameter("learning-rate", default=0.1)
        label = Parameter("label", default="base")
        items = Parameter("items", default="a", separator=",")

        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        EnvFlow()
"""


def test_parameters_from_the_environment_and_the_flag_wins(tmp_path: Path) -> None:
    script, db = write_flow(tmp_path, "env_flow.py", ENV_FLOW), tmp_path / "runstore.db"
    env = {"RUNSTORE_RUN_ALPHA": "2", "METAFLOW_RUN_ALPHA": "3",  # RUNSTORE_ wins over METAFLOW_
           "METAFLOW_RUN_LEARNING_RATE": "0.25",  # a Metaflow user's variable works as it is
           "RUNSTORE_RUN_LABEL": "from-env",  # ... but the flag wins
           "RUNSTORE_RUN_ITEMS": "x,y,z"}  # converted once, like a flag
    proc = run_flow(script, db, "--quiet", "run", "--label", "from-flag", env=env)
    assert proc.returncode == 0, proc.stderr
    data = Run("EnvFlow/1", store=Store(db), _namespace_check=False).data
    assert (data.alpha, data.learning_rate, data.label, data.items) == (2.0, 0.25, "from-flag", ["x", "y", "z"])
    assert type(data.alpha) is float


def test_an_empty_variable_is_unset_and_a_bad_one_is_a_usage_error(tmp_path: Path) -> None:
    script, db = write_flow(tmp_path, "env_flow.py", ENV_FLOW), tmp_path / "runstore.db"
    proc = run_flow(script, db, "--quiet", "run", env={"RUNSTORE_RUN_ALPHA": "", "METAFLOW_RUN_ALPHA": "4"})
    assert proc.returncode == 0, proc.stderr
    assert Run("EnvFlow/1", store=Store(db), _namespace_check=False).data.alpha == 4.0
    bad = run_flow(script, db, "--quiet", "run", env={"METAFLOW_RUN_ALPHA": "lots"})
    assert bad.returncode == 2
    assert "METAFLOW_RUN_ALPHA" in bad.stderr and "'lots' is not a valid float" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert run_count(db) == 1  # nothing stored for the bad value


def test_runner_reads_the_environment_too_and_its_keyword_wins(tmp_path: Path, monkeypatch, memory_store) -> None:
    from runstore import Runner

    script = write_flow(tmp_path, "env_flow.py", ENV_FLOW)
    monkeypatch.setenv("RUNSTORE_RUN_ALPHA", "7")
    monkeypatch.setenv("METAFLOW_RUN_LABEL", "env")
    run = Runner(script, store=memory_store).run(label="keyword")
    assert (run.data.alpha, run.data.label) == (7.0, "keyword")


def test_run_clone_takes_an_environment_value_over_the_cloned_one(tmp_path: Path) -> None:
    script, db = write_flow(tmp_path, "env_flow.py", ENV_FLOW), tmp_path / "runstore.db"
    assert run_flow(script, db, "--quiet", "run", "--alpha", "1", "--label", "first").returncode == 0
    proc = run_flow(script, db, "--quiet", "run", "--clone", "1", env={"RUNSTORE_RUN_ALPHA": "9"})
    assert proc.returncode == 0, proc.stderr
    data = Run("EnvFlow/2", store=Store(db), _namespace_check=False).data
    assert (data.alpha, data.label) == (9.0, "first")


# ---------------------------------------------------------------- callable defaults

CALLABLE_FLOW = """
    from runstore import FlowSpec, JSONType, Parameter, step

    def who(ctx):
        return f"{ctx.flow_name}/{ctx.parameter_name}/{ctx.user_name}/{ctx.ds_type}"

    class CallableFlow(FlowSpec):
        who = Parameter("who", default=who)
        count = Parameter("count", default=lambda: 7)  # no argument: still called; int drives --count
        rate = Parameter("rate", default=lambda ctx: 0.5)
        cfg = Parameter("cfg", type=JSONType, default=lambda ctx: '{"k": [1, 2]}')
        blob = Parameter("blob", type=JSONType, default=lambda ctx: {"a": None})
        typed = Parameter("typed", type=int, default=lambda ctx: "12")

        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        CallableFlow()
"""


def test_callable_defaults_get_a_context_and_their_value_types_the_option(tmp_path: Path) -> None:
    script, db = write_flow(tmp_path, "callable_flow.py", CALLABLE_FLOW), tmp_path / "runstore.db"
    proc = run_flow(script, db, "--quiet", "run", env={"RUNSTORE_USER": "anne"})
    assert proc.returncode == 0, proc.stderr
    data = Run("CallableFlow/1", store=Store(db), _namespace_check=False).data
    assert data.who == "CallableFlow/who/anne/runstore"
    assert (data.count, data.rate, data.cfg, data.blob, data.typed) == (7, 0.5, {"k": [1, 2]}, {"a": None}, 12)
    proc = run_flow(script, db, "--quiet", "run", "--count", "8", "--rate", "2", env={"RUNSTORE_USER": "anne"})
    assert proc.returncode == 0, proc.stderr
    data = Run("CallableFlow/2", store=Store(db), _namespace_check=False).data
    assert (data.count, data.rate) == (8, 2.0) and type(data.count) is int and type(data.rate) is float
    bad = run_flow(script, db, "--quiet", "run", "--count", "eight")
    assert bad.returncode == 2 and "Invalid value for '--count'" in bad.stderr and "'eight'" in bad.stderr
    assert run_count(db) == 2


def test_a_failing_default_function_is_one_line(tmp_path: Path) -> None:
    script = write_flow(tmp_path, "broken_default.py", """
        from runstore import FlowSpec, Parameter, step

        def broken(ctx):
            raise KeyError("no-such-setting")

        class BrokenDefaultFlow(FlowSpec):
            setting = Parameter("setting", default=broken)
            limit = Parameter("limit", type=int, default=lambda ctx: "many")

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            BrokenDefaultFlow()
    """)
    db = tmp_path / "runstore.db"
    proc = run_flow(script, db, "--quiet", "run", "--limit", "1")
    assert proc.returncode == 2 and "Parameter 'setting': its default function raised KeyError" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_flow(script, db, "--quiet", "run", "--setting", "s")
    assert proc.returncode == 2 and "Parameter 'limit': its default function returned 'many'" in proc.stderr
    assert run_count(db) == 0


def test_parameter_default_value_in_process() -> None:
    from runstore.flowspec import ParameterContext

    ctx = ParameterContext.for_flow("F")
    two = Parameter("two", default=lambda ctx, deploy_time: (ctx.parameter_name, deploy_time))
    assert two.default_value(ctx) == ["two", False] or two.default_value(ctx) == ("two", False)
    assert Parameter("n", default=lambda: 3).typed_for(3).type is int
    assert Parameter("n", default=lambda: 3, type=float).default_value(ctx) == 3.0
    assert Parameter("s", default=lambda: "a,b", separator=",").default_value(ctx) == ["a", "b"]


# ---------------------------------------------------------------- class-level constants

CONSTANT_FLOW = """
    from runstore import FlowSpec, Parameter, current, step

    class ConstantFlow(FlowSpec):
        LIMIT = 3
        NAMES = ["a", "b"]
        _private = "not stored"
        alpha = Parameter("alpha", default=1)

        def helper(self):
            return "not stored"

        @staticmethod
        def util():
            return "not stored"

        class Nested:
            pass

        @step
        def start(self):
            self.seen = (self.LIMIT, list(self.NAMES))
            try:
                self.LIMIT = 4
            except AttributeError as exc:
                self.refused = str(exc)
            self.params = list(current.parameter_names)
            self.next(self.each, foreach="NAMES")

        @step
        def each(self):
            self.got = (self.input, self.LIMIT)
            self.next(self.join)

        @step
        def join(self, inputs):
            self.got = [i.got for i in inputs]
            self.merge_artifacts(inputs, exclude=["got"])
            self.next(self.end)

        @step
        def end(self):
            self.last = self.LIMIT

    if __name__ == "__main__":
        ConstantFlow()
"""


def test_class_constants_are_read_only_and_artifacts_of_every_task(tmp_path: Path) -> None:
    script, db = write_flow(tmp_path, "constant_flow.py", CONSTANT_FLOW), tmp_path / "runstore.db"
    proc = run_flow(script, db, "--quiet", "run")
    assert proc.returncode == 0, proc.stderr
    store = Store(db)
    run = Run("ConstantFlow/1", store=store, _namespace_check=False)
    start = run["start"].task.data
    assert start.seen == (3, ["a", "b"]) and "not modifiable" in start.refused and "LIMIT" in start.refused
    assert start.params == ["alpha"]  # constants are not parameters
    assert run["join"].task.data.got == [("a", 3), ("b", 3)] and run.data.last == 3
    for step_ in ("start", "each", "join", "end"):
        for task in run[step_]:
            names = {a.id for a in task}
            assert {"LIMIT", "NAMES", "alpha"} <= names, (step_, names)
            assert not names & {"_private", "helper", "util", "Nested"}
            assert task.data.LIMIT == 3 and task.data.NAMES == ["a", "b"]
    # not parameters anywhere: neither in the _parameters task nor in the SQL view
    assert {a.id for a in run["_parameters"].task} == {"alpha"}
    assert store.sql("SELECT parameters FROM parameters_view").rows == [('{"alpha":1}',)]


def test_a_constant_that_cannot_be_stored_fails_the_run_in_one_line(tmp_path: Path) -> None:
    script = write_flow(tmp_path, "lock_flow.py", """
        import threading
        from runstore import FlowSpec, step

        class LockFlow(FlowSpec):
            LOCK = threading.Lock()

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            LockFlow()
    """)
    proc = run_flow(script, tmp_path / "runstore.db", "--quiet", "run")
    one_line_error(proc, "class-level constant 'LOCK'", "cannot be stored")


# ---------------------------------------------------------------- reserved names


@pytest.mark.parametrize("name", sorted(RESERVED_ATTRIBUTE_NAMES))
@pytest.mark.parametrize("kind", ["parameter", "constant", "step"])
def test_reserved_names_are_refused_at_class_creation(name: str, kind: str) -> None:
    if kind == "parameter":
        body = {name: Parameter("some-option")}
    elif kind == "constant":
        body = {name: 5}
    else:
        def func(self):
            pass
        func.__name__ = name
        body = {name: step(func)}
    with pytest.raises(FlowDefinitionError) as info:
        type("Reserved", (FlowSpec,), body)
    assert f"{kind if kind != 'constant' else 'class attribute'} {name!r} has a name reserved by FlowSpec" \
        in str(info.value)


def test_an_artifact_with_a_reserved_name_is_refused_before_the_run_with_its_line(tmp_path: Path) -> None:
    script = write_flow(tmp_path, "next_flow.py", """
        from runstore import FlowSpec, step

        class NextFlow(FlowSpec):
            @step
            def start(self):
                self.fine = 1
                self.next = "oops"
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            NextFlow()
    """)
    db = tmp_path / "runstore.db"
    line = one_line_error(run_flow(script, db, "run"), "step 'start' (line 8)", "self.next is reserved")
    assert "next_flow.py" in line
    assert run_count(db) == 0


def test_an_artifact_set_by_name_at_run_time_is_refused_too(tmp_path: Path) -> None:
    script = write_flow(tmp_path, "dyn_flow.py", """
        from runstore import FlowSpec, step

        class DynFlow(FlowSpec):
            @step
            def start(self):
                self.seen = (self.name, self.script_name)
                for attr in ("name", "input"):
                    try:
                        setattr(self, attr, 1)
                    except AttributeError as exc:
                        setattr(self, "refused_" + attr, str(exc))
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            DynFlow()
    """)
    db = tmp_path / "runstore.db"
    proc = run_flow(script, db, "--quiet", "run")
    assert proc.returncode == 0, proc.stderr
    data = Run("DynFlow/1", store=Store(db), _namespace_check=False)["start"].task.data
    assert data.seen == ("DynFlow", "dyn_flow.py")  # FlowSpec.name and script_name, as in Metaflow
    assert "'name' is reserved by FlowSpec" in data.refused_name
    assert "'input' is reserved by FlowSpec" in data.refused_input


@pytest.mark.parametrize("option", ["tag", "max-workers", "max_workers", "namespace"])
def test_a_parameter_named_like_a_run_option_is_one_line(tmp_path: Path, option: str) -> None:
    script = write_flow(tmp_path, "clash_flow.py", f"""
        from runstore import FlowSpec, Parameter, step

        class ClashFlow(FlowSpec):
            clash = Parameter({option!r}, default="x")

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            ClashFlow()
    """)
    db = tmp_path / "runstore.db"
    one_line_error(run_flow(script, db, "run"), f"Parameter name {option!r} is a reserved word")
    assert run_count(db) == 0


def test_a_reserved_class_attribute_in_a_flow_file_is_one_line(tmp_path: Path) -> None:
    script = write_flow(tmp_path, "index_flow.py", """
        from runstore import FlowSpec, Parameter, step

        class IndexFlow(FlowSpec):
            index = Parameter("position", default=0)

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            IndexFlow()
    """)
    one_line_error(run_flow(script, tmp_path / "runstore.db", "run"),
                   "IndexFlow: the parameter 'index' has a name reserved by FlowSpec")


# ---------------------------------------------------------------- merge_artifacts: all or nothing

MERGE_FLOW = """
    from runstore import FlowSpec, step
    from runstore.errors import MergeArtifactsError

    class MergeFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.aaa_same, self.mid_same, self.zzz_differs = 1, "m", "from a"
            self.next(self.join)

        @step
        def b(self):
            self.aaa_same, self.mid_same, self.zzz_differs = 1, "m", "from b"
            self.next(self.join)

        @step
        def join(self, inputs):
            self.attempts = []
            for kwargs in ({}, {"include": ["aaa_same", "nowhere"]}):
                try:
                    self.merge_artifacts(inputs, **kwargs)
                except MergeArtifactsError as exc:
                    self.attempts.append((type(exc).__name__, hasattr(self, "aaa_same"),
                                          hasattr(self, "mid_same"), "aaa_same" in self))
            self.zzz_differs = "decided"
            self.merge_artifacts(inputs)
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        MergeFlow()
"""


def test_merge_artifacts_sets_nothing_when_it_raises(tmp_path: Path) -> None:
    script, db = write_flow(tmp_path, "merge_flow.py", MERGE_FLOW), tmp_path / "runstore.db"
    proc = run_flow(script, db, "--quiet", "run")
    assert proc.returncode == 0, proc.stderr
    join = Run("MergeFlow/1", store=Store(db), _namespace_check=False)["join"].task.data
    # both failures left self untouched, though aaa_same/mid_same (before the conflict) agree
    assert join.attempts == [("MergeArtifactsError", False, False, False)] * 2
    assert (join.aaa_same, join.mid_same, join.zzz_differs) == (1, "m", "decided")


# ---------------------------------------------------------------- @catch keeps what Metaflow keeps


def test_catch_var_holds_the_wrapper_and_task_exception_is_none(tmp_path: Path) -> None:
    script = write_flow(tmp_path, "catch_flow.py", """
        from runstore import FlowSpec, catch, retry, step

        class CatchFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.risky)

            @catch(var="problem")
            @retry(times=1)
            @step
            def risky(self):
                raise ValueError("bad input 42")
                self.next(self.end)

            @step
            def end(self):
                p = self.problem
                self.facts = (p.type, p.exception, str(p) == p.stacktrace, p.message, p.stacktrace == p.traceback)

        if __name__ == "__main__":
            CatchFlow()
    """)
    db = tmp_path / "runstore.db"
    proc = run_flow(script, db, "--quiet", "run")
    assert proc.returncode == 0, proc.stderr
    store = Store(db)
    run = Run("CatchFlow/1", store=store, _namespace_check=False)
    risky = run["risky"].task
    assert risky.status == "caught" and risky.exception is None  # as Metaflow
    problem = risky.data.problem
    assert problem.stacktrace.startswith("Traceback") and "ValueError: bad input 42" in problem.stacktrace
    assert run.data.facts == ("builtins.ValueError", "bad input 42", True, "bad input 42", True)
    from runstore import Task

    first = Task(risky.pathspec, attempt=0, store=store)
    assert first.exception.type == "builtins.ValueError"  # the failed (retried) attempt keeps its exception
    # the caught attempt's exception is in its attempt row
    assert store.sql("SELECT attempt, status, exception_message FROM attempts WHERE task_id = ? ORDER BY attempt",
                     [int(risky.id)]).rows == [(0, "failed", "bad input 42"), (1, "caught", "bad input 42")]


@pytest.mark.parametrize("decorator", ["@retry(times=-1)", "@timeout(seconds=-5)", "@catch(var='_x')"])
def test_a_bad_decorator_in_a_flow_file_is_one_line(tmp_path: Path, decorator: str) -> None:
    script = write_flow(tmp_path, "deco_flow.py", f"""
        from runstore import FlowSpec, catch, retry, step, timeout

        class DecoFlow(FlowSpec):
            {decorator}
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            DecoFlow()
    """)
    one_line_error(run_flow(script, tmp_path / "runstore.db", "run"), decorator.split("(")[0])


def test_show_and_help_say_when_a_callable_default_is_computed(tmp_path: Path) -> None:
    script = write_flow(tmp_path, "callable_flow.py", CALLABLE_FLOW)
    shown = run_flow(script, tmp_path / "runstore.db", "show")
    assert shown.returncode == 0, shown.stderr
    assert "--count (str, default computed when the run starts)" in shown.stdout
    helped = run_flow(script, tmp_path / "runstore.db", "run", "--help")
    assert "computed when the run starts" in helped.stdout and "<lambda>" not in helped.stdout


def test_graph_records_the_first_line_each_self_attribute_is_assigned() -> None:
    from runstore.graph import FlowGraph

    class Assigns(FlowSpec):
        @step
        def start(self):
            other = type("O", (), {})()
            other.x = 0
            self.a = 1
            self.b = 0
            self.b += 1
            self.c, self.d = 1, 2
            self.e: int = 5
            del self.e
            self.g = {}
            self.g["k"] = self.a
            self.a = 2
            del self.gone
            self.next(self.end)

        @step
        def end(self):
            pass

    node = FlowGraph(Assigns)["start"]
    first = node.line + 1  # the line of `other = ...`
    assert node.assigned == {"a": first + 2, "b": first + 3, "c": first + 5, "d": first + 5, "e": first + 6,
                             "g": first + 8, "gone": first + 11}
    assert FlowGraph(Assigns)["end"].assigned == {}
