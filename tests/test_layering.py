"""Imports point one way: the ladder of docs/architecture.md, read from the page and enforced.

Every module of runstore/ is on one rung; each import (top level, function-local, under
TYPE_CHECKING) goes to a lower rung, except the named exceptions below; no cycle; and the
light paths stay light (`import runstore`, `python flow.py run`).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import runstore

PACKAGE = Path(runstore.__file__).resolve().parent
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

#: (importer, imported) -> why the upward import is allowed. docs/architecture.md names the same.
EXCEPTIONS = {
    ("runstore.flowspec", "runstore.cli.flow"):
        "`MyFlow()` under __main__ starts the flow's command line; only then, so `import runstore` "
        "never loads click",
    ("runstore.current", "runstore.client"):
        "current.run / current.task hand out client objects; the runtime and flowspec set and read "
        "`current` without loading the client",
}


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(module: str, path: Path, modules: dict[str, Path] = MODULES) -> dict[str, int]:
    """runstore modules ``module`` imports anywhere in its source -> the first line doing so."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.setdefault(name, node.lineno)
    return found


def ladder(text: str) -> dict[str, int]:
    """module -> rung, from the table under '## Layers' in docs/architecture.md."""
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rungs: dict[str, int] = {}
    for match in re.finditer(r"^\| (\d+) \| ([^|]*) \|", section, re.M):
        for name in re.findall(r"`([\w.]+)`", match.group(2)):
            full = "runstore" if name == "runstore" else f"runstore.{name}"
            assert full not in rungs, f"{full} is listed twice in docs/architecture.md"
            rungs[full] = int(match.group(1))
    return rungs


def violations(modules: dict[str, Path], rungs: dict[str, int]) -> list[str]:
    found = []
    for module, path in sorted(modules.items()):
        for target, line in sorted(imports_of(module, path, modules).items()):
            if rungs[target] >= rungs[module] and (module, target) not in EXCEPTIONS:
                where = path.relative_to(PACKAGE.parent) if path.is_relative_to(PACKAGE.parent) else path
                found.append(f"{where}:{line}: {module} (rung {rungs[module]}) "
                             f"imports {target} (rung {rungs[target]}): imports must point down the ladder")
    return found


def cycles(modules: dict[str, Path]) -> list[list[str]]:
    """Strongly connected components of more than one module (the exceptions left out)."""
    edges = {m: [t for t in imports_of(m, p, modules) if (m, t) not in EXCEPTIONS] for m, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_every_module_is_on_the_ladder_and_every_rung_exists():
    rungs = ladder(ARCHITECTURE.read_text())
    assert sorted(set(MODULES) - set(rungs)) == [], "modules missing from the ladder in docs/architecture.md"
    assert sorted(set(rungs) - set(MODULES)) == [], "docs/architecture.md lists modules that do not exist"


def test_imports_point_down_the_ladder():
    assert violations(MODULES, ladder(ARCHITECTURE.read_text())) == []


def test_no_import_cycle():
    assert cycles(MODULES) == []


def test_every_exception_is_still_needed_and_documented():
    text = ARCHITECTURE.read_text()
    for (module, target), reason in EXCEPTIONS.items():
        assert reason
        assert target in imports_of(module, MODULES[module]), f"{module} no longer imports {target}: drop the exception"
        short = lambda m: m.removeprefix("runstore.")  # noqa: E731
        assert f"`{short(module)}` → `{short(target)}`" in text, f"docs/architecture.md does not name {module} -> {target}"


def test_a_back_import_is_caught(tmp_path: Path):
    # The checker itself: a low module importing a high one, and a two-module cycle.
    fake = {**MODULES, "runstore.util": tmp_path / "util.py"}
    fake["runstore.util"].write_text("def f():\n    from .cli import root\n")
    rungs = ladder(ARCHITECTURE.read_text())
    assert any(f"runstore.util (rung {rungs['runstore.util']}) imports runstore.cli.root "
               f"(rung {rungs['runstore.cli.root']})" in v for v in violations(fake, rungs))
    (tmp_path / "tags.py").write_text("from .util import printable\n")
    (tmp_path / "util2.py").write_text("from .tags import x\n")
    ring = {"runstore.tags": tmp_path / "tags.py", "runstore.util": tmp_path / "util2.py"}
    assert cycles(ring) == [["runstore.tags", "runstore.util"]]


def test_only_the_store_package_imports_sqlite3():
    offenders = [m for m, p in MODULES.items() if not m.startswith("runstore.store")
                 and any(isinstance(n, (ast.Import, ast.ImportFrom)) and
                         ("sqlite3" in [a.name for a in getattr(n, "names", [])] or getattr(n, "module", None) == "sqlite3")
                         for n in ast.walk(ast.parse(p.read_text())))]
    assert offenders == []


def _third_party(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_cli_imports_click():
    offenders = [m for m, p in MODULES.items() if "click" in _third_party(p)
                 and not (m == "runstore.cli" or m.startswith("runstore.cli."))]
    assert offenders == []


def test_client_never_imports_runtime_and_flowspec_never_imports_store():
    for module, path in MODULES.items():
        targets = imports_of(module, path)
        if module.startswith("runstore.client"):
            assert not any(t.startswith("runstore.runtime") for t in targets), module
        if module.split(".")[1:2] in (["flowspec"], ["graph"], ["current"], ["codecs"], ["errors"], ["util"], ["tags"]):
            assert not any(t.startswith("runstore.store") for t in targets), module


def _loaded(statement: str) -> list[str]:
    code = (
        f"import sys; {statement}\n"
        "heavy = ('sqlite_utils', 'tabulate', 'numpy', 'pandas', 'cloudpickle', 'zstandard', 'click')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_runstore_loads_no_heavy_module():
    assert _loaded("import runstore") == []


def test_import_runstore_loads_no_stdlib_module_it_does_not_use():
    """#18: `import runstore` stays at a few dozen modules (28 after #18, 38 before)."""
    code = ("import sys; before = set(sys.modules); import runstore\n"
            "print(','.join(sorted(set(sys.modules) - before)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(",")
    unused = ("sqlite3", "uuid", "platform", "socket", "inspect", "tempfile", "shutil", "string", "dataclasses",
              "hashlib", "click")
    assert [m for m in loaded if m.strip() in unused] == [] and len(loaded) < 40, loaded


def test_the_flow_run_path_loads_neither_sqlite_utils_nor_tabulate():
    assert _loaded("import runstore, runstore.cli.flow") == ["click"]


def test_the_store_never_loads_sqlite_utils(tmp_path):
    """docs/architecture.md, "sqlite-utils: used by `runstore flatten`, kept out of the store and the run path"."""
    code = (
        "import sys\n"
        "from runstore.store import Store\n"
        f"store = Store({str(tmp_path / 'a.db')!r})\n"
        "run = store.create_run('F', user='anne'); store.finish_run(run.run_id, 'succeeded')\n"
        "store.doctor(deep=True); store.sql('SELECT 1'); store.gc()\n"
        f"store.export_runs(['F'], {str(tmp_path / 'b.db')!r}); Store(':memory:').merge_from(store)\n"
        "print('sqlite_utils' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"



def test_runstore_never_imports_numpy(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import runstore
        from runstore import Store
        store = Store(":memory:")
        for value in ([1, 2, 3], b"raw", {"a": [1.5, None]}, list(range(10)), (1, "x"), bytearray(b"ab")):
            stored = store.put_value(value)
            assert stored.encoding != "npy", stored
            assert store.load_value(stored.blob_key, stored.encoding) == value
        for mod in pkgutil.walk_packages(runstore.__path__, "runstore."):
            importlib.import_module(mod.name)
        assert "numpy" not in sys.modules, "runstore imported numpy"
        import numpy
        stored = store.put_value(numpy.arange(3))
        assert stored.encoding == "npy", stored.encoding
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


#: Never loaded by `python flow.py run` of a plain flow, in the scheduler nor in a step:
#: heavy third-party modules, optional extras, the admin store modules a run never calls, the
#: client/UI/cards, and stdlib modules only rare paths need (each measured with
#: `python -X importtime flow.py run`; docs/architecture.md, "Layers").
NOT_ON_THE_RUN_PATH = (
    "sqlite_utils", "tabulate", "numpy", "pandas", "cloudpickle", "dask", "starlette", "jinja2",
    "runstore.store._sql", "runstore.store._gc", "runstore.store._transfer", "runstore.store._doctor",
    "runstore.client", "runstore.ui", "runstore.cards", "runstore.dataframe", "runstore.preview",
    "runstore.cli.root", "runstore.runtime.executors.dask",
    "tempfile", "string", "shutil", "bz2", "lzma", "csv", "difflib", "concurrent.futures",
    "multiprocessing", "asyncio", "sqlite3.dump", "email", "http", "xml",
)


def test_a_flow_run_loads_only_what_it_uses(tmp_path: Path) -> None:
    """`python flow.py run` of a 3-step flow: what the scheduler process and a step's worker load.

    The scheduler ends with os._exit (exit_with in cli/launch.py skips teardown), so its
    modules are recorded by wrapping os._exit; the `end` step records its worker's.
    """
    flow = tmp_path / "flow.py"
    flow.write_text(textwrap.dedent("""
        import json, os, sys
        from runstore import FlowSpec, step

        class ThreeFlow(FlowSpec):
            \"\"\"Three steps.\"\"\"

            @step
            def start(self):
                \"\"\"Set a value.\"\"\"
                self.x = {"a": list(range(50)), "text": "y" * 500}
                self.next(self.middle)

            @step
            def middle(self):
                self.y = self.x["a"][3] + 1
                self.next(self.end)

            @step
            def end(self):
                with open(os.environ["WORKER_MODULES"], "w") as fh:
                    json.dump(sorted(sys.modules), fh)

        if __name__ == "__main__":
            ThreeFlow()
    """))
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(textwrap.dedent("""
        import json, os, runpy, sys
        main_pid, real_exit = os.getpid(), os._exit

        def record(code):
            if os.getpid() == main_pid:
                with open(os.environ["SCHEDULER_MODULES"], "w") as fh:
                    json.dump(sorted(sys.modules), fh)
            real_exit(code)

        os._exit = record
        sys.argv = [sys.argv[1], *sys.argv[2:]]
        runpy.run_path(sys.argv[0], run_name="__main__")
    """))
    env = {**__import__("os").environ, "SCHEDULER_MODULES": str(tmp_path / "scheduler.json"),
           "WORKER_MODULES": str(tmp_path / "worker.json")}
    proc = subprocess.run([sys.executable, str(wrapper), str(flow), "--db", str(tmp_path / "r.db"), "run"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    for who in ("scheduler", "worker"):
        loaded = set(json.loads((tmp_path / f"{who}.json").read_text()))
        assert "runstore.runtime.scheduler" in loaded  # the recording itself works
        crept = sorted(m for m in loaded if any(m == bad or m.startswith(bad + ".") for bad in NOT_ON_THE_RUN_PATH))
        assert crept == [], f"the {who} of a plain run loads {crept}: import them where they are used"
