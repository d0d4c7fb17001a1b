"""The graph is checked before anything is stored; errors name the file, the step and the line.

Every message is asserted whole, with its line number: a check deleted, or hidden behind
another check, changes the message and fails the test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runstore import FlowSpec, Store, step
from runstore.errors import FlowDefinitionError
from runstore.graph import FlowGraph, StepNode

HEADER = "from runstore import FlowSpec, catch, retry, step\n\n"


def _flow_file(tmp_path: Path, body: str, name: str = "bad_flow.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body) + "\n\nif __name__ == '__main__':\n    F()\n")
    return path


def _line(path: Path, text: str, nth: int = 1) -> int:
    """The number of the ``nth`` line of ``path`` containing ``text``."""
    found = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return found[nth - 1]


def _graph(tmp_path: Path, body: str) -> tuple[FlowGraph, Path]:
    from runstore.runtime import load_flow

    path = _flow_file(tmp_path, body, f"flow_{abs(hash(body))}.py")
    return FlowGraph(load_flow(path)), path


def _graph_error(tmp_path: Path, body: str) -> tuple[str, Path]:
    """The error message and the flow file (outside the working directory: named in full)."""
    from runstore.runtime import load_flow

    path = _flow_file(tmp_path, body, f"flow_{abs(hash(body))}.py")
    with pytest.raises(FlowDefinitionError) as info:
        FlowGraph(load_flow(path))
    return str(info.value), path


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
    msg, path = _graph_error(tmp_path, "    class F(FlowSpec):\n" + LINEAR_END)
    assert msg == f"{path}: flow F has no 'start' step; add a @step named start"


def test_missing_end(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.start)
    """)
    assert msg == f"{path}: flow F has no 'end' step; add a @step named end"


def test_unknown_target_names_step_and_line(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.nowhere)
    """ + LINEAR_END)
    assert msg == (f"{path}, step 'start' (line 6): self.next() names an unknown step 'nowhere'; "
                   "steps are: start, end")


def test_join_without_inputs(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, SPLIT_AB + """
        @step
        def join(self):
            self.next(self.end)
    """ + LINEAR_END)
    assert msg == (f"{path}, step 'join' (line {_line(path, 'def join')}): is reached from a, b: a step where "
                   "branches meet must be a join, def join(self, inputs)")


def test_split_never_joined(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.end)
        @step
        def a(self):
            self.next(self.end)
    """ + LINEAR_END)
    assert msg == (f"{path}, step 'end' (line {_line(path, 'def end')}): is reached from start, a: a step where "
                   "branches meet must be a join, def end(self, inputs)")


def test_join_and_split_at_once(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, SPLIT_AB + """
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
    assert msg == (f"{path}, step 'join' (line {_line(path, 'def join')}): is both a join step (it takes an "
                   "extra argument) and a split step; add a linear step between them")


def test_join_that_is_a_foreach_split(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, SPLIT_AB + """
        @step
        def join(self, inputs):
            self.items = [1]
            self.next(self.c, foreach="items")
        @step
        def c(self):
            self.next(self.end)
    """ + LINEAR_END)
    assert msg.startswith(f"{path}, step 'join' (line {_line(path, 'def join')}): is both a join step")


def test_cycle(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
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
    assert msg == f"{path}, step 'b' (line {_line(path, 'def b')}): the graph has a cycle: a -> b -> a"


def test_cycle_back_to_a_step_with_two_parents_is_named_from_where_it_closes(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.a)
        @step
        def a(self):
            self.next(self.b)
        @step
        def b(self):
            self.next(self.c)
        @step
        def c(self):
            self.next(self.b)
    """ + LINEAR_END)
    assert msg == f"{path}, step 'c' (line {_line(path, 'def c')}): the graph has a cycle: b -> c -> b"


def test_missing_next(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            x = 1
    """ + LINEAR_END)
    assert msg == (f"{path}, step 'start' (line 6): the last statement of a step must be self.next(...) "
                   "naming the step(s) that follow")


@pytest.mark.parametrize("last", [
    "self.next",                    # not a call
    "x = self.next(self.end)",      # not an expression statement
    "print(self.end)",              # not an attribute call
    "self.nxt(self.end)",           # another method
    "other.next(self.end)",         # not on self
    "self.me.next(self.end)",       # on an attribute of self
    '"""only a docstring"""',       # nothing left once docstrings are dropped
])
def test_last_statement_that_is_not_self_next(tmp_path: Path, last: str) -> None:
    msg, path = _graph_error(tmp_path, f"""
    class F(FlowSpec):
        @step
        def start(self):
            other = self
            {last}
    """ + LINEAR_END)
    assert msg == (f"{path}, step 'start' (line 6): the last statement of a step must be self.next(...) "
                   "naming the step(s) that follow")


def test_margin_comments_and_strings_do_not_hide_self_next(tmp_path: Path) -> None:
    graph, _ = _graph(tmp_path, '''
    class F(FlowSpec):
        @step
        def start(self):
            """Start here.

            Second line of the docstring.
            """
            x = 1
    # a comment at the left margin, inside the step
            self.text = """
    a multi-line string at the left margin
    """
            self.next(self.end)

            "a trailing string is not a statement that counts"
        @step
        def end(self):
            """The end."""
    ''')
    assert graph["start"].out_funcs == ["end"] and graph["start"].doc == "Start here.\n\nSecond line of the docstring."
    assert graph["end"].doc == "The end." and graph["end"].type == "end"


def test_unknown_next_argument(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            x = 1
            self.next(
                self.end,
                num_parallel=3)
    """ + LINEAR_END)
    assert msg == (f"{path}, step 'start' (line 6): self.next() on line 8 got an unknown argument "
                   "'num_parallel' (only foreach='attr' or condition='attr' is supported)")


def test_next_target_must_be_self_attribute(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @retry(times=1)
        @step
        def start(self):
            x = 1
            self.next(end)
    """ + LINEAR_END)
    # the step's line is its `def`, not its first decorator's; the call's line is its own
    assert msg == (f"{path}, step 'start' (line 7): self.next() on line 9 takes steps written as "
                   "self.<step>, not 'end'")


@pytest.mark.parametrize("value", ["items", "1", "self.items"])
def test_foreach_must_be_a_string(tmp_path: Path, value: str) -> None:
    msg, path = _graph_error(tmp_path, f"""
    class F(FlowSpec):
        @step
        def start(self):
            self.items = [1]
            self.next(self.a, foreach={value})
        @step
        def a(self):
            self.next(self.join)
        @step
        def join(self, inputs):
            self.next(self.end)
    """ + LINEAR_END)
    assert msg == (f"{path}, step 'start' (line 6): foreach= on line 8 must be an attribute name given "
                   "as a string")


def test_next_without_steps(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next()
    """ + LINEAR_END)
    assert msg == f"{path}, step 'start' (line 6): self.next() needs at least one step"


def test_end_must_not_call_next(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.end)
        @step
        def end(self):
            self.next(self.start)
    """)
    assert msg == f"{path}, step 'end' (line 9): the end step must not call self.next()"


def test_same_step_twice(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.end, self.end)
    """ + LINEAR_END)
    assert msg == f"{path}, step 'start' (line 6): self.next() names the same step twice"


def test_foreach_with_two_targets(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.items = [1]
            self.next(self.a, self.end, foreach="items")
        @step
        def a(self):
            self.next(self.end)
    """ + LINEAR_END)
    assert msg == f"{path}, step 'start' (line 6): a foreach split must name exactly one step"


def test_no_step_goes_back_to_start(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.a)
        @step
        def a(self):
            self.next(self.start)
    """ + LINEAR_END)
    assert msg == f"{path}, step 'a' (line 9): no step can go back to start"


def test_start_cannot_be_a_join(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self, inputs):
            self.next(self.end)
    """ + LINEAR_END)
    assert msg == f"{path}, step 'start' (line 6): the start step cannot be a join (it takes no inputs argument)"


def test_unreachable_step(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.end)
        @step
        def orphan(self):
            self.next(self.orphan)
    """ + LINEAR_END)
    assert msg == f"{path}, step 'orphan' (line 9): is not reachable from start"


def test_step_bound_to_another_name(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.end)
        alias = start
    """ + LINEAR_END)
    assert msg == f"{path}, step 'alias' (line 5): is bound to the name 'alias' but defined as 'start'"


def test_join_without_a_split_before_it(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.j)
        @step
        def j(self, inputs):
            self.next(self.end)
    """ + LINEAR_END)
    assert msg == f"{path}, step 'j' (line 9): is a join (it takes inputs) but no split comes before it"


NESTED = """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.p, self.q)
        @step
        def p(self):
            self.next(self.a, self.b)
        @step
        def a(self):
            self.next(self.j1)
        @step
        def b(self):
            self.next(self.{b_to})
        @step
        def j1(self, inputs):
            self.next(self.k)
        @step
        def j2(self, inputs):
            self.next(self.k)
        @step
        def q(self):
            self.next(self.{q_to})
        @step
        def k(self, inputs):
            self.next(self.end)
"""


def test_nested_splits_each_close_in_their_own_join(tmp_path: Path) -> None:
    graph, path = _graph(tmp_path, NESTED.format(b_to="j1", q_to="k").replace(
        "def j2(self, inputs):\n            self.next(self.k)", "def j2(self):\n            self.next(self.start)"
    ).replace("""        @step
        def j2(self):
            self.next(self.start)
""", "") + LINEAR_END)
    types = {n.name: n.type for n in graph}
    assert types == {"start": "split-static", "p": "split-static", "a": "linear", "b": "linear",
                     "j1": "join", "q": "linear", "k": "join", "end": "end"}
    assert graph["start"].matching_join == "k" and graph["p"].matching_join == "j1"
    assert graph["a"].split_parents == ("start", "p") and graph["j1"].split_parents == ("start",)
    assert graph["k"].split_parents == () and graph["end"].split_parents == ()
    assert graph["k"].in_funcs == ["j1", "q"] and graph["j1"].in_funcs == ["a", "b"]
    assert [n.name for n in graph] == ["start", "p", "a", "b", "j1", "q", "k", "end"]  # as written
    assert graph.topological() == ["start", "q", "p", "b", "a", "j1", "k", "end"]


def test_two_joins_for_one_split(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, NESTED.format(b_to="j2", q_to="k") + LINEAR_END)
    assert msg == (f"{path}, step 'j2' (line {_line(path, 'def j2')}): joins branches of step 'p' "
                   f"(line {_line(path, 'def p')}) that already meet in step 'j1'")


def test_join_reached_from_different_splits(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.p, self.q)
        @step
        def p(self):
            self.next(self.a, self.b)
        @step
        def a(self):
            self.next(self.j1)
        @step
        def b(self):
            self.next(self.j1)
        @step
        def q(self):
            self.next(self.j1)
        @step
        def j1(self, inputs):
            self.next(self.end)
    """ + LINEAR_END)
    assert msg == (f"{path}, step 'j1' (line {_line(path, 'def j1')}): is reached from branches of different "
                   "splits; every split must end in its own join")


def test_end_inside_an_open_foreach(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.items = [1, 2]
            self.next(self.a, foreach="items")
        @step
        def a(self):
            self.next(self.end)
    """ + LINEAR_END)
    assert msg == (f"{path}, step 'end' (line {_line(path, 'def end')}): is reached before the split in step "
                   "'start' is joined")


def test_catch_on_a_foreach_split(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @catch(var="err")
        @step
        def start(self):
            self.items = [1, 2]
            self.next(self.a, foreach="items")
        @step
        def a(self):
            self.next(self.join)
        @step
        def join(self, inputs):
            self.next(self.end)
    """ + LINEAR_END)
    assert msg == f"{path}, step 'start' (line 7): @catch cannot be used on a foreach split step"


def test_catch_on_a_static_split_is_allowed(tmp_path: Path) -> None:
    graph, _ = _graph(tmp_path, SPLIT_AB.replace("        @step\n        def start", "        @catch\n        @step\n"
                                                 "        def start", 1) + """
        @step
        def join(self, inputs):
            self.next(self.end)
    """ + LINEAR_END)
    assert graph["start"].type == "split-static" and graph["start"].decorators[0]["name"] == "catch"


def test_source_not_available(tmp_path: Path) -> None:
    namespace: dict = {}
    exec(compile(textwrap.dedent("""
        from runstore import FlowSpec, step
        class F(FlowSpec):
            @step
            def start(self):
                self.next(self.end)
            @step
            def end(self):
                pass
    """), "<generated>", "exec"), namespace)
    with pytest.raises(FlowDefinitionError) as info:
        FlowGraph(namespace["F"])
    message = str(info.value)
    assert message.startswith("<generated>, step 'start' (line 4): cannot read the source of the step "
                              "(could not get source code). ")
    assert "define the flow in a .py file" in message and "docs/notebooks.md" in message  # #20: how to fix it


def test_step_source_after_the_last_line_of_its_file(tmp_path: Path) -> None:
    """A function whose recorded first line is beyond the file (file edited after import)."""
    import linecache

    path = _flow_file(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.end)
    """ + LINEAR_END)
    from runstore.runtime import load_flow

    flow = load_flow(path)
    path.write_text("x = 1\n")
    linecache.checkcache(str(path))
    with pytest.raises(FlowDefinitionError, match="cannot read the source of the step"):
        FlowGraph(flow)


def test_graph_types_and_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the flow file is under the working directory: named relative to it
    graph, path = _graph(tmp_path, '''
    class F(FlowSpec):
        @step
        def start(self):
            """Make items."""
            self.items = [1]
            self.next(self.each, foreach="items")

        @retry(times=2)
        @step
        def each(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
    ''')
    assert [n.type for n in graph] == ["split-foreach", "linear", "join", "end"]
    assert graph.start is graph["start"] and graph.end is graph["end"]
    assert "each" in graph and "nope" not in graph
    assert graph["join"].is_join and not graph["each"].is_join and graph["join"].num_args == 2
    assert repr(graph["start"]) == "StepNode('start', type='split-foreach', next=['each'])"
    assert graph["start"].where() == "step 'start' (line 6)"
    info = graph.info([{"name": "alpha", "type": "float"}])
    assert info == {
        "file": path.name,
        "start_step": "start",
        "end_step": "end",
        "parameters": [{"name": "alpha", "type": "float"}],
        "steps": {
            "start": {"name": "start", "type": "split-foreach", "line": 6, "doc": "Make items.", "next": ["each"],
                      "foreach": "items", "matching_join": "join", "decorators": []},
            "each": {"name": "each", "type": "linear", "line": 13, "doc": "", "next": ["join"], "foreach": None,
                     "matching_join": None,
                     "decorators": [{"name": "retry", "attributes": {"times": 2, "minutes_between_retries": 0},
                                     "statically_defined": True}]},
            "join": {"name": "join", "type": "join", "line": 17, "doc": "", "next": ["end"], "foreach": None,
                     "matching_join": None, "decorators": []},
            "end": {"name": "end", "type": "end", "line": 21, "doc": "", "next": [], "foreach": None,
                    "matching_join": None, "decorators": []},
        },
    }
    assert graph.info()["parameters"] == []
    assert graph["each"].in_funcs == ["start"] and graph["end"].in_funcs == ["join"]


def test_start_type_and_linear_steps() -> None:
    class G(FlowSpec):
        @step
        def start(self):
            self.next(self.middle)

        @step
        def middle(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    graph = G._graph()
    assert [(n.name, n.type, n.matching_join, n.foreach_var) for n in graph] == [
        ("start", "start", None, None), ("middle", "linear", None, None), ("end", "end", None, None)]
    assert graph.file == __file__ and graph.name == "G"
    assert graph.topological() == ["start", "middle", "end"]
    assert graph["middle"].line == _line(Path(__file__), "def middle(self):")


def test_describe_shows_every_step_with_doc_and_targets() -> None:
    class Shown(FlowSpec):
        @step
        def start(self):
            """Load the data.

            More detail that show leaves out.
            """
            self.items = [1, 2]
            self.next(self.each, foreach="items")

        @step
        def each(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            """Gather."""
            self.next(self.end)

        @step
        def end(self):
            pass

    assert Shown._graph().describe() == (
        "Step start\n"
        "    Load the data.\n"
        "    => each (foreach over 'items')\n"
        "\n"
        "Step each\n"
        "    => join\n"
        "\n"
        "Step join\n"
        "    Gather.\n"
        "    => end\n"
        "\n"
        "Step end\n"
    )


def test_static_split_describe_and_order() -> None:
    class Split(FlowSpec):
        @step
        def start(self):
            self.next(self.b, self.a)

        @step
        def a(self):
            self.next(self.join)

        @step
        def b(self):
            self.next(self.join)

        @step
        def join(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass

    graph = Split._graph()
    assert "    => b, a\n" in graph.describe()
    assert [n.name for n in graph] == ["start", "a", "b", "join", "end"]
    assert graph.topological() == ["start", "a", "b", "join", "end"]
    assert graph["start"].type == "split-static" and graph["start"].matching_join == "join"
    assert graph["join"].in_funcs == ["a", "b"]


def test_cli_graph_error_exits_nonzero_and_stores_nothing(tmp_path: Path) -> None:
    path = _flow_file(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.missing)
    """ + LINEAR_END)
    db = tmp_path / "runs.db"
    proc = subprocess.run([sys.executable, str(path), "--db", str(db), "run"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == (f"Error: {path}, step 'start' (line 6): self.next() names an unknown step 'missing'; "
                           "steps are: start, end\n")  # one line, the CLIs' one wording, no traceback
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

    with pytest.raises(FlowDefinitionError, match="names the same step twice"):
        Runner(H, store=memory_store).run()
    with memory_store.read() as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_step_node_defaults() -> None:
    node = StepNode("s", len, 3, "f.py", [], "")
    assert (node.out_funcs, node.in_funcs, node.foreach_var, node.has_next, node.num_args, node.type,
            node.matching_join, node.split_parents) == ([], [], None, False, 1, "linear", None, ())
    assert not node.is_join
    node.num_args = 2
    assert node.is_join


def test_function_lines_cut_out_exactly_one_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast source reader (no tokenizer): decorators, the def, the body with its blank and
    margin-comment lines, and nothing of the next method. Wrong cuts would be hidden by the
    slow fallback, so the reader is checked directly."""
    import importlib.util

    from runstore.graph import _function_lines

    source = textwrap.dedent('''
        def other(f):
            return f


        class K:
            @other
            @other
            def first(self):
                x = 1

        # a comment at the margin
                return x

            @other
            async def second(self):
                await self.first()
            def third(self):
                pass
    ''')
    path = tmp_path / "cut_module.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("cut_module", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "".join(_function_lines(module.K.first)) == (
        "    @other\n"
        "    @other\n"
        "    def first(self):\n"
        "        x = 1\n"
        "\n"
        "# a comment at the margin\n"
        "        return x\n"
        "\n"
    )
    assert "".join(_function_lines(module.K.second)) == (
        "    @other\n"
        "    async def second(self):\n"
        "        await self.first()\n"
    )
    assert "".join(_function_lines(module.K.third)) == "    def third(self):\n        pass\n"


def test_no_steps_at_all() -> None:
    class Empty(FlowSpec):
        pass

    with pytest.raises(FlowDefinitionError) as info:
        FlowGraph(Empty)
    assert str(info.value) == "<unknown>: flow Empty has no 'start' step; add a @step named start"


def test_end_defined_first_is_checked_like_any_other_order(tmp_path: Path) -> None:
    body = """
    class F(FlowSpec):
        @step
        def end(self):
            pass
        @step
        def start(self):
            self.items = [1]
            self.next(self.each, foreach="items")
        @step
        def each(self):
            self.next(self.join)
        @step
        def join(self, inputs):
            self.next(self.{target})
    """
    graph, _ = _graph(tmp_path, body.format(target="end"))
    assert [(n.name, n.type) for n in graph] == [
        ("end", "end"), ("start", "split-foreach"), ("each", "linear"), ("join", "join")]
    assert graph["start"].matching_join == "join"
    msg, path = _graph_error(tmp_path, body.format(target="nowhere"))
    assert msg == (f"{path}, step 'join' (line {_line(path, 'def join')}): self.next() names an unknown step "
                   "'nowhere'; steps are: end, start, each, join")


def test_the_graph_is_read_without_the_tokenizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start-up cost: ordinary steps, including one defined at the module's left margin, are
    read by the fast line reader; inspect (which tokenizes the file) is only the fallback."""
    import runstore.graph

    def slow(func: object) -> None:
        raise AssertionError("the slow inspect path was taken")

    graph, path = _graph(tmp_path, '''
    @step
    def start(self):
        """Defined at the margin, attached below."""
        self.next(self.end)


    class F(FlowSpec):
        start = start

        @retry(times=1)
        @step
        def end(self):
            pass
    ''')
    import inspect

    monkeypatch.setattr(inspect, "getsourcelines", slow)  # graph imports inspect only for this fallback
    from runstore.runtime import load_flow

    graph = FlowGraph(load_flow(path))
    assert [(n.name, n.type, n.line) for n in graph] == [
        ("start", "start", _line(path, "def start")), ("end", "end", _line(path, "def end"))]
    assert graph["start"].out_funcs == ["end"] and graph["start"].doc == "Defined at the margin, attached below."


def test_a_flow_indented_with_tabs(tmp_path: Path) -> None:
    from runstore.runtime import load_flow

    path = tmp_path / "tabbed_flow.py"
    path.write_text("from runstore import FlowSpec, step\n\n\nclass F(FlowSpec):\n"
                    "\t@step\n\tdef start(self):\n\t\tself.next(self.end)\n\n"
                    "\t@step\n\tdef end(self):\n\t\tpass\n")
    graph = FlowGraph(load_flow(path))
    assert [(n.name, n.line, n.out_funcs) for n in graph] == [("start", 6, ["end"]), ("end", 10, [])]


def test_an_end_step_that_joins_is_still_the_end(tmp_path: Path) -> None:
    graph, _ = _graph(tmp_path, SPLIT_AB.replace("self.join", "self.end") + """
        @step
        def end(self, inputs):
            pass
    """)
    assert [(n.name, n.type) for n in graph] == [("start", "split-static"), ("a", "linear"), ("b", "linear"),
                                                 ("end", "end")]
    assert graph["start"].matching_join == "end" and graph["end"].is_join


# ------------------------------------------------------------ switch (#12)

SWITCH_TAIL = """
        @step
        def a(self):
            self.next(self.end)
        @step
        def b(self):
            self.next(self.end)
        @step
        def end(self):
            pass
"""

USAGE = "self.next({'case': self.step, ...}, condition='attr')"


@pytest.mark.parametrize("call, message", [
    ('{"x": self.a}',
     "self.next() on line {n} got a dict of steps without condition='attr'; a switch is written " + USAGE),
    ('self.a, condition="c"', "condition= on line {n} needs exactly one dict of steps: " + USAGE),
    ('["a"], condition="c"', "condition= on line {n} needs exactly one dict of steps: " + USAGE),
    ('{"x": self.a}, self.b, condition="c"', "condition= on line {n} needs exactly one dict of steps: " + USAGE),
    ('{"x": self.a}, condition=c', "condition= on line {n} must be an attribute name given as a string"),
    ('{"x": self.a}, foreach="c", condition="c"', "self.next() on line {n} cannot take both foreach= and condition="),
    ('{"x": "a"}, condition="c"', "self.next() on line {n} takes steps written as self.<step>, not \"'a'\""),
    ('{"x": self.a, "y": a}, condition="c"', "self.next() on line {n} takes steps written as self.<step>, not 'a'"),
    ('{1: self.a}, condition="c"', "the switch on line {n} has a case '1': cases must be strings"),
    ('{"x": self.a, **more}, condition="c"', "the switch on line {n} has a case '**more': cases must be strings"),
    ('{"x": self.a, "x": self.b}, condition="c"', "the switch on line {n} names the case 'x' twice"),
    ('{}, condition="c"', "the switch on line {n} has no cases"),
    ('{"x": self.nope}, condition="c"', "self.next() names an unknown step 'nope'; steps are: start, a, b, end"),
])
def test_bad_switches_name_file_step_and_line(tmp_path: Path, call: str, message: str) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.c = "x"
            self.next(
                """ + call + """)
    """ + SWITCH_TAIL)
    start, n = _line(path, "def start"), _line(path, "self.next(")
    assert n == start + 2
    assert msg == f"{path}, step 'start' (line {start}): " + message.replace("{n}", str(n))


def test_switch_graph_types_info_and_show(tmp_path: Path) -> None:
    graph, path = _graph(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            '''Pick a side.'''
            self.c = "x"
            self.next({"x": self.a, "y": self.b, "z": self.a}, condition="c")
    """ + SWITCH_TAIL)
    start = graph["start"]
    assert (start.type, start.out_funcs, start.condition, start.switch_cases) == (
        "split-switch", ["a", "b"], "c", {"x": "a", "y": "b", "z": "a"})
    assert graph["end"].in_funcs == ["a", "b"] and graph["end"].type == "end" and start.matching_join is None
    assert graph.info()["steps"]["start"] == {
        "name": "start", "type": "split-switch", "line": _line(path, "def start"), "doc": "Pick a side.",
        "next": ["a", "b"], "foreach": None, "matching_join": None, "decorators": [],
        "condition": "c", "switch": {"x": "a", "y": "b", "z": "a"}}
    assert "condition" not in graph.info()["steps"]["a"]
    assert graph.describe().startswith(
        "Step start\n    Pick a side.\n    => switch on 'c': 'x': a, 'y': b, 'z': a\n\nStep a\n    => end\n")


def test_recursive_switch_is_a_loop_not_a_cycle(tmp_path: Path) -> None:
    graph, _ = _graph(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.work)
        @step
        def work(self):
            self.next(self.check)
        @step
        def check(self):
            self.next({"again": self.work, "done": self.end}, condition="state")
        @step
        def end(self):
            pass
    """)
    assert graph["work"].in_funcs == ["start", "check"] and graph["work"].type == "linear"
    assert graph["check"].type == "split-switch"


def test_a_cycle_without_switch_is_still_an_error_when_a_switch_is_elsewhere(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next({"x": self.a, "y": self.end}, condition="c")
        @step
        def a(self):
            self.next(self.b)
        @step
        def b(self):
            self.next(self.a)
        @step
        def end(self):
            pass
    """)
    assert msg == f"{path}, step 'b' (line {_line(path, 'def b')}): the graph has a cycle: a -> b -> a"


def test_join_that_switches_is_refused(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.b)
        @step
        def a(self):
            self.next(self.j)
        @step
        def b(self):
            self.next(self.j)
        @step
        def j(self, inputs):
            self.next({"x": self.end}, condition="c")
        @step
        def end(self):
            pass
    """)
    assert msg == (f"{path}, step 'j' (line {_line(path, 'def j')}): is both a join step (it takes an extra "
                   "argument) and a switch; add a linear step between them")


def test_switch_cannot_merge_two_branches_of_a_split(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.b)
        @step
        def a(self):
            self.next({"x": self.c, "y": self.j}, condition="k")
        @step
        def b(self):
            self.next(self.c)
        @step
        def c(self):
            self.next(self.j)
        @step
        def j(self, inputs):
            self.next(self.end)
        @step
        def end(self):
            pass
    """)
    assert msg == (f"{path}, step 'c' (line {_line(path, 'def c')}): is reached from two branches of step "
                   f"'start' (line {_line(path, 'def start')}) (a and b); the branches of a split meet only "
                   "in its join 'j'")


def test_switch_back_into_a_split_from_after_its_join_is_refused(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.b)
        @step
        def a(self):
            self.next(self.j)
        @step
        def b(self):
            self.next(self.j)
        @step
        def j(self, inputs):
            self.next(self.s)
        @step
        def s(self):
            self.next({"again": self.a, "done": self.end}, condition="k")
        @step
        def end(self):
            pass
    """)
    assert msg == (f"{path}, step 'a' (line {_line(path, 'def a')}): is reached from branches of different "
                   "splits; every split must end in its own join")


def test_branches_of_a_split_after_a_switch_still_need_a_join(tmp_path: Path) -> None:
    msg, path = _graph_error(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next({"x": self.a, "y": self.end}, condition="k")
        @step
        def a(self):
            self.next(self.b, self.c)
        @step
        def b(self):
            self.next(self.end)
        @step
        def c(self):
            self.next(self.end)
        @step
        def end(self):
            pass
    """)
    assert msg == (f"{path}, step 'end' (line {_line(path, 'def end')}): is reached from branches of "
                   "different splits; every split must end in its own join")


def test_switch_inside_a_branch_maps_each_join_input_to_its_branch(tmp_path: Path) -> None:
    graph, path = _graph(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.b, self.j)
        @step
        def a(self):
            self.next({"x": self.ax, "y": self.j}, condition="k")
        @step
        def ax(self):
            self.next(self.j)
        @step
        def b(self):
            self.next(self.b2)
        @step
        def b2(self):
            self.next(self.j)
        @step
        def j(self, inputs):
            self.next(
                self.end)
        @step
        def end(self):
            pass
    """)
    assert graph["j"].in_funcs == ["start", "a", "ax", "b2"]
    assert graph["j"].branch_of == {"a": 0, "ax": 0, "b2": 1, "start": 2}
    assert graph["start"].branch_of == {} and graph["start"].matching_join == "j"
    assert (graph["a"].next_line, graph["j"].next_line, graph["end"].next_line) == (
        _line(path, 'condition="k"'), _line(path, "self.next(", 6), 0)


def test_loop_inside_a_branch_of_a_split(tmp_path: Path) -> None:
    graph, _ = _graph(tmp_path, """
    class F(FlowSpec):
        @step
        def start(self):
            self.next(self.a, self.b)
        @step
        def a(self):
            self.next(self.a2)
        @step
        def a2(self):
            self.next({"again": self.a, "done": self.j}, condition="k")
        @step
        def b(self):
            self.next(self.j)
        @step
        def j(self, inputs):
            self.next(self.end)
        @step
        def end(self):
            pass
    """)
    assert graph["j"].branch_of == {"a2": 0, "b": 1} and graph["a"].in_funcs == ["start", "a2"]
