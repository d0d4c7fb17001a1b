"""The flow graph: read from the step functions' source, checked before anything runs.

Each ``@step`` method must end with ``self.next(...)`` (except the end step). The
graph is built from the source text (``ast``), so a bad flow is rejected with a
message naming the step and its line before a run is created: missing start or
end, unknown targets, a join without ``inputs``, a split whose branches do not meet
in one join, a step that is both a join and a split, cycles, unreachable steps.

Example
-------
>>> from runstore import FlowSpec, step
>>> class Tiny(FlowSpec):
...     @step
...     def start(self):
...         self.next(self.end)
...     @step
...     def end(self):
...         pass
>>> graph = FlowGraph(Tiny)
>>> [node.name for node in graph], graph["start"].type
(['start', 'end'], 'start')
"""

from __future__ import annotations

import ast
import linecache
from typing import Any, Callable, Iterator

from .errors import FlowDefinitionError
from .util import cleandoc as _cleandoc

__all__ = ["FlowGraph", "StepNode", "STEP_MARK"]

#: Attribute set on a function by ``@step``.
STEP_MARK = "_runstore_step"


class StepNode:
    """One step of a flow: its transitions, its type and where it is defined."""

    def __init__(self, name: str, func: Callable[..., Any], line: int, file: str,
                 decorators: list[dict[str, Any]], doc: str) -> None:
        self.name = name
        self.func = func
        self.line = line
        self.file = file
        self.decorators = decorators
        self.doc = doc
        self.out_funcs: list[str] = []
        self.in_funcs: list[str] = []
        self.foreach_var: str | None = None
        self.has_next = False
        self.num_args = 1
        self.type = "linear"
        self.matching_join: str | None = None
        self.split_parents: tuple[str, ...] = ()
        #: A switch: ``{case: step}`` and the attribute whose value picks the case.
        self.switch_cases: dict[str, str] | None = None
        self.condition: str | None = None
        #: The line of the step's ``self.next(...)`` call (0 when it has none).
        self.next_line = 0
        #: On the join of a static split: which branch (index of the split's next) each input step is on.
        self.branch_of: dict[str, int] = {}
        #: ``{name: line}`` of the first ``self.<name> = ...`` (or ``+=``, ``del``) of each name in the step.
        self.assigned: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"StepNode({self.name!r}, type={self.type!r}, next={self.out_funcs})"

    @property
    def is_join(self) -> bool:
        return self.num_args >= 2

    def where(self) -> str:
        return f"step {self.name!r} (line {self.line})"

    def info(self) -> dict[str, Any]:
        """The JSON-able description stored in ``_graph_info`` (a switch adds ``condition``/``switch``)."""
        info = {
            "name": self.name,
            "type": self.type,
            "line": self.line,
            "doc": self.doc,
            "next": list(self.out_funcs),
            "foreach": self.foreach_var,
            "matching_join": self.matching_join,
            "decorators": self.decorators,
        }
        if self.switch_cases is not None:
            info["condition"] = self.condition
            info["switch"] = dict(self.switch_cases)
        return info


def _fail(node: StepNode | None, message: str) -> FlowDefinitionError:
    prefix = f"{node.file}, {node.where()}: " if node else ""
    return FlowDefinitionError(prefix + message)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _function_lines(func: Callable[..., Any]) -> list[str]:
    """The source lines of a method, decorators included, found by indentation.

    Much cheaper than ``inspect.getsourcelines`` (which tokenizes); on the start-up
    path of every run. Returns ``[]`` when the source is not available.
    """
    code = func.__code__
    lines = linecache.getlines(code.co_filename)
    start = code.co_firstlineno - 1
    if not lines or start >= len(lines):
        return []
    base = _indent(lines[start])
    out: list[str] = []
    in_body = False
    for line in lines[start:]:
        stripped = line.strip()
        if not in_body:
            out.append(line)
            if _indent(line) == base and (stripped.startswith("def ") or stripped.startswith("async def ")):
                in_body = True
            continue
        if stripped and not stripped.startswith("#") and _indent(line) <= base:
            break
        out.append(line)
    return out


def _parse_lines(lines: list[str]) -> ast.Module:
    """Parse a method's source lines, numbered from 1 as given.

    Indented source is parsed inside an ``if True:`` block rather than dedented: a dedent
    finds no common indent when a comment or a multi-line string sits at the left margin
    (test_flow_graph.py::test_margin_comments_and_strings_do_not_hide_self_next).
    """
    text = "".join(lines)
    if text[:1] not in (" ", "\t"):
        return ast.parse(text)
    wrapped = ast.parse("if True:\n" + text)
    ast.increment_lineno(wrapped, -1)
    block = wrapped.body[0]
    assert isinstance(block, ast.If)
    return ast.Module(body=block.body, type_ignores=[])


def _parse_next(node: StepNode) -> None:
    """Fill ``out_funcs``/``foreach_var`` from the last ``self.next(...)`` of the step."""
    tree = None
    lines = _function_lines(node.func)
    if lines:
        try:
            tree = _parse_lines(lines)
        except SyntaxError:
            tree = None
    if tree is None:  # unusual layout: let inspect find the block (slower, handles everything)
        try:
            import inspect  # the rare fallback only: importing inspect costs a run's start-up ~3 ms

            lines, _ = inspect.getsourcelines(node.func)
            tree = _parse_lines(lines)
        except (OSError, TypeError, SyntaxError) as exc:
            raise _fail(node, f"cannot read the source of the step ({exc}). runstore reads each step's "
                              "source to find self.next(): define the flow in a .py file, or in a notebook "
                              "cell of its own run as plain Python (not inside a cell magic such as %%time, "
                              "nor through exec() of a string); see docs/notebooks.md") from exc
    func = tree.body[0]
    assert isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
    node.num_args = len(func.args.args)
    first = node.line
    node.assigned = _self_assignments(func, first)
    node.line = first + func.lineno - 1  # the `def` line, not the decorator's
    body = [stmt for stmt in func.body if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))]
    tail = body[-1] if body else None
    call = tail.value if isinstance(tail, ast.Expr) else None
    is_next = (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "next"
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "self"
    )
    if not is_next:
        return
    assert isinstance(call, ast.Call)
    node.has_next = True
    line = node.next_line = first + call.lineno - 1
    keywords: dict[str, str] = {}
    for kw in call.keywords:
        if kw.arg not in ("foreach", "condition"):
            raise _fail(node, f"self.next() on line {line} got an unknown argument {kw.arg!r} "
                              "(only foreach='attr' or condition='attr' is supported)")
        if not (isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)):
            raise _fail(node, f"{kw.arg}= on line {line} must be an attribute name given as a string")
        keywords[kw.arg] = kw.value.value
    node.foreach_var = keywords.get("foreach")
    if any(isinstance(arg, ast.Dict) for arg in call.args) or "condition" in keywords:
        _parse_switch(node, call, line, keywords)
        return
    for arg in call.args:
        node.out_funcs.append(_step_name(node, arg, line))


def _self_assignments(func: ast.AST, first: int) -> dict[str, int]:
    """``{name: line}`` of the attributes of ``self`` the function assigns or deletes."""
    found: dict[str, int] = {}
    for sub in ast.walk(func):
        if (isinstance(sub, ast.Attribute) and isinstance(sub.ctx, (ast.Store, ast.Del))
                and isinstance(sub.value, ast.Name) and sub.value.id == "self"):
            line = first + sub.lineno - 1
            if sub.attr not in found or line < found[sub.attr]:
                found[sub.attr] = line
    return found


def _step_name(node: StepNode, arg: ast.expr, line: int) -> str:
    if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "self":
        return arg.attr
    raise _fail(node, f"self.next() on line {line} takes steps written as self.<step>, "
                      f"not {ast.unparse(arg)!r}")


def _parse_switch(node: StepNode, call: ast.Call, line: int, keywords: dict[str, str]) -> None:
    """``self.next({"case": self.step, ...}, condition="attr")``: one case runs, picked at run time."""
    usage = "self.next({'case': self.step, ...}, condition='attr')"
    if "condition" not in keywords:
        raise _fail(node, f"self.next() on line {line} got a dict of steps without condition='attr'; "
                          f"a switch is written {usage}")
    if "foreach" in keywords:
        raise _fail(node, f"self.next() on line {line} cannot take both foreach= and condition=")
    if len(call.args) != 1 or not isinstance(call.args[0], ast.Dict):
        raise _fail(node, f"condition= on line {line} needs exactly one dict of steps: {usage}")
    cases: dict[str, str] = {}
    table = call.args[0]
    for key, value in zip(table.keys, table.values):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            shown = "**" + ast.unparse(value) if key is None else ast.unparse(key)
            raise _fail(node, f"the switch on line {line} has a case {shown!r}: cases must be strings")
        if key.value in cases:
            raise _fail(node, f"the switch on line {line} names the case {key.value!r} twice")
        cases[key.value] = _step_name(node, value, line)
    if not cases:
        raise _fail(node, f"the switch on line {line} has no cases")
    node.switch_cases = cases
    node.condition = keywords["condition"]
    node.out_funcs = list(dict.fromkeys(cases.values()))


class FlowGraph:
    """The checked graph of a flow class: iterable over steps in definition order.

    Parameters
    ----------
    flow_class : type
        A ``FlowSpec`` subclass.

    Raises
    ------
    FlowDefinitionError
        With the file, step and line of the first problem found.
    """

    def __init__(self, flow_class: type) -> None:
        self.name = flow_class.__name__
        self.nodes: dict[str, StepNode] = {}
        self.file = "<unknown>"
        for attr in dir(flow_class):
            func = getattr(flow_class, attr, None)
            if callable(func) and getattr(func, STEP_MARK, False):
                code = func.__code__
                node = StepNode(
                    name=attr, func=func, line=code.co_firstlineno, file=_short(code.co_filename),
                    decorators=list(getattr(func, "_runstore_decorators", [])),
                    doc=_cleandoc(func.__doc__) if func.__doc__ else "",
                )
                if attr != func.__name__:
                    raise _fail(node, f"is bound to the name {attr!r} but defined as {func.__name__!r}")
                self.nodes[attr] = node
        self.nodes = dict(sorted(self.nodes.items(), key=lambda kv: kv[1].line))
        if self.nodes:
            self.file = next(iter(self.nodes.values())).func.__code__.co_filename
        for node in self.nodes.values():
            _parse_next(node)
        self._check()

    # ------------------------------------------------------------ access

    def __iter__(self) -> Iterator[StepNode]:
        return iter(self.nodes.values())

    def __getitem__(self, name: str) -> StepNode:
        return self.nodes[name]

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    @property
    def start(self) -> StepNode:
        return self.nodes["start"]

    @property
    def end(self) -> StepNode:
        return self.nodes["end"]

    def info(self, parameters: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """The ``_graph_info`` artifact (see CONTRACT.md)."""
        return {
            "file": _short(self.file),
            "start_step": "start",
            "end_step": "end",
            "parameters": parameters or [],
            "steps": {node.name: node.info() for node in self},
        }

    def topological(self) -> list[str]:
        """Step names in an order where every step comes after its parents."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for child in self.nodes[name].out_funcs:
                visit(child)
            order.append(name)

        visit("start")
        return order[::-1]

    def describe(self) -> str:
        """A human description of the graph (``python flow.py show``)."""
        lines = []
        for node in self:
            head = f"Step {node.name}"
            if node.doc:
                head += f"\n    {node.doc.splitlines()[0]}"
            lines.append(head)
            if node.switch_cases is not None:
                cases = ", ".join(f"{case!r}: {target}" for case, target in node.switch_cases.items())
                lines.append(f"    => switch on {node.condition!r}: {cases}")
            elif node.out_funcs:
                how = f" (foreach over {node.foreach_var!r})" if node.foreach_var else ""
                lines.append(f"    => {', '.join(node.out_funcs)}{how}")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    # ------------------------------------------------------------ checks

    def _check(self) -> None:
        where = f"{_short(self.file)}: flow {self.name}"
        if "start" not in self.nodes:
            raise FlowDefinitionError(f"{where} has no 'start' step; add a @step named start")
        if "end" not in self.nodes:
            raise FlowDefinitionError(f"{where} has no 'end' step; add a @step named end")
        for node in self:
            if node.name == "end":
                if node.has_next:
                    raise _fail(node, "the end step must not call self.next()")
                node.type = "end"
                continue
            if not node.has_next:
                raise _fail(node, "the last statement of a step must be self.next(...) "
                                  "naming the step(s) that follow")
            if not node.out_funcs:
                raise _fail(node, "self.next() needs at least one step")
            for target in node.out_funcs:
                if target not in self.nodes:
                    raise _fail(node, f"self.next() names an unknown step {target!r}; "
                                      f"steps are: {', '.join(self.nodes)}")
            if len(set(node.out_funcs)) != len(node.out_funcs):
                raise _fail(node, "self.next() names the same step twice")
            if node.foreach_var is not None and len(node.out_funcs) != 1:
                raise _fail(node, "a foreach split must name exactly one step")
            if "start" in node.out_funcs:
                raise _fail(node, "no step can go back to start")
        for node in self:
            for target in node.out_funcs:
                self.nodes[target].in_funcs.append(node.name)
        self._check_cycles()
        after_switch = self._after_switch()
        for node in self:
            if node.is_join and node.switch_cases is not None:
                raise _fail(node, "is both a join step (it takes an extra argument) and a switch; "
                                  "add a linear step between them")
            if node.is_join and (node.foreach_var or len(node.out_funcs) > 1):
                raise _fail(node, "is both a join step (it takes an extra argument) and a split step; "
                                  "add a linear step between them")
            if node.name == "start" and node.is_join:
                raise _fail(node, "the start step cannot be a join (it takes no inputs argument)")
            if len(node.in_funcs) > 1 and not node.is_join and node.name not in after_switch:
                raise _fail(node, f"is reached from {', '.join(node.in_funcs)}: a step where branches "
                                  "meet must be a join, def {0}(self, inputs)".format(node.name))
            if node.type == "end":
                continue
            if node.switch_cases is not None:
                node.type = "split-switch"
            elif node.foreach_var:
                node.type = "split-foreach"
            elif len(node.out_funcs) > 1:
                node.type = "split-static"
            elif node.is_join:
                node.type = "join"
            elif node.name == "start":
                node.type = "start"
        unreachable = [n for n in self if n.name not in set(self.topological())]
        if unreachable:
            raise _fail(unreachable[0], "is not reachable from start")
        self._match_joins()

    def _after_switch(self) -> set[str]:
        """Steps downstream of a switch: only one case runs, so several may lead into them."""
        seen: set[str] = set()
        todo = [c for node in self if node.switch_cases is not None for c in node.out_funcs]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.nodes[name].out_funcs)
        return seen

    def _check_cycles(self) -> None:
        """A cycle is an error unless it goes through a switch (a loop the switch can leave)."""
        state: dict[str, int] = {}

        def visit(name: str, trail: list[str]) -> None:
            state[name] = 1
            node = self.nodes[name]
            for child in ([] if node.switch_cases is not None else node.out_funcs):
                if state.get(child) == 1:
                    loop = " -> ".join(trail[trail.index(child):] + [child])
                    raise _fail(self.nodes[name], f"the graph has a cycle: {loop}")
                if child not in state:
                    visit(child, trail + [child])
            state[name] = 2

        visit("start", ["start"])
        after = self._after_switch()
        for name in self.nodes:  # switch edges are not followed: start again from the steps after a switch
            if name in after and name not in state:
                visit(name, [name])

    def _match_joins(self) -> None:
        """Walk from start with a stack of open splits; every join closes the innermost."""
        seen: dict[str, tuple[str, ...]] = {}

        def walk(name: str, parents: tuple[str, ...]) -> None:
            node = self.nodes[name]
            if node.is_join:
                if not parents:
                    raise _fail(node, "is a join (it takes inputs) but no split comes before it")
                split = self.nodes[parents[-1]]
                if split.matching_join not in (None, name):
                    raise _fail(node, f"joins branches of {split.where()} that already meet in "
                                      f"step {split.matching_join!r}")
                split.matching_join = name
                parents = parents[:-1]
            if name in seen:
                if seen[name] != parents:
                    raise _fail(node, "is reached from branches of different splits; every split "
                                      "must end in its own join")
                return
            seen[name] = parents
            node.split_parents = parents
            if node.type in ("split-static", "split-foreach"):
                parents = parents + (name,)
            for child in node.out_funcs:
                walk(child, parents)

        walk("start", ())
        if self.nodes["end"].split_parents:
            raise _fail(self.nodes["end"], f"is reached before the split in step "
                                           f"{self.nodes['end'].split_parents[-1]!r} is joined")
        for node in self:
            if node.type in ("split-static", "split-foreach") and node.matching_join is None:
                raise _fail(node, "is a split whose branches never meet in a join step")
            if node.type == "split-static":
                self._map_branches(node)
            if node.type == "split-foreach" and any(d["name"] == "catch" for d in node.decorators):
                raise _fail(node, "@catch cannot be used on a foreach split step")

    def _map_branches(self, split: StepNode) -> None:
        """Record on the split's join which branch each of its inputs is on.

        With a switch inside a branch, the join's inputs are more steps than the split
        has branches; whichever case ran stands for its branch.
        """
        assert split.matching_join is not None
        join = self.nodes[split.matching_join]
        owner: dict[str, int] = {}
        for index, first in enumerate(split.out_funcs):
            todo = [first]
            seen: set[str] = set()
            while todo:
                name = todo.pop()
                if name in seen or name == join.name:
                    continue
                seen.add(name)
                if owner.get(name, index) != index:
                    raise _fail(self.nodes[name], f"is reached from two branches of {split.where()} "
                                                  f"({split.out_funcs[owner[name]]} and {first}); the "
                                                  f"branches of a split meet only in its join {join.name!r}")
                owner[name] = index
                todo.extend(self.nodes[name].out_funcs)
        join.branch_of = {name: owner[name] for name in join.in_funcs if name in owner}
        if split.name in join.in_funcs:  # self.next(self.a, self.join): the split itself is a branch
            join.branch_of[split.name] = split.out_funcs.index(join.name)


def _short(path: str) -> str:
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path
