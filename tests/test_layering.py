"""Imports point one way (docs/architecture.md), and `import runstore` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import runstore

PACKAGE = Path(runstore.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by one file (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if module.endswith(".__init__"):
        module = module[: -len(".__init__")]
        package = module
    else:
        package = module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _modules() -> dict[str, set[str]]:
    return {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): _imports(p)
        for p in PACKAGE.rglob("*.py")
    }


def test_only_the_store_package_imports_sqlite3():
    offenders = [m for m, imps in _modules().items() if "sqlite3" in imps and not m.startswith("runstore.store")]
    assert offenders == []


def test_client_never_imports_runtime_and_flowspec_never_imports_store():
    for module, imports in _modules().items():
        if module.startswith("runstore.client"):
            assert not any(i.startswith("runstore.runtime") for i in imports), module
        if module.split(".")[1] in ("flowspec", "graph", "current", "blobs", "errors", "util", "tags"):
            assert not any(i.startswith("runstore.store") for i in imports), module


def test_import_runstore_loads_no_heavy_module():
    code = (
        "import sys, runstore\n"
        "heavy = [m for m in ('sqlite_utils', 'numpy', 'pandas', 'cloudpickle', 'zstandard') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# The store's own ladder (docs/architecture.md, "The store file"): a module imports only
# modules on lower rungs, and none imports the package itself (its facade, Store, sits on
# top and imports them all). Imports inside functions count too (ast.walk sees them all).
STORE_LADDER = {
    "_schemacheck": 0,
    "_db": 1,
    "_trust": 2,
    "_blobs": 3,
    "_reads": 4,
    "_writes": 5,
    "_deploy": 6, "_sql": 6, "_gc": 6, "_transfer": 6, "_doctor": 6,
}


def test_store_modules_import_down_the_ladder_only():
    modules = {m: imps for m, imps in _modules().items()
               if m.startswith("runstore.store.") and not m.endswith(".__init__")}
    assert set(m.rsplit(".", 1)[1] for m in modules) == set(STORE_LADDER), "list every store module in STORE_LADDER"
    wrong = []
    for module, imports in sorted(modules.items()):
        rung = STORE_LADDER[module.rsplit(".", 1)[1]]
        for name in sorted(imports):
            if name == "runstore.store":
                wrong.append(f"{module} imports the package runstore.store (its facade sits above it)")
                continue
            if not name.startswith("runstore.store.") or name.count(".") > 2:  # modules, not their names
                continue
            target = name.split(".")[2]
            if target in STORE_LADDER and STORE_LADDER[target] >= rung and target != module.rsplit(".", 1)[1]:
                wrong.append(f"{module} (rung {rung}) imports {name} (rung {STORE_LADDER[target]})")
    assert not wrong, "\n".join(wrong)


def test_the_store_never_loads_sqlite_utils(tmp_path):
    """docs/architecture.md, "sqlite-utils in the store": not on the run path, nor in doctor/merge/sql."""
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
