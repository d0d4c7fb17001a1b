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
