"""SPEC §13.4 attacked: merge and export of a hostile file (docs/security.md §4).

Each test builds the attacker's file as an attacker would: run runstore normally, then
edit the file with the ``sqlite3`` module. The safe outcome is asserted on real files:
the merge is refused with one line (or the hostile part is ignored), the victim's file
is unchanged table by table, and a later save of the genuine value gets genuine content.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storefill import add_run, code_tarball
from runstore import Store
from runstore.errors import NotAStoreError, RunstoreError, StoreError
from runstore.util import hostname

YEAR_2100 = 4102444800.0


def _dump(path: Path) -> list[str]:
    """Every row of every table (and the schema) of a store file, as SQL text."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _victim(tmp_path: Path) -> Path:
    victim = Store(tmp_path / "victim.db")
    add_run(victim, alpha=0.1, model={"weights": [1, 2, 3]})
    add_run(victim, "Other", alpha=0.2)
    victim.checkpoint()
    victim.close()
    return tmp_path / "victim.db"


def _attacker(tmp_path: Path, **run: object) -> Path:
    attacker = Store(tmp_path / "attacker.db")
    add_run(attacker, **run)  # type: ignore[arg-type]
    attacker.checkpoint()
    attacker.close()
    return tmp_path / "attacker.db"


def _edit(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for sql, args in statements:
            conn.execute(sql, args)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _chunk_of(path: Path, blob_key: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT chunk_key FROM blob_parts WHERE blob_key = ?", (blob_key,)).fetchone()[0]
    finally:
        conn.close()


def _key(value: object) -> str:
    return Store(":memory:").put_value(value).blob_key


def _bomb(claimed: int) -> bytes:
    """A small zstd frame whose header claims ``claimed`` bytes of zeros (it holds them)."""
    import zstandard

    packer = zstandard.ZstdCompressor(level=1).compressobj(size=claimed)
    zeros = bytes(16 * 1024 * 1024)
    out = [packer.compress(zeros) for _ in range(claimed // len(zeros))]
    return b"".join(out) + packer.flush()


def _assert_refused(victim: Path, attacker: Path, *expected: str) -> None:
    before = _dump(victim)
    store = Store(victim)
    with pytest.raises(NotAStoreError) as caught:
        store.merge_from(attacker)
    store.close()
    message = str(caught.value)
    assert "\n" not in message and "refusing" in message
    for text in expected:
        assert text in message
    assert _dump(victim) == before  # nothing written: every table as it was


# ------------------------------------------------------------ attack 2: claimed keys


TAMPERINGS = {
    # the chunk's bytes are another value of the same length: the classic plant
    "swapped bytes": lambda key, chunk: [("UPDATE blob_chunks SET data = ? WHERE chunk_key = ?", (b"0.0", chunk))],
    # the bytes are right but the blob lists a different (genuine) chunk
    "other chunk": lambda key, chunk: [
        ("INSERT INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data) VALUES (?, 'none', 3, 0, ?)",
         (hashlib.sha256(b"0.0").hexdigest(), b"0.0")),
        ("UPDATE blob_parts SET chunk_key = ? WHERE blob_key = ?", (hashlib.sha256(b"0.0").hexdigest(), key))],
    # sizes that do not add up
    "blob size": lambda key, chunk: [("UPDATE blobs SET size = 2 WHERE blob_key = ?", (key,))],
    "raw size": lambda key, chunk: [("UPDATE blob_chunks SET raw_size = 2 WHERE chunk_key = ?", (chunk,))],
    "chunk count": lambda key, chunk: [("UPDATE blobs SET n_chunks = 2 WHERE blob_key = ?", (key,))],
    # a chunk claiming 3 GiB, and a small zstd frame that says it holds 3 GiB
    "3 GiB raw size": lambda key, chunk: [
        ("UPDATE blob_chunks SET raw_size = ? WHERE chunk_key = ?", (3 * 2**30, chunk))],
    "zstd bomb": lambda key, chunk: [
        ("UPDATE blob_chunks SET compression = 'zstd', data = ? WHERE chunk_key = ?", (_bomb(2**28), chunk))],
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_merge_refuses_content_that_does_not_match_its_key(tmp_path: Path, tampering: str):
    victim = _victim(tmp_path)
    attacker = _attacker(tmp_path, model=4.0)
    key = _key(4.0)
    _edit(attacker, *TAMPERINGS[tampering](key, _chunk_of(attacker, key)))

    _assert_refused(victim, attacker, "F/1", key[:16])

    # The victim's own later save of 4.0 stores and reads genuine content.
    store = Store(victim)
    ref = store.put_value(4.0)
    assert ref.blob_key == key and store.load_value(ref.blob_key, ref.encoding) == 4.0
    assert store.doctor().ok


@pytest.mark.parametrize("tampering", ["none", "parts swapped", "part replaced"])
def test_merge_checks_a_value_keyed_by_its_chunk_list(tmp_path: Path, tampering: str):
    # A value of several chunks is keyed by its chunk list (#18, hash once): merge checks every
    # chunk against its key and the list against the blob key, without hashing the whole again.
    value, spare = os.urandom(40 << 20), os.urandom(8 << 20)  # 16 + 16 + 8 MiB; one 8 MiB chunk
    victim = _victim(tmp_path)
    attacker = _attacker(tmp_path, model=spare, result=value)
    key = _key(value)
    conn = sqlite3.connect(attacker)
    parts = [row[0] for row in conn.execute("SELECT chunk_key FROM blob_parts WHERE blob_key = ? ORDER BY seq",
                                            (key,))]
    conn.close()
    assert key.startswith("t") and len(parts) == 3
    if tampering == "none":
        store = Store(victim)
        assert store.merge_from(attacker).blobs >= 2
        assert store.load_value(key, "bytes") == value and store.rehash_problems() == []
        store.close()
        return
    if tampering == "parts swapped":
        _edit(attacker, ("UPDATE blob_parts SET chunk_key = CASE seq WHEN 0 THEN ? ELSE ? END"
                         " WHERE blob_key = ? AND seq < 2", (parts[1], parts[0], key)))
    else:  # the last 8 MiB part is another value's genuine 8 MiB chunk
        _edit(attacker, ("UPDATE blob_parts SET chunk_key = ? WHERE blob_key = ? AND seq = 2", (_key(spare), key)))
    _assert_refused(victim, attacker, "F/1", key[:16])


def test_merge_of_a_refused_file_is_one_line_on_the_command_line(tmp_path: Path):
    victim = _victim(tmp_path)
    attacker = _attacker(tmp_path, model=4.0)
    key = _key(4.0)
    _edit(attacker, *TAMPERINGS["swapped bytes"](key, _chunk_of(attacker, key)))
    before = _dump(victim)
    proc = subprocess.run([sys.executable, "-m", "runstore", "--db", str(victim), "merge", str(attacker)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "F/1" in lines[0] and key[:16] in lines[0]
    assert _dump(victim) == before


def test_merge_of_a_3_gib_zstd_frame_stays_within_a_memory_limit(tmp_path: Path):
    """The frame header claims 3 GiB; the merge runs under a 1 GiB address-space limit."""
    victim = _victim(tmp_path)
    attacker = _attacker(tmp_path, model=4.0)
    key = _key(4.0)
    _edit(attacker, ("UPDATE blob_chunks SET compression = 'zstd', data = ?, raw_size = 3 WHERE chunk_key = ?",
                     (_bomb(3 * 2**30), _chunk_of(attacker, key))))
    before = _dump(victim)
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "import runpy\n"
        "sys.argv = ['runstore', '--db', sys.argv[1], 'merge', sys.argv[2]]\n"
        "runpy.run_module('runstore', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(victim), str(attacker)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "MemoryError" not in proc.stderr and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match its key" in lines[0], proc.stderr
    assert _dump(victim) == before


def test_merge_refuses_a_planted_code_package(tmp_path: Path):
    """Code packages are deterministic, so their keys are predictable: plant other code under one.

    Had the merge copied it, the victim's own later ``deploy`` of ``Deployed`` would have
    found "its" package already stored and ``trigger`` would have run the attacker's code.
    """
    marker = tmp_path / "pwned"
    genuine = code_tarball("print('hello')\n", flow="Deployed")
    evil = code_tarball(f"open({str(marker)!r}, 'w').write('x')\n", flow="Deployed")
    code_key = hashlib.sha256(genuine).hexdigest()
    victim = _victim(tmp_path)
    attacker = _attacker(tmp_path, flow="Deployed")
    assert _chunk_of(attacker, code_key) == code_key  # one chunk: the whole tarball
    _edit(attacker, ("UPDATE blob_chunks SET compression = 'none', raw_size = ?, data = ? WHERE chunk_key = ?",
                     (len(evil), evil, code_key)))

    _assert_refused(victim, attacker, "Deployed/1", code_key[:16], "code package")

    store = Store(victim)
    code_id = store.add_code_package(genuine, "flow.py")
    stored = store.sql("SELECT blob_key FROM code_packages WHERE code_id = ?", (code_id,)).rows[0][0]
    assert stored == code_key and store.open_blob(stored).read() == genuine
    assert not marker.exists()


# ------------------------------------------------------------ attack 3: SQL in column names

INJECTIONS = [
    # an extra column whose name closes the column list and adds a statement
    'ALTER TABLE runs ADD COLUMN "uuid) SELECT 1 WHERE 0; UPDATE runs SET user_name = \'pwned\'; --"',
    # an upsert hidden in a column name of a table copied row by row: as a column list built
    # from the source's names, it rewrites every metadata row of the victim (it did on main)
    'ALTER TABLE metadata ADD COLUMN "rowid) SELECT task_id, attempt, name, ?, ?, ?, NULL*?*?*?*? FROM metadata'
    ' WHERE true ON CONFLICT DO UPDATE SET value = \'pwned\' --"',
    # one of our columns renamed to carry SQL: our column list no longer exists in the file
    'ALTER TABLE attempts RENAME COLUMN stdout TO "stdout) SELECT 1; UPDATE runs SET user_name = \'pwned\'; --"',
]


@pytest.mark.parametrize("statement", INJECTIONS)
def test_column_names_carrying_sql_are_never_used(tmp_path: Path, statement: str):
    victim = _victim(tmp_path)
    attacker = _attacker(tmp_path, user="mallory")
    _edit(attacker, (statement, ()))
    store = Store(victim)
    mine = store.sql("SELECT uuid, user_name, status, run_number FROM runs ORDER BY run_id").rows
    try:
        store.merge_from(attacker)
    except RunstoreError as exc:  # refused (here or, with the schema check, on open)
        assert "\n" not in str(exc)
    after = store.sql("SELECT uuid, user_name, status, run_number FROM runs ORDER BY run_id").rows
    assert after[:len(mine)] == mine  # the victim's runs unchanged
    assert all(row[1] == "mallory" for row in after[len(mine):])
    assert store.sql("SELECT count(*) FROM metadata WHERE value = 'pwned'").rows == [(0,)]
    assert store.sql("SELECT count(*) FROM runs WHERE user_name = 'pwned'").rows == [(0,)]
    assert store.doctor().ok


@pytest.mark.parametrize("column, value", [("uuid", "../../x"), ("uuid", "not-a-uuid"),
                                           ("source_store", "../etc/passwd")])
def test_uuids_from_the_source_are_validated(tmp_path: Path, column: str, value: str):
    victim = _victim(tmp_path)
    attacker = _attacker(tmp_path)
    _edit(attacker, (f"UPDATE runs SET {column} = ?", (value,)))
    _assert_refused(victim, attacker, "F/1", "is not a UUID")


def test_a_store_uuid_that_is_not_a_uuid_is_refused(tmp_path: Path):
    victim = _victim(tmp_path)
    attacker = _attacker(tmp_path)
    _edit(attacker, ("UPDATE store_info SET value = '../../x' WHERE key = 'uuid'", ()))
    _assert_refused(victim, attacker, "store UUID")


def test_a_flow_name_that_is_not_an_identifier_is_refused(tmp_path: Path):
    victim = _victim(tmp_path)
    attacker = _attacker(tmp_path)
    _edit(attacker, ("UPDATE flows SET name = '../../F'", ()))
    _assert_refused(victim, attacker, "invalid flow name")


# ------------------------------------------------------------ attack 6: running in 2100


def test_running_run_from_2100_arrives_crashed_and_gc_completes(tmp_path: Path):
    victim = _victim(tmp_path)
    attacker = _attacker(tmp_path, finish=False, user="mallory")
    # alive owner on this host (this very process) and a heartbeat in 2100
    _edit(attacker, ("UPDATE runs SET heartbeat_at = ?, created_at = ?, owner_host = ?, owner_pid = ?",
                     (YEAR_2100, YEAR_2100, hostname(), os.getpid())))
    store = Store(victim)
    garbage = store.put_value("nobody uses me").blob_key
    report = store.merge_from(attacker)
    assert report.copied == [("F/1", "F/2")]
    assert store.sql("SELECT status FROM runs_view WHERE pathspec = 'F/2'").rows == [("crashed",)]
    assert store.sql("SELECT owner_host, owner_pid, heartbeat_at < ? FROM runs WHERE run_number = 2 AND flow_id = 1",
                     (time.time(),)).rows == [(None, None, 1)]
    from runstore import Run, namespace

    namespace(None)
    assert Run("F/2", store=store).status == "crashed"
    gc = subprocess.run([sys.executable, "-m", "runstore", "--db", str(victim), "gc"],
                        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert gc.returncode == 0, gc.stderr
    assert store.sql("SELECT count(*) FROM blobs WHERE blob_key = ?", (garbage,)).rows == [(0,)]
    assert store.delete_runs(["F/2"]) == ["F/2"]


def test_a_heartbeat_in_2100_edited_into_the_store_does_not_hold_gc(tmp_path: Path):
    """A co-writer edits a run of the victim's own file: it reads crashed, gc collects, delete works."""
    store = Store(tmp_path / "victim.db")
    run = add_run(store, finish=False)
    with store.write() as conn:
        conn.execute("UPDATE runs SET heartbeat_at = ?, owner_host = ?, owner_pid = ? WHERE run_id = ?",
                     (YEAR_2100, hostname(), os.getpid(), run["run_id"]))
    garbage = store.put_value("nobody uses me").blob_key
    assert store.sql("SELECT count(*) FROM blobs WHERE blob_key = ?", (garbage,)).rows == [(1,)]
    assert store.gc().blobs >= 1
    assert store.sql("SELECT count(*) FROM blobs WHERE blob_key = ?", (garbage,)).rows == [(0,)]
    assert store.delete_runs([run["pathspec"]]) == [run["pathspec"]]


def test_delete_force_removes_a_run_that_still_looks_running(tmp_path: Path):
    store = Store(tmp_path / "s.db")
    run = add_run(store, finish=False)
    with store.write() as conn:  # a fresh heartbeat from a live process on this host: it looks running
        conn.execute("UPDATE runs SET heartbeat_at = ?, owner_host = ?, owner_pid = ? WHERE run_id = ?",
                     (time.time(), hostname(), os.getpid(), run["run_id"]))
    with pytest.raises(StoreError, match="still running.*--force"):
        store.delete_runs([run["pathspec"]])
    proc = subprocess.run([sys.executable, "-m", "runstore", "--db", str(tmp_path / "s.db"), "delete", "--yes",
                           run["pathspec"]], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run([sys.executable, "-m", "runstore", "--db", str(tmp_path / "s.db"), "delete", "--yes",
                           "--force", run["pathspec"]], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert store.sql("SELECT count(*) FROM runs").rows == [(0,)]


# ------------------------------------------------------------ attack 7 (export's half): temp files


def test_export_ignores_a_planted_temp_file(tmp_path: Path):
    source = Store(tmp_path / "mine.db")
    add_run(source, alpha=0.3)
    out = tmp_path / "out.db"
    # the old, predictable name: .OUT.PID.tmp, holding an attacker's store with a run
    planted = tmp_path / f".out.db.{os.getpid()}.tmp"
    evil = Store(planted)
    add_run(evil, "Evil")
    evil.checkpoint()
    evil.close()
    planted_bytes = planted.read_bytes()
    report = source.export_runs(["F"], out)
    assert report.target == str(out)
    exported = Store(out)
    assert exported.sql("SELECT pathspec FROM runs_view").rows == [("F/1",)]
    assert planted.read_bytes() == planted_bytes  # never opened for writing, never removed
    exported.close()
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == [planted.name] + (
        [f"{planted.name}-wal"] if Path(f"{planted}-wal").exists() else [])


def test_export_errors_name_the_output_and_leave_nothing(tmp_path: Path):
    source = Store(tmp_path / "mine.db")
    add_run(source)
    source.checkpoint()
    _edit(tmp_path / "mine.db", ("UPDATE blob_chunks SET data = zeroblob(length(data))", ()))
    source = Store(tmp_path / "mine.db")
    out = tmp_path / "out.db"
    with pytest.raises(NotAStoreError) as caught:
        source.export_runs(["F/1"], out)
    assert ".tmp" not in str(caught.value) and "\n" not in str(caught.value)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_export_killed_then_again_leaves_nothing(tmp_path: Path):
    """kill -9 in the middle of a big export; the next export works and tidies the scratch dir."""
    store = Store(tmp_path / "big.db")
    for i in range(6):
        add_run(store, model=os.urandom(24 * 1024 * 1024))
    store.checkpoint()
    store.close()
    before = {p.name for p in tmp_path.iterdir()}
    out = tmp_path / "out.db"
    proc = subprocess.Popen([sys.executable, "-m", "runstore", "--db", str(tmp_path / "big.db"), "export", "F",
                             "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    deadline = time.monotonic() + 60
    scratch: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        scratch = [p for p in tmp_path.iterdir() if p.name.startswith(".out.db.")]
        wal = [w for d in scratch for w in d.glob("*-wal")]
        if wal and wal[0].stat().st_size > 8 * 1024 * 1024:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the export ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists()
    assert scratch and all(d.is_dir() for d in scratch)  # the documented leftover: a private directory

    again = subprocess.run([sys.executable, "-m", "runstore", "--db", str(tmp_path / "big.db"), "export", "F",
                            "-o", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    # (the source's own -wal/-shm are the read-only opening's business, not export's)
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith("big.db")} == (
        {n for n in before if not n.startswith("big.db")} | {"out.db"})
    assert Store(out).sql("SELECT count(*) FROM runs").rows == [(6,)]


def test_export_error_from_a_full_disk_names_the_output(tmp_path: Path):
    """Issue #19: the file-size limit is hit while building the export in its private
    scratch directory; the one-line error names the output asked for, not the temp file."""
    source = Store(tmp_path / "mine.db")
    add_run(source, model=os.urandom(3 * 1024 * 1024))
    source.close()
    out = tmp_path / "out.db"
    child = ("import resource, signal\n"
             "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
             "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
             "from runstore.cli import cli\n"
             f"cli(['--db', {str(tmp_path / 'mine.db')!r}, 'export', 'F/1', '--output', {str(out)!r}])\n")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 1
    error = done.stderr.strip()
    assert error.startswith(f"Error: {out}:") and "\n" not in error
    assert ".tmp" not in error and "Traceback" not in error
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_merge_copes_with_a_hostile_origin_task_id(tmp_path: Path):
    """A source whose metadata says origin-task-id is "²" ("²".isdigit() is true, int("²")
    fails) is merged with the value kept as text, not a ValueError traceback."""
    theirs = Store(tmp_path / "theirs.db")
    add_run(theirs)
    theirs.close()
    _edit(tmp_path / "theirs.db",
          ("INSERT OR REPLACE INTO metadata(task_id, attempt, name, value, type, created_at)"
           " SELECT task_id, 0, 'origin-task-id', '\u00b2', 'origin', 0 FROM tasks LIMIT 1", ()))
    mine = Store(tmp_path / "mine.db")
    assert len(mine.merge_from(tmp_path / "theirs.db").copied) == 1
    assert mine.sql("SELECT value FROM metadata WHERE name = 'origin-task-id'").rows == [("\u00b2",)]
