"""SPEC §13 promises 2, 3 (interruptibility), 8 (schema/index part) and read-only stores,
each attacked with a file built as an attacker would: run runstore normally, then edit the
file with the sqlite3 module."""

from __future__ import annotations

import collections
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from storefill import add_run, snapshot
from runstore import NotAStoreError, Store
from runstore.store._db import PRAGMAS

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"


def victim_store(path: Path, runs: int = 2) -> Path:
    store = Store(path)
    for i in range(runs):
        # a defaultdict is not on the safe codec's allow-list: cloudpickled, so it needs trust
        add_run(store, alpha=i / 10, model=collections.defaultdict(list, weights=(i,)), tags=("exp",))
    store.close()
    return path


def edit(path: Path, *statements: str) -> None:
    """What an attacker does to a store file with nothing but sqlite3."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def chunks_as_view(path: Path) -> None:
    edit(path, "ALTER TABLE blob_chunks RENAME TO real_chunks",
         "CREATE VIEW blob_chunks AS SELECT * FROM real_chunks")


def trigger_on_runs(path: Path, marker: Path) -> None:
    edit(path, "CREATE TABLE loot(x)",
         "CREATE TRIGGER steal AFTER UPDATE ON runs BEGIN UPDATE runs SET user_name = 'mallory'; END")


def endless_view_named_like_ours(path: Path) -> None:
    edit(path, "DROP VIEW runs_view", f"CREATE VIEW runs_view AS {ENDLESS}")


def extra_endless_view(path: Path) -> None:
    edit(path, f"CREATE VIEW runs_view_fast AS {ENDLESS}")


HOSTILE: dict[str, tuple[Callable[..., None], str]] = {
    "chunks_view": (chunks_as_view, "view 'blob_chunks' replaces runstore's table"),
    "endless_view": (endless_view_named_like_ours, "view 'runs_view' was redefined"),
    "extra_view": (extra_endless_view, "view 'runs_view_fast' is not one runstore made"),
}


def hostile(tmp_path: Path, kind: str) -> tuple[Path, str]:
    path = victim_store(tmp_path / f"{kind}.db")
    alter, named = HOSTILE[kind]
    alter(path)
    return path, named


def runstore(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runstore", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


# ------------------------------------------------------------------ promise 2: schema checked on open

@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_altered_schema_is_refused_on_open_naming_the_object(tmp_path: Path, kind: str) -> None:
    path, named = hostile(tmp_path, kind)
    for readonly in (False, True):
        with pytest.raises(NotAStoreError) as info:
            Store(path, readonly=readonly)
        assert named in str(info.value) and "\n" not in str(info.value)


def test_trigger_added_on_runs_is_refused_and_never_fires(tmp_path: Path) -> None:
    path = victim_store(tmp_path / "t.db")
    trigger_on_runs(path, tmp_path / "marker")
    with pytest.raises(NotAStoreError, match="trigger 'steal' on 'runs' is not one runstore made"):
        Store(path)
    conn = sqlite3.connect(path)
    assert {row[0] for row in conn.execute("SELECT user_name FROM runs")} == {"tester"}
    conn.close()


def test_object_redefined_with_the_same_name_and_type_is_refused(tmp_path: Path) -> None:
    path = victim_store(tmp_path / "r.db")
    # Same name, same type, different definition: an index that no longer indexes what it should.
    edit(path, "DROP INDEX run_tags_succeeded", "CREATE INDEX run_tags_succeeded ON run_tags(tag)")
    with pytest.raises(NotAStoreError, match="index 'run_tags_succeeded' was redefined"):
        Store(path, readonly=True)


def test_sqlite_own_bookkeeping_is_fine(tmp_path: Path) -> None:
    path = victim_store(tmp_path / "a.db")
    edit(path, "ANALYZE")  # sqlite_stat1 appears; a user tuning their copy did nothing hostile
    store = Store(path, readonly=True)
    assert len(store.sql("SELECT * FROM runs_view").rows) == 2


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("command", [
    ("runs", "--all"), ("show", "F/1"), ("sql", "SELECT count(*) FROM runs_view"), ("merge",), ("export",)])
def test_every_command_on_an_altered_file_is_one_line_in_bounded_time(
        tmp_path: Path, kind: str, command: tuple[str, ...]) -> None:
    path, named = hostile(tmp_path, kind)
    before = path.read_bytes()
    if command == ("merge",):
        mine = victim_store(tmp_path / "mine.db", runs=1)
        mine_before = snapshot(Store(mine, readonly=True))
        proc = runstore("--db", str(mine), "merge", str(path), timeout=30)
        assert snapshot(Store(mine, readonly=True)) == mine_before
    elif command == ("export",):
        proc = runstore("--db", str(path), "export", "F/1", "-o", str(tmp_path / "out.db"), timeout=30)
        assert not (tmp_path / "out.db").exists()
    else:
        proc = runstore("--db", str(path), *command, timeout=30)
    line = one_error_line(proc)
    assert named in line
    assert path.read_bytes() == before


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_doctor_reports_the_altered_object_in_bounded_time(tmp_path: Path, kind: str) -> None:
    path, named = hostile(tmp_path, kind)
    before = path.read_bytes()
    proc = runstore("--db", str(path), "doctor", "--json", timeout=30)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    assert not report["ok"] and any(named in problem for problem in report["problems"])
    assert path.read_bytes() == before


def test_doctor_reports_a_trigger_on_runs(tmp_path: Path) -> None:
    path = victim_store(tmp_path / "t.db")
    trigger_on_runs(path, tmp_path / "marker")
    proc = runstore("--db", str(path), "doctor", timeout=30)
    assert proc.returncode == 1
    assert "PROBLEM: schema: trigger 'steal' on 'runs' is not one runstore made" in proc.stdout
    assert "PROBLEM: schema: table 'loot' is not one runstore made" in proc.stdout


def test_trusted_schema_off_until_checked(tmp_path: Path) -> None:
    assert ("trusted_schema", "OFF") in PRAGMAS
    path, _ = hostile(tmp_path, "extra_view")
    store = Store(path, diagnose=True)  # opened only to report on it: the schema is never trusted
    with store.read() as conn:
        assert conn.execute("PRAGMA trusted_schema").fetchone() == (0,)
    ours = Store(victim_store(tmp_path / "ok.db"), readonly=True)
    with ours.read() as conn:  # checked: runstore's own views (which use json()) work
        assert conn.execute("PRAGMA trusted_schema").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM runs_view").fetchone() == (2,)


# ------------------------------------------------------------------ promise 3: Ctrl-C, bounded time

def test_ctrl_c_stops_an_endless_sql_query_with_130(tmp_path: Path) -> None:
    path = victim_store(tmp_path / "s.db", runs=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runstore", "--db", str(path), "sql", f"SELECT count(*) FROM ({ENDLESS})"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        time.sleep(1.5)  # the query never ends by itself
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip() == "Error: interrupted"


def test_ctrl_c_stops_a_long_statement_inside_the_library(tmp_path: Path) -> None:
    """Not only `runstore sql`: every connection runstore opens answers SIGINT."""
    path = victim_store(tmp_path / "s.db", runs=1)
    script = (
        "import sys\nfrom runstore import Store\n"
        "store = Store(sys.argv[1], readonly=True)\n"
        "print('ready', flush=True)\n"
        "try:\n"
        f"    with store.read() as conn: conn.execute('SELECT count(*) FROM ({ENDLESS})').fetchall()\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert out.strip() == "interrupted", err


# ------------------------------------------------------------------ doctor: indexes, older and damaged files

def test_damaged_index_is_reported_with_the_fix_and_the_fix_works(tmp_path: Path) -> None:
    path = victim_store(tmp_path / "i.db", runs=3)
    # Damage an index without touching its table.
    conn = sqlite3.connect(path, isolation_level=None)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'run_tags_succeeded'").fetchone()[0]
    conn.close()
    _wipe_btree_page(path, root)
    proc = runstore("--db", str(path), "doctor", timeout=30)
    assert proc.returncode == 1, proc.stdout
    assert "index run_tags_succeeded is damaged" in proc.stdout and "fix: runstore doctor --reindex" in proc.stdout
    fixed = runstore("--db", str(path), "doctor", "--reindex", timeout=30)
    assert fixed.returncode == 0 and fixed.stdout.strip().endswith("ok"), fixed.stdout


def _wipe_btree_page(path: Path, page: int) -> None:
    """Turn an index's root page into an empty leaf: its table keeps every row."""
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(path, "r+b") as fh:
        fh.seek((page - 1) * page_size)
        fh.write(bytes([0x0A, 0, 0, 0, 0, (page_size >> 8) & 0xFF, page_size & 0xFF, 0]))


def test_doctor_reports_on_an_older_file_without_migrating_it(tmp_path: Path) -> None:
    from test_migration import write_version_1

    path = tmp_path / "old.db"
    write_version_1(path)
    before = path.read_bytes()
    proc = runstore("--db", str(path), "doctor", "--json", timeout=30)
    report = json.loads(proc.stdout)
    assert report["facts"]["schema_version"] == 1 and report["facts"]["runs"] == 1
    assert any("older" in w for w in report["warnings"])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.db"]


def test_doctor_on_a_damaged_file_is_one_line(tmp_path: Path) -> None:
    path = victim_store(tmp_path / "d.db")
    data = bytearray(path.read_bytes())
    data[4096 + 8: 4096 + 4096] = os.urandom(4096 - 8)  # page 2 (part of the schema's tables) is noise
    path.write_bytes(bytes(data))
    proc = runstore("--db", str(path), "doctor", timeout=30)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout


# ------------------------------------------------------------------ read-only stores

@pytest.fixture
def open_dir() -> Path:
    """A directory an unprivileged process can reach (the pytest tree is private to root)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="runstore-ro-"))
    path.chmod(0o777)
    yield path
    for root, dirs, _ in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777)
    shutil.rmtree(path)


def unprivileged(*command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run without the power to bypass file permissions, even as root."""
    import shutil

    argv = list(command)
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: file permissions cannot be tested")
        argv = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env={**os.environ, **env})


READ_EVERYTHING = """
import json, sys
from runstore import Store, Run, namespace, use_store
store = Store(sys.argv[1], readonly=True)
namespace(None)
with use_store(store):
    run = Run("F/1")
    print(json.dumps({"alpha": run.data.alpha, "model": run["start"].task.data.model,
                      "runs": store.sql("SELECT count(*) FROM runs_view").rows[0][0]}))
"""


@pytest.mark.parametrize("where", ["file_444", "dir_555"])
def test_read_only_store_is_readable_and_nothing_is_left_next_to_it(open_dir: Path, where: str) -> None:
    folder = open_dir / "shared"
    folder.mkdir()
    path = victim_store(folder / "runstore.db")
    before = path.read_bytes()
    path.chmod(0o444)
    if where == "dir_555":
        folder.chmod(0o555)
    env = {"RUNSTORE_HOME": str(open_dir / "home"), "RUNSTORE_USER": "reader"}
    (open_dir / "home").mkdir(mode=0o777)
    for args in (("runs", "--all"), ("show", "F/1"), ("sql", "SELECT pathspec FROM runs_view"),
                 ("tag", "list", "F/1"), ("doctor",)):
        proc = unprivileged(sys.executable, "-m", "runstore", "--db", str(path), *args, env=env)
        assert proc.returncode == 0, (args, proc.stderr)
        assert sorted(p.name for p in folder.iterdir()) == ["runstore.db"], args
    assert "F/1" in unprivileged(sys.executable, "-m", "runstore", "--db", str(path), "runs", "--all",
                                 env=env).stdout
    # The pickled model was written by someone else: refused until trusted, and trusting
    # a file you cannot write records the trust in your home, not in the file.
    proc = unprivileged(sys.executable, "-c", READ_EVERYTHING, str(path), env=env)
    assert "UntrustedArtifact" in proc.stderr, proc.stderr
    trust = unprivileged(sys.executable, "-m", "runstore", "trust", str(path), env=env)
    assert trust.returncode == 0 and "trusted 2 pickled" in trust.stdout, trust.stderr
    proc = unprivileged(sys.executable, "-c", READ_EVERYTHING, str(path), env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"alpha": 0.0, "model": {"weights": [0]}, "runs": 2}
    assert sorted(p.name for p in folder.iterdir()) == ["runstore.db"]
    assert path.read_bytes() == before
    assert list((open_dir / "home" / "trust").glob("*.macs"))


def test_readonly_store_of_a_writable_file_leaves_nothing_behind(tmp_path: Path) -> None:
    path = victim_store(tmp_path / "runstore.db")
    before = path.read_bytes()
    store = Store(path, readonly=True)
    assert len(store.sql("SELECT * FROM runs_view").rows) == 2
    with store.read() as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runstore.db"]
    assert path.read_bytes() == before
    proc = runstore("--db", str(path), "runs", "--all")
    assert proc.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runstore.db"]


def test_readonly_open_of_a_store_being_written_sees_its_commits(tmp_path: Path) -> None:
    path = victim_store(tmp_path / "runstore.db", runs=1)
    writer = Store(path)
    reader = Store(path, readonly=True)
    add_run(writer)
    assert len(reader.sql("SELECT * FROM runs").rows) == 2
    with reader.read() as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    reader.close()
    writer.close()
