"""Opening store files: bad files, permissions, busy locks, backup, threads, fork."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from runstore import (
    NotAStoreError,
    RunstoreError,
    SchemaVersionError,
    Store,
    StoreBusyError,
    StoreError,
    StoreReadOnlyError,
)
from runstore.schema import SCHEMA_VERSION
from runstore.store import discover_path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, repr(text)
    return text


def make_store(path: Path, runs: int = 2) -> Path:
    store = Store(path)
    for _ in range(runs):
        run = store.create_run("HelloFlow", user="anne")
        store.finish_run(run.run_id, "succeeded")
    store.put_value(os.urandom(300_000))
    store.close()
    return path


# ------------------------------------------------------------------ bad files

def _refuses(path: Path, error: type[RunstoreError]) -> str:
    before = digest(path) if path.is_file() else None
    neighbours = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(error) as info:
        Store(path)
    if before is not None:
        assert digest(path) == before  # the file is untouched
    assert sorted(p.name for p in path.parent.iterdir()) == neighbours  # no -wal, -shm, copies
    return one_line(info.value)


def test_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 20)
    assert "not a runstore database" in _refuses(path, NotAStoreError)


def test_truncated_database_is_refused(tmp_path: Path) -> None:
    path = make_store(tmp_path / "runstore.db")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in _refuses(path, NotAStoreError)


def test_database_cut_inside_its_header_is_refused(tmp_path: Path) -> None:
    path = make_store(tmp_path / "runstore.db")
    path.write_bytes(path.read_bytes()[:60])
    _refuses(path, NotAStoreError)


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runstore.db"
    path.touch()
    assert "empty" in _refuses(path, NotAStoreError)
    assert path.stat().st_size == 0


def test_directory_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runstore.db"
    path.mkdir()
    with pytest.raises(StoreError) as info:
        Store(path)
    assert "directory" in one_line(info.value)


def test_sqlite_file_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.commit()
    conn.close()
    assert "another program" in _refuses(path, NotAStoreError)


def test_newer_schema_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = make_store(tmp_path / "runstore.db")
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    conn.close()
    message = _refuses(path, SchemaVersionError)
    assert f"version {SCHEMA_VERSION + 7}" in message and f"version {SCHEMA_VERSION}" in message
    with pytest.raises(SchemaVersionError):
        Store(path, readonly=True)


def test_missing_file_with_readonly_or_no_create(tmp_path: Path) -> None:
    for kwargs in ({"readonly": True}, {"create": False}):
        with pytest.raises(StoreError, match="does not exist"):
            Store(tmp_path / "nope.db", **kwargs)
    assert not (tmp_path / "nope.db").exists()
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "no-such-dir" / "runstore.db")


def test_every_error_is_a_runstore_error_and_never_a_raw_sqlite_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "runstore.db")
    with pytest.raises(StoreError) as info:
        with store.write() as conn:
            conn.execute("INSERT INTO no_such_table VALUES (1)")
    assert not isinstance(info.value, sqlite3.Error)
    with pytest.raises(StoreError):
        with store.read() as conn:
            conn.execute("SELEC nonsense")


# ------------------------------------------------------------------ permissions (really unprivileged)

PERMISSION_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from runstore import Store, RunstoreError

    def attempt(fn):
        try:
            return ["ok", fn()]
        except RunstoreError as exc:
            return [type(exc).__name__, str(exc)]
        except Exception as exc:  # a raw error leaking out is a test failure
            return ["RAW " + type(exc).__name__, str(exc)]

    path = sys.argv[1]

    def read_runs():
        store = Store(path, readonly=True)
        with store.read() as conn:
            n = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        return n

    def write_readonly():
        Store(path, readonly=True).create_run("HelloFlow", user="anne")

    def raw_write_readonly():
        with Store(path, readonly=True).read() as conn:
            conn.execute("DELETE FROM runs")

    results = {
        "open_writable": attempt(lambda: Store(path).create_run("HelloFlow", user="anne").run_number),
        "read_readonly": attempt(read_runs),
        "write_readonly": attempt(write_readonly),
        "raw_write_readonly": attempt(raw_write_readonly),
        "create_new": attempt(lambda: Store(path + ".new.db").uuid),
    }
    print(json.dumps(results))
    """
)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory outside the private pytest tree, so an unprivileged process can reach it."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="runstore-perm-"))
    path.chmod(0o777)
    yield path
    for root, dirs, _ in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777)
    path.chmod(0o777)
    shutil.rmtree(path)


def run_unprivileged(path: Path, home: Path) -> dict:
    """Run PERMISSION_SCRIPT without the power to bypass file permissions (even as root)."""
    command = [sys.executable, "-c", PERMISSION_SCRIPT, str(path)]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: file permissions cannot be tested")
        command = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", *command]
    env = {**os.environ, "RUNSTORE_HOME": str(home)}
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_read_only_file(open_dir: Path) -> None:
    path = make_store(open_dir / "runstore.db")
    path.chmod(0o444)
    before = digest(path)
    results = run_unprivileged(path, open_dir / "home")
    assert results["read_readonly"] == ["ok", 2]
    for case in ("open_writable", "write_readonly", "raw_write_readonly"):
        kind, message = results[case]
        assert kind == "StoreReadOnlyError", (case, results[case])
        assert "\n" not in message
    assert "readonly=True" in results["open_writable"][1]
    assert digest(path) == before
    assert results["create_new"][0] == "ok"  # the directory itself is writable


def test_unwritable_directory(open_dir: Path) -> None:
    folder = open_dir / "locked"
    folder.mkdir()
    path = make_store(folder / "runstore.db")
    before = digest(path)
    folder.chmod(0o555)
    results = run_unprivileged(path, open_dir / "home")
    kind, message = results["create_new"]
    assert kind == "StoreReadOnlyError" and "not writable" in message and "\n" not in message
    kind, message = results["open_writable"]
    assert kind == "StoreReadOnlyError" and "\n" not in message, results
    assert results["read_readonly"] == ["ok", 2]
    assert results["write_readonly"][0] == "StoreReadOnlyError"
    assert digest(path) == before
    assert sorted(p.name for p in folder.iterdir()) == ["runstore.db"]


# ------------------------------------------------------------------ readonly mode (same user)

def test_readonly_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = make_store(tmp_path / "runstore.db")
    store = Store(path, readonly=True)
    with store.read() as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
    with pytest.raises(StoreReadOnlyError):
        store.create_run("HelloFlow", user="anne")
    with pytest.raises(StoreReadOnlyError):
        with store.read() as conn:
            conn.execute("DELETE FROM runs")
    assert "readonly=True" in repr(store)


# ------------------------------------------------------------------ busy

HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO flows(name, created_at) VALUES ('Uncommitted', 0)")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
    """
)


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A store file and another process holding its write lock with an open transaction."""
    path = make_store(tmp_path / "runstore.db")
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield path, proc
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)


def test_write_lock_held_by_another_process_gives_store_busy_error(lock_holder) -> None:
    path, proc = lock_holder
    store = Store(path, busy_timeout=0.3)
    with pytest.raises(StoreBusyError) as info:
        store.create_run("HelloFlow", user="anne")
    assert "0.3 s" in one_line(info.value)
    assert isinstance(info.value, TimeoutError)
    with store.read() as conn:  # WAL: reads go on while someone else writes
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=30)
    assert store.create_run("HelloFlow", user="anne").run_number == 3


def test_backup_while_another_connection_holds_a_write_transaction(lock_holder, tmp_path: Path) -> None:
    path, _ = lock_holder
    store = Store(path, busy_timeout=0.3)
    out = store.backup(tmp_path / "copy.db")
    copy = Store(out)
    assert copy.integrity_problems() == []
    assert copy.uuid == store.uuid
    with copy.read() as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM flows WHERE name = 'Uncommitted'").fetchone()[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".copy")) == []
    with pytest.raises(StoreError, match="already exists"):
        store.backup(out)


def test_checkpoint_does_not_stall_behind_another_writer(lock_holder) -> None:
    from runstore.store._db import CHECKPOINT_WAIT

    path, proc = lock_holder
    store = Store(path)  # default 60 s busy timeout
    started = time.monotonic()
    store.checkpoint()  # gives up after CHECKPOINT_WAIT instead of the 60 s busy timeout; never raises
    assert time.monotonic() - started < CHECKPOINT_WAIT + 10 < store.busy_timeout
    with store.read() as conn:  # the connection's own busy timeout is back
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == int(store.busy_timeout * 1000)
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=30)
    store.create_run("HelloFlow", user="anne")
    assert Path(f"{path}-wal").stat().st_size > 0
    store.checkpoint()  # with nobody else writing it folds the WAL in
    assert Path(f"{path}-wal").stat().st_size == 0


def test_backup_of_memory_store_and_file_is_complete(tmp_path: Path) -> None:
    store = Store(":memory:")
    store.create_run("HelloFlow", user="anne")
    out = store.backup(tmp_path / "mem.db")
    assert not Path(str(out) + "-wal").exists()
    with Store(out).read() as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


# ------------------------------------------------------------------ threads and fork

def test_memory_store_from_several_threads() -> None:
    store = Store(":memory:")
    numbers: list[int] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(20):
                numbers.append(store.create_run("ThreadFlow", user="anne").run_number)
                ref = store.put_value({"thread": i, "j": j})
                assert store.load_value(ref.blob_key, ref.encoding) == {"thread": i, "j": j}
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(numbers) == list(range(1, 161))


def test_file_store_threads_get_their_own_connections(file_store: Store) -> None:
    seen: list[int] = []

    def work() -> None:
        seen.append(id(file_store.connection()))
        file_store.create_run("F", user="anne")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 4
    with file_store.read() as conn:
        assert conn.execute("SELECT max(run_number) FROM runs").fetchone()[0] == 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_child_after_fork_uses_its_own_connection(file_store: Store) -> None:
    parent_conn = file_store.connection()
    file_store.create_run("ForkFlow", user="anne")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(read_fd)
            child_conn = file_store.connection()
            number = file_store.create_run("ForkFlow", user="anne").run_number
            os.write(write_fd, json.dumps([child_conn is not parent_conn, number]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        report = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert json.loads(report) == [True, 2]
    assert file_store.connection() is parent_conn  # the parent's connection still works
    assert file_store.create_run("ForkFlow", user="anne").run_number == 3
    assert file_store.integrity_problems() == []


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = Store(tmp_path / "runstore.db")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.create_run("F", user="anne")


# ------------------------------------------------------------------ discovery (SPEC §2)

def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    make_store(project / "runstore.db", runs=0)
    assert discover_path(cwd=deep) == (project / "runstore.db", True)
    monkeypatch.setenv("RUNSTORE_DB", str(tmp_path / "env.db"))
    assert discover_path(cwd=deep) == (tmp_path / "env.db", True)
    assert discover_path(tmp_path / "cli.db", cwd=deep) == (tmp_path / "cli.db", True)
    monkeypatch.delenv("RUNSTORE_DB")
    assert discover_path(cwd=tmp_path) == (tmp_path / "runstore.db", False)


def test_store_without_path_creates_one_in_cwd_and_says_so(capsys: pytest.CaptureFixture) -> None:
    store = Store()
    assert store.path == Path.cwd().resolve() / "runstore.db"
    assert "creating a new store" in capsys.readouterr().err
    store.close()
    Store().close()
    assert capsys.readouterr().err == ""


def test_new_file_is_wal_with_the_connection_policy(file_store: Store) -> None:
    with file_store.read() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [p.name for p in file_store.path.parent.iterdir() if p.name.endswith(".new")] == []


def _another_programs_wal_database(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('anne')")
    conn.commit()
    conn.close()
    return path


def test_read_only_opens_leave_no_wal_or_shm_behind(tmp_path: Path) -> None:
    """storage.md: reading a file (runs/sql/show/doctor, readonly=True), even one refused
    (a newer schema, another program's WAL database), leaves nothing next to it (issue #19)."""
    from click.testing import CliRunner

    from runstore.cli import cli

    def alone(path: Path) -> None:
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]

    (tmp_path / "good").mkdir()
    good = make_store(tmp_path / "good" / "runstore.db")
    before = digest(good)
    for args in (["runs", "--all"], ["sql", "SELECT count(*) FROM runs_view"], ["show", "HelloFlow/1"],
                 ["show", "HelloFlow"], ["doctor"]):
        result = CliRunner().invoke(cli, ["--db", str(good), *args])
        assert result.exit_code == 0, (args, result.output)
        alone(good)
    Store(good, readonly=True).close()
    alone(good)
    assert digest(good) == before

    (tmp_path / "newer").mkdir()
    newer = make_store(tmp_path / "newer" / "runstore.db")
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    (tmp_path / "other").mkdir()
    other = _another_programs_wal_database(tmp_path / "other" / "contacts.db")
    for path, error in ((newer, SchemaVersionError), (other, NotAStoreError)):
        alone(path)
        before = digest(path)
        with pytest.raises(error):
            Store(path, readonly=True)
        alone(path)
        for args in (["runs", "--all"], ["sql", "SELECT 1"], ["show", "F/1"], ["doctor"]):
            result = CliRunner().invoke(cli, ["--db", str(path), *args])
            assert result.exit_code != 0 and "Traceback" not in result.output, (args, result.output)
            alone(path)
        assert digest(path) == before
