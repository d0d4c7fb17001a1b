"""SPEC §3 trust: opening someone else's store never runs their code until `runstore trust FILE`.

The malicious store is built by another process with another RUNSTORE_HOME (another
user's secret). Its pickle writes a file when loaded, so "no code ran" is checked
by that file not existing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from storefill import add_run
from runstore import Store
from runstore.errors import UntrustedArtifact

TESTS = Path(__file__).resolve().parent
HAS_CLIENT = importlib.util.find_spec("runstore.client") is not None
CLIENT_COMMANDS = [
    ["runs", "--all"],
    ["show", "EvilFlow/1"],
    ["show", "--json", "EvilFlow/1/start"],
    ["logs", "EvilFlow/1"],
    ["tag", "list", "EvilFlow/1"],
] if HAS_CLIENT else []

BUILD_EVIL = textwrap.dedent("""
    import pathlib, sys
    sys.path.insert(0, {tests!r})
    from storefill import add_run
    from runstore import Store

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.write_text, (pathlib.Path({marker!r}), "pwned"))

    store = Store({db!r})
    add_run(store, "EvilFlow", model=Payload(), result=[1, 2, 3])
    store.close()
""")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runstore", *args], capture_output=True, text=True,
                          env=env or dict(os.environ))


@pytest.fixture
def evil_store(tmp_path: Path) -> tuple[Path, Path]:
    db, marker = tmp_path / "evil.db", tmp_path / "PWNED"
    env = dict(os.environ, RUNSTORE_HOME=str(tmp_path / "attacker-home"), RUNSTORE_USER="mallory")
    code = BUILD_EVIL.format(tests=str(TESTS), marker=str(marker), db=str(db))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert db.exists() and not marker.exists()
    return db, marker


def _artifact(store: Store, name: str) -> tuple[str, str]:
    return store.sql("SELECT blob_key, encoding FROM artifacts WHERE name = ?", (name,)).rows[0]


def test_malicious_store_is_harmless_until_trusted(evil_store: tuple[Path, Path]):
    db, marker = evil_store
    # listing, SQL and doctor read the file without running anything
    for args in (["sql", "SELECT pathspec, status FROM runs_view"],
                 ["sql", "--json", "SELECT * FROM artifacts"],
                 ["sql", "--csv", "SELECT * FROM blob_chunks"],
                 ["doctor"],
                 *CLIENT_COMMANDS):
        result = _cli("--db", str(db), *args)
        assert result.returncode == 0, result.stderr
        assert not marker.exists(), args
    assert "EvilFlow/1" in _cli("--db", str(db), "sql", "SELECT pathspec FROM runs_view").stdout
    assert "untrusted_pickles=1" in _cli("--db", str(db), "doctor").stdout
    if CLIENT_COMMANDS:
        task = json.loads(_cli("--db", str(db), "show", "--json", "EvilFlow/1/start").stdout)["tasks"][0]["task"]
        shown = json.loads(_cli("--db", str(db), "show", "--json", task).stdout)
        assert shown["artifacts"][1]["name"] == "model" and shown["artifacts"][1]["encoding"] == "pickle"
        assert not marker.exists()

    store = Store(db)
    key, encoding = _artifact(store, "model")
    assert encoding == "pickle"
    with pytest.raises(UntrustedArtifact, match=f"runstore trust {db}"):
        store.load_value(key, encoding)
    assert not marker.exists()
    if HAS_CLIENT:  # the client's .data goes through the same rule
        from runstore import Run
        from runstore.namespace import namespace

        namespace(None)
        start = Run("EvilFlow/1", store=store)["start"].task
        with pytest.raises(UntrustedArtifact, match="runstore trust"):
            start["model"].data
        assert start.data.x == {"alpha": 0.5, "n": 3}
        assert not marker.exists()
    # safe codecs always load
    assert store.load_value(*_artifact(store, "result")) == [1, 2, 3]
    assert store.load_value(*_artifact(store, "x")) == {"alpha": 0.5, "n": 3}

    result = _cli("trust", str(db))
    assert result.returncode == 0 and "trusted 1 pickled value" in result.stdout
    assert not marker.exists()  # trusting does not load anything either
    store.load_value(key, encoding)  # now it loads: that is what trust means
    assert marker.read_text() == "pwned"


def test_trust_is_per_user(evil_store: tuple[Path, Path], tmp_path: Path):
    db, marker = evil_store
    assert _cli("trust", str(db)).returncode == 0
    # someone else (another secret) opening the same file is still protected
    env = dict(os.environ, RUNSTORE_HOME=str(tmp_path / "third-user"))
    code = textwrap.dedent(f"""
        from runstore import Store
        from runstore.errors import UntrustedArtifact
        store = Store({str(db)!r})
        key, enc = store.sql("SELECT blob_key, encoding FROM artifacts WHERE name = 'model'").rows[0]
        try:
            store.load_value(key, enc)
        except UntrustedArtifact:
            print("refused")
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "refused", out.stderr
    assert not marker.exists()


def test_swapped_content_under_a_trusted_key_is_refused(tmp_path: Path):
    # The reader shares a store holding their own trusted pickle (so its MAC row is
    # in the file). The attacker keeps key and MAC but swaps the chunk for a payload.
    path = tmp_path / "mine.db"
    store = Store(path)
    add_run(store, model=object.__new__(type("Thing", (), {})))
    key, encoding = _artifact(store, "model")
    store.close()
    marker = tmp_path / "PWNED"
    evil = (b"\x80\x04cbuiltins\nexec\n(Vimport pathlib; pathlib.Path(" + repr(str(marker)).encode()
            + b").write_text('pwned')\ntR.")
    raw = sqlite3.connect(path)
    raw.execute("UPDATE blob_chunks SET data = ?, compression = 'none', raw_size = ? WHERE chunk_key ="
                " (SELECT chunk_key FROM blob_parts WHERE blob_key = ?)", (evil, len(evil), key))
    raw.execute("UPDATE blobs SET size = ? WHERE blob_key = ?", (len(evil), key))
    raw.commit()
    raw.close()
    store = Store(path)
    assert store.is_trusted(key)
    with pytest.raises(UntrustedArtifact, match="altered"):
        store.load_value(key, encoding)
    assert not marker.exists()


def test_merged_artifacts_keep_their_source_trust(evil_store: tuple[Path, Path], tmp_path: Path):
    db, marker = evil_store
    mine = Store(tmp_path / "mine.db")
    add_run(mine, model={1, 2})  # my own pickle (a set)
    mine.merge_from(db)
    my_key = mine.sql("SELECT a.blob_key FROM artifacts a JOIN tasks t ON t.task_id = a.task_id JOIN runs r"
                      " ON r.run_id = t.run_id JOIN flows f ON f.flow_id = r.flow_id"
                      " WHERE f.name = 'F' AND a.name = 'model'").rows[0][0]
    evil_key = mine.sql("SELECT a.blob_key FROM artifacts a JOIN tasks t ON t.task_id = a.task_id JOIN runs r"
                        " ON r.run_id = t.run_id JOIN flows f ON f.flow_id = r.flow_id"
                        " WHERE f.name = 'EvilFlow' AND a.name = 'model'").rows[0][0]
    assert mine.load_value(my_key, "pickle") == {1, 2}
    with pytest.raises(UntrustedArtifact):
        mine.load_value(evil_key, "pickle")  # merging did not make it trusted
    assert not marker.exists()
    # and after trusting the source, a merge of it carries that trust along
    assert _cli("trust", str(db)).returncode == 0
    other = Store(tmp_path / "other.db")
    other.merge_from(db)
    assert other.is_trusted(evil_key)
