"""Imports point one way (docs/architecture.md), and `import runstore` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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
