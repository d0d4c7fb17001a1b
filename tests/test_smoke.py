"""The package imports, and a store can be opened in memory and on disk."""

from __future__ import annotations

import subprocess
import sys

from runstore import Store


def test_memory_and_file_store_roundtrip(tmp_path):
    for store in (Store(":memory:"), Store(tmp_path / "a.db")):
        run = store.create_run("HelloFlow", user="anne")
        ref = store.put_value({"x": [1, 2.5, None]})
        assert store.load_value(ref.blob_key, ref.encoding) == {"x": [1, 2.5, None]}
        assert run.pathspec == "HelloFlow/1"
        assert store.integrity_problems() == []


def test_python_m_runstore_version():
    out = subprocess.run([sys.executable, "-m", "runstore", "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "runstore" in out.stdout
