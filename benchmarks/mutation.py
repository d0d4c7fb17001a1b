"""Mutation testing for one runstore module: how many small code changes does a test subset catch?

Each mutant is one small edit of the module's syntax tree (a comparison or operator flipped, a
boolean operator swapped, a ``not`` dropped, a constant changed, a string altered, an assigned value
replaced by ``None``, a call statement or ``raise`` deleted, ``break``/``continue`` swapped). The
mutated package is written to a scratch copy put first on ``PYTHONPATH`` (so subprocess tests see
it too); the chosen tests run against it with a timeout. A mutant is *killed* when the tests fail or
time out, *survived* when they pass. Docstrings and type annotations are never mutated.

Run (from the repository root, in the project's venv; two workers, 60 s per mutant)::

    python benchmarks/mutation.py runstore/graph.py tests/test_flow_graph.py -j 2 --timeout 60

Several test files may be given; pytest options after ``--``. Equivalent mutants (changes no test
can observe because behaviour is identical) are listed in ``EQUIVALENT`` below with the reason and
left out of the score. The score is killed / (killed + survived). The latest figures are in
``benchmarks/results/mutation.txt``.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (module path, line, mutation description prefix or "#<index>") -> why it cannot be observed.
EQUIVALENT: dict[tuple[str, int, str], str] = {
    ("runstore/namespace.py", 46, "'runstore_namespace'"): "a ContextVar's name is only shown in its repr",
    ("runstore/namespace.py", 47, "'runstore_store'"): "a ContextVar's name is only shown in its repr",
    ("runstore/codecs.py", 309, "10000 -> 10001"): "the header bound is estimated with 64 bytes of slack; "
                                                "one byte more is inside the slack",
    ("runstore/codecs.py", 436, "raise deleted"): "unreachable: pickle, the last codec, accepts every value",
    ("runstore/codecs.py", 110, "call deleted"): "io.RawIOBase.__init__ sets no state ChunkSink relies on",
    ("runstore/codecs.py", 146, "Lt -> LtE"): "at pos == n the slice appended is empty",
    ("runstore/codecs.py", 234, "return value -> None"): "returns False -> None: only its truth is used",
    ("runstore/codecs.py", 337, "return value -> None"): "returns False -> None: only its truth is used",
    ("runstore/codecs.py", 159, "value -> None"): "the buffer is never used again after close",
    ("runstore/codecs.py", 340, "64 -> 65"): "a larger slack only sends a few more arrays to pickle, never a wrong one",
    ("runstore/codecs.py", 353, "1 -> 2"): "reshape(-2) is reshape(-1) for numpy",
    ("runstore/codecs.py", 355, "1 -> 2"): "reshape(-2) is reshape(-1) for numpy",
    ("runstore/codecs.py", 385, "1 -> 2"): "reshape(-2) is reshape(-1) for numpy",
    ("runstore/codecs.py", 357, "FloorDiv -> Mult"): "the nditer buffer size only changes how many bytes are copied at a time",
    ("runstore/codecs.py", 357, "1 -> 2"): "the nditer buffer size only changes how many bytes are copied at a time",
    ("runstore/codecs.py", 536, "'compress'"): "the cache key's spelling: any name other than sample/decompress is level 3",
    ("runstore/codecs.py", 533, "'sample'"): "the sample's level only changes an estimate whose answer is the same here",
    ("runstore/graph.py", 36, "'_runstore_step'"): "the mark's attribute name: @step sets it through the same constant",
    # graph.py: line numbers of the file as of issue #18 (full run after #12's switch)
    ("runstore/graph.py", 95, "''"): "unreachable: every _fail call names a step",
    ("runstore/graph.py", 113, "return value -> None"): "None and [] are both falsy: the caller tests `if lines`",
    ("runstore/graph.py", 112, "GtE -> Gt"): "at start == len(lines) the loop has nothing to read: [] either way",
    ("runstore/graph.py", 116, "value -> None"): "None and False are both falsy",
    ("runstore/graph.py", 463, "raise deleted"): "unreachable: a split never joined stays on end's stack, "
                                                  "refused just before",
    ("runstore/graph.py", 463, "'is a split whose"): "unreachable: a split never joined stays on end's stack, "
                                                     "refused just before",
    ("runstore/graph.py", 462, "'split-static'"): "the unreachable never-joined check (line 463)",
    ("runstore/graph.py", 462, "'split-foreach'"): "the unreachable never-joined check (line 463)",
    ("runstore/graph.py", 424, "#353"): "the trail's first name is never printed: no cycle runs through start "
                                        "(`no step can go back to start` is checked first)",
    ("runstore/graph.py", 422, "value -> None"): "a finished step's mark only has to differ from 1 (visiting)",
    ("runstore/graph.py", 422, "2 -> 3"): "a finished step's mark only has to differ from 1 (visiting)",
    ("runstore/graph.py", 503, "return value -> None"): "unreachable on POSIX: relpath raises ValueError only "
                                                         "across Windows drives",
    ("runstore/codecs.py", 216, "return value -> None"): "returns False -> None: only its truth is used",
    ("runstore/codecs.py", 220, "return value -> None"): "returns False -> None: only its truth is used",
    ("runstore/codecs.py", 224, "return value -> None"): "returns False -> None: only its truth is used",
    ("runstore/codecs.py", 228, "return value -> None"): "returns False -> None: only its truth is used",
    ("runstore/codecs.py", 341, "return value -> None"): "returns False -> None: only its truth is used",
    ("runstore/codecs.py", 340, "Gt -> GtE"): "the header bound is estimated with 64 bytes of slack",
    ("runstore/codecs.py", 534, "Gt -> GtE"): "differs only when the sample packs to exactly 90 %: either answer is right",
    ("runstore/codecs.py", 156, "value -> None"): "the buffer is never used again after close",
    ("runstore/codecs.py", 436, "'no codec for "): "unreachable: pickle, the last codec, accepts every value",
    ("runstore/codecs.py", 201, "return value -> None"): "None and False are both falsy where _utf8_ok is used",
    ("runstore/codecs.py", 537, "GtE -> Gt"): "differs only when zstd output is exactly 95 % of the input: "
                                             "either answer is right",
    ("runstore/codecs.py", 177, "''"): "the base class's empty name is never read (every codec sets its own)",
    ("runstore/store/_reads.py", 309, "#204"): "row[0] -> row[1] in `row[0] and row[0] == row[1]`: equal "
                                             "whenever the other half holds",
}

_CMP_SWAP = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
    ast.GtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_BIN_SWAP = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
    ast.Mod: ast.Mult, ast.Pow: ast.Mult, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
    ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr, ast.BitXor: ast.BitAnd,
}


@dataclass
class Mutant:
    index: int
    line: int
    what: str


def _skip_ids(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, ``__all__`` and ``from __future__``."""
    skip: set[int] = set()

    def drop(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                drop(first)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            drop(node.returns)
            for arg in [*node.args.args, *node.args.posonlyargs, *node.args.kwonlyargs,
                        node.args.vararg, node.args.kwarg]:
                if arg is not None:
                    drop(arg.annotation)
        if isinstance(node, ast.AnnAssign):
            drop(node.annotation)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            drop(node)
        if isinstance(node, (ast.ImportFrom, ast.Import)):
            drop(node)
    return skip


def _edits(node: ast.AST) -> list[tuple[str, object]]:
    """The possible one-step edits of ``node``: (description, payload) pairs."""
    out: list[tuple[str, object]] = []
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _CMP_SWAP:
                out.append((f"{type(op).__name__} -> {_CMP_SWAP[type(op)].__name__}", ("cmp", i)))
    elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BIN_SWAP:
        out.append((f"{type(node.op).__name__} -> {_BIN_SWAP[type(node.op)].__name__}", ("bin",)))
    elif isinstance(node, ast.BoolOp):
        out.append(("and <-> or", ("bool",)))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        out.append(("drop not", ("not",)))
    elif isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            out.append((f"{value} -> {not value}", ("const", not value)))
        elif isinstance(value, int):
            out.append((f"{value} -> {value + 1}", ("const", value + 1)))
        elif isinstance(value, float):
            out.append((f"{value} -> {value + 1}", ("const", value + 1.0)))
        elif isinstance(value, str):
            out.append((f"{value[:30]!r} -> 'XX..XX'", ("const", f"XX{value}XX")))
        elif value is None:
            pass
    elif isinstance(node, ast.Assign) and not (isinstance(node.value, ast.Constant) and node.value.value is None):
        out.append(("value -> None", ("assign_none",)))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        out.append(("call deleted", ("stmt_pass",)))
    elif isinstance(node, ast.Raise):
        out.append(("raise deleted", ("stmt_pass",)))
    elif isinstance(node, ast.Break):
        out.append(("break -> continue", ("swap_loop",)))
    elif isinstance(node, ast.Continue):
        out.append(("continue -> break", ("swap_loop",)))
    elif isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        out.append(("return value -> None", ("return_none",)))
    return out


def enumerate_mutants(source: str) -> list[Mutant]:
    tree = ast.parse(source)
    skip = _skip_ids(tree)
    mutants: list[Mutant] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        for what, _ in _edits(node):
            mutants.append(Mutant(len(mutants), getattr(node, "lineno", 0), what))
    return mutants


class _Apply(ast.NodeTransformer):
    def __init__(self, target: int, skip: set[int]) -> None:
        self.target, self.seen, self.skip = target, 0, skip


def mutate(source: str, index: int) -> str:
    """The module source with mutant ``index`` applied (walk order as in enumerate_mutants)."""
    tree = ast.parse(source)
    skip = _skip_ids(tree)
    count = 0
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        for _, payload in _edits(node):
            if count == index:
                _apply(tree, node, payload)
                ast.fix_missing_locations(tree)
                return ast.unparse(tree)
            count += 1
    raise IndexError(index)


def _apply(tree: ast.AST, node: ast.AST, payload: object) -> None:
    kind = payload[0]  # type: ignore[index]
    if kind == "cmp":
        i = payload[1]  # type: ignore[index]
        node.ops[i] = _CMP_SWAP[type(node.ops[i])]()  # type: ignore[attr-defined]
    elif kind == "bin":
        node.op = _BIN_SWAP[type(node.op)]()  # type: ignore[attr-defined]
    elif kind == "bool":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()  # type: ignore[attr-defined]
    elif kind == "const":
        node.value = payload[1]  # type: ignore[attr-defined,index]
    elif kind == "assign_none":
        node.value = ast.Constant(None)  # type: ignore[attr-defined]
    elif kind == "return_none":
        node.value = ast.Constant(None)  # type: ignore[attr-defined]
    else:  # statement-level replacements and `not x` -> `x`: swap the node in its parent
        for parent in ast.walk(tree):
            for field, value in ast.iter_fields(parent):
                if isinstance(value, list) and node in value:
                    new = (node.operand if kind == "not" else ast.Pass() if kind == "stmt_pass" else  # type: ignore[attr-defined]
                           ast.Continue() if isinstance(node, ast.Break) else ast.Break())
                    value[value.index(node)] = new
                    return
                if value is node and kind == "not":
                    setattr(parent, field, node.operand)  # type: ignore[attr-defined]
                    return


def run_mutant(module: Path, source: str, mutant: Mutant | None, tests: list[str], timeout: float,
               pytest_args: list[str]) -> tuple[str, float]:
    """Run the tests against a scratch copy of the package with ``mutant`` applied (None: unmutated)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutant-") as scratch:
        package = Path(scratch) / "runstore"
        shutil.copytree(ROOT / "runstore", package, ignore=shutil.ignore_patterns("__pycache__"))
        text = source if mutant is None else mutate(source, mutant.index)
        (Path(scratch) / module.relative_to(ROOT)).write_text(text)
        env = dict(os.environ, PYTHONPATH=scratch + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-P", "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               *pytest_args, *tests]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.monotonic() - start
        if mutant is None and proc.returncode != 0:
            sys.exit(f"the unmutated module fails its tests:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
        return ("survived" if proc.returncode == 0 else "killed"), time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", type=Path)
    parser.add_argument("tests", nargs="+")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--only", type=str, default="", help="comma-separated mutant indexes to run")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each mutant's outcome as it comes")
    args, pytest_args = parser.parse_known_args(argv)
    pytest_args = [a for a in pytest_args if a != "--"]
    module = args.module.resolve()
    rel = str(module.relative_to(ROOT))
    source = module.read_text()
    mutants = enumerate_mutants(source)
    lines = source.splitlines()
    if args.list:
        for m in mutants:
            print(f"#{m.index} line {m.line}: {m.what}    | {lines[m.line - 1].strip()[:80]}")
        return 0
    if args.only:
        wanted = {int(i) for i in args.only.split(",")}
        mutants = [m for m in mutants if m.index in wanted]
    equivalent = [m for m in mutants if _equivalent(rel, m)]
    todo = [m for m in mutants if not _equivalent(rel, m)]
    run_mutant(module, source, None, args.tests, args.timeout * 3, pytest_args)  # baseline must pass
    results: dict[int, str] = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_mutant, module, source, m, args.tests, args.timeout, pytest_args): m
                   for m in todo}
        for future in concurrent.futures.as_completed(futures):
            m = futures[future]
            results[m.index], seconds = future.result()
            if args.verbose:
                print(f"  [{len(results)}/{len(todo)}] #{m.index} line {m.line} {m.what}: {results[m.index]} "
                      f"({seconds:.1f} s)", flush=True)
    survivors = [m for m in todo if results[m.index] == "survived"]
    killed = len(todo) - len(survivors)
    score = 100.0 * killed / len(todo) if todo else 100.0
    for m in survivors:
        print(f"SURVIVED #{m.index} line {m.line}: {m.what}    | {lines[m.line - 1].strip()[:90]}")
    for m in equivalent:
        print(f"equivalent #{m.index} line {m.line}: {m.what} -- {_equivalent(rel, m)}")
    print(f"{rel}: {killed}/{len(todo)} killed = {score:.1f}% "
          f"({len(equivalent)} equivalent excluded, {sum(r == 'timeout' for r in results.values())} by timeout)")
    return 0


def _equivalent(rel: str, m: Mutant) -> str:
    for (path, line, prefix), reason in EQUIVALENT.items():
        if path == rel and line == m.line and (prefix == f"#{m.index}" or m.what.startswith(prefix)):
            return reason
    return ""


if __name__ == "__main__":
    sys.exit(main())
