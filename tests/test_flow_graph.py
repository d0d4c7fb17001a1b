"""The graph is checked before anything is stored; errors name the step and the line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runstore import FlowSpec, Store, step
from runstore.errors import FlowDefinitionError
from runstore.graph import FlowGraph

HEADER = "from runstore import FlowSpec, step\n\n"


def _flow_file(tmp_path: Path, body: str, name: str = "bad_flow.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body) + "\n\nif __name__ == '__main__':\n    F()\n")
    return path


def _graph_error(tmp_path: Path, body: str) -> str:
    from runstore.runtime import load_flow

    path = _flow_file(tmp_path, body, f"flow_{abs(hash(body))}.py")
    with pytest.raises(FlowDefinitionError) as info:
        FlowGraph(load_flow(path))
    return str(info.value)


SPLIT_AB = """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.b)
        @step
        def a(self):
            self.next(self.join)
        @step
        def b(self):
            self.next(self.join)"""

LINEAR_END = """
        @step
        def end(self):
            pass
"""


def test_missing_start(tmp_path: Path) -> None:
    msg = _graph_error(tmp_path, "    class F(FlowSpec):\n" + LINEAR_END)
    assert "no 'start' step" in msg


def test_missing_end(tmp_path: Path) -> None:
    msg = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.start)
    """)
    assert "no 'end' step" in msg


def test_unknown_target_names_step_and_line(tmp_path: Path) -> None:
    msg = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.nowhere)
    """ + LINEAR_END)
    assert "step 'start' (line 6)" in msg and "unknown step 'nowhere'" in msg


def test_join_without_inputs(tmp_path: Path) -> None:
    msg = _graph_error(tmp_path, SPLIT_AB + """
        @step
        def join(self):
            self.next(self.end)
    """ + LINEAR_END)
    assert "step 'join'" in msg and "must be a join" in msg


def test_split_never_joined(tmp_path: Path) -> None:
    msg = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.end)
        @step
        def a(self):
            self.next(self.end)
    """ + LINEAR_END)
    assert "step 'end'" in msg


def test_join_and_split_at_once(tmp_path: Path) -> None:
    msg = _graph_error(tmp_path, SPLIT_AB + """
        @step
        def join(self, inputs):
            self.next(self.c, self.d)
        @step
        def c(self):
            self.next(self.end)
        @step
        def d(self):
            self.next(self.end)
    """ + LINEAR_END)
    assert "both a join step" in msg and "'join'" in msg


def test_cycle(tmp_path: Path) -> None:
    msg = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.a)
        @step
        def a(self):
            self.next(self.b)
        @step
        def b(self):
            self.next(self.a)
    """ + LINEAR_END)
    assert "cycle" in msg and "a -> b -> a" in msg


def test_missing_next(tmp_path: Path) -> None:
    msg = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            x = 1
    """ + LINEAR_END)
    assert "step 'start' (line 6)" in msg and "self.next" in msg


def test_unknown_next_argument(tmp_path: Path) -> None:
    msg = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.end, num_parallel=3)
    """ + LINEAR_END)
    assert "num_parallel" in msg


def test_graph_types_and_info() -> None:
    class G(FlowSpec):
        @step
        def start(self):
            self.items = [1]
            self.next(self.each, foreach="items")

        @step
        def each(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass

    graph = G._graph()
    assert [n.type for n in graph] == ["split-foreach", "linear", "join", "end"]
    info = graph.info()
    assert info["steps"]["start"]["foreach"] == "items"
    assert info["steps"]["start"]["matching_join"] == "join"
    assert info["start_step"] == "start" and info["end_step"] == "end"


def test_cli_graph_error_exits_nonzero_and_stores_nothing(tmp_path: Path) -> None:
    path = _flow_file(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.missing)
    """ + LINEAR_END)
    db = tmp_path / "runs.db"
    proc = subprocess.run([sys.executable, str(path), "--db", str(db), "run"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "step 'start' (line 6)" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: ") and proc.stderr.count("\n") == 1  # the CLIs' one wording
    assert not db.exists()


def test_store_untouched_by_graph_errors(memory_store: Store) -> None:
    from runstore import Runner

    class H(FlowSpec):
        @step
        def start(self):
            self.next(self.end, self.end)

        @step
        def end(self):
            pass

    with pytest.raises(FlowDefinitionError):
        Runner(H, store=memory_store).run()
    with memory_store.read() as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
