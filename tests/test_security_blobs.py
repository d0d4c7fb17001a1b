"""Attacks on stored values (SPEC §13.1, the size bounds of §13.3, and §13.8's re-hash).

Every hostile file here is built the way an attacker would: runstore writes a normal
store, then the file is edited with the ``sqlite3`` module. The safe outcome is
asserted: no marker file from attacker code, a one-line error, bounded memory
(under ``RLIMIT_AS`` in a child process), the victim's own values unchanged.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import zstandard

from runstore import Store
from runstore.codecs import CHUNK_SIZE, decompress_chunk
from runstore.errors import CodecError, StoreError, UntrustedArtifact
from runstore.store import _blobs

from storefill import add_run, code_tarball

GiB = 1 << 30
FLOW = Path(__file__).parent / "flows" / "resume_flow.py"


def evil_pickle(marker: Path, size: int | None = None) -> bytes:
    """A pickle that writes ``marker`` when loaded, padded to ``size`` (pickle stops at STOP)."""
    data = (b"\x80\x04cbuiltins\nexec\n(Vimport pathlib; pathlib.Path(" + repr(str(marker)).encode()
            + b").write_text('pwned')\ntR.")
    return data if size is None else data + b"\0" * (size - len(data))


def artifact_key(db: Path, name: str, step: str = "start") -> tuple[str, str]:
    with sqlite3.connect(db) as raw:
        return raw.execute("SELECT a.blob_key, a.encoding FROM artifacts a"
                           " JOIN tasks t ON t.task_id = a.task_id JOIN steps s ON s.step_id = t.step_id"
                           " WHERE a.name = ? AND s.name = ?",
                           (name, step)).fetchone()


def one_chunk(db: Path, blob_key: str) -> tuple[int, str, str, int]:
    with sqlite3.connect(db) as raw:
        return raw.execute("SELECT c.chunk_id, c.chunk_key, c.compression, c.raw_size FROM blob_parts p"
                           " JOIN blob_chunks c ON c.chunk_key = p.chunk_key WHERE p.blob_key = ?",
                           (blob_key,)).fetchone()


def edit(db: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    raw = sqlite3.connect(db)
    with raw:
        for sql, args in statements:
            raw.execute(sql, args)
    raw.close()


def run_limited(args: list[str], tmp_path: Path, limit: int = GiB,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a child under an address-space limit (memory claims are tested, not trusted)."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env,
                          preexec_fn=cap)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


# ------------------------------------------------------------------ 1. check one read, decode another

@pytest.fixture
def trusted_big_pickle(tmp_path: Path) -> tuple[Path, str, Any]:
    """The reader's own store with a trusted pickle of one uncompressed 6 MiB chunk (not inline)."""
    # a deque is not on the safe codec's allow-list: cloudpickle; random: stored uncompressed, read with blob I/O
    value = collections.deque([os.urandom(6 << 20)])
    db = tmp_path / "mine.db"
    store = Store(db)
    add_run(store, model=value)
    store.close()
    key, encoding = artifact_key(db, "model")
    assert encoding == "pickle"
    return db, key, value


@pytest.mark.parametrize("order", ["genuine-first", "malicious-first"])
def test_chunk_read_twice_returns_other_bytes_but_only_one_read_is_decoded(
        trusted_big_pickle: tuple[Path, str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        order: str) -> None:
    # The low-level read answers genuine bytes the first time a piece is read and an
    # attacker's pickle after (or the other way round), like a VIEW picking at random.
    db, key, value = trusted_big_pickle
    marker = tmp_path / "PWNED"
    chunk_id, _, compression, raw_size = one_chunk(db, key)
    assert compression == "none" and raw_size > _blobs._BLOB_IO_MIN
    with sqlite3.connect(db) as raw:
        genuine = raw.execute("SELECT data FROM blob_chunks WHERE chunk_id = ?", (chunk_id,)).fetchone()[0]
    evil = evil_pickle(marker, raw_size)
    reads: dict[int, int] = {}

    def two_faced(conn: sqlite3.Connection, cid: int, offset: int, n: int) -> Iterator[bytes]:
        # the pieces of one read, each answered genuine or hostile by how often it was read
        for start in range(offset, offset + n, _blobs._IO_PIECE):
            reads[start] = reads.get(start, 0) + 1
            first = reads[start] == 1
            source = genuine if first == (order == "genuine-first") else evil
            yield source[start:min(start + _blobs._IO_PIECE, offset + n)]

    monkeypatch.setattr(_blobs, "_fetch_pieces", two_faced)
    store = Store(db)
    for _ in range(3):
        reads.clear()
        if order == "genuine-first":
            assert store.load_value(key, "pickle") == value
        else:
            with pytest.raises(UntrustedArtifact, match="altered"):
                store.load_value(key, "pickle")
        assert reads and set(reads.values()) == {1}  # every stored byte read exactly once
    assert not marker.exists()
    store.close()


def test_compressed_chunk_read_twice_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = collections.deque(["abc" * (1 << 20), 1])  # cloudpickled; compressible: one zstd chunk, read whole
    db = tmp_path / "mine.db"
    store = Store(db)
    add_run(store, model=value)
    store.close()
    key, encoding = artifact_key(db, "model")
    chunk_id, _, compression, raw_size = one_chunk(db, key)
    assert encoding == "pickle" and compression == "zstd"
    marker = tmp_path / "PWNED"
    evil = zstandard.ZstdCompressor().compress(evil_pickle(marker, raw_size))
    real = _blobs._fetch_chunk
    calls: list[int] = []

    def two_faced(conn: sqlite3.Connection, cid: int) -> bytes | None:
        calls.append(cid)
        return real(conn, cid) if len(calls) == 1 else evil

    monkeypatch.setattr(_blobs, "_fetch_chunk", two_faced)
    store = Store(db)
    assert store.load_value(key, "pickle") == value
    assert calls == [chunk_id] and not marker.exists()
    store.close()


FLIPPER = textwrap.dedent("""
    import sqlite3, sys, time
    db, chunk_id, genuine, evil, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    import pathlib
    genuine, evil = pathlib.Path(genuine).read_bytes(), pathlib.Path(evil).read_bytes()
    conn = sqlite3.connect(db, isolation_level=None, timeout=60)
    conn.execute("PRAGMA busy_timeout = 60000")
    i = 0
    while not pathlib.Path(stop).exists():
        conn.execute("UPDATE blob_chunks SET data = ? WHERE chunk_id = ?",
                     (evil if i % 2 else genuine, chunk_id))
        i += 1
        time.sleep(0.001)
    print(i)
""")


def test_co_writer_flipping_a_chunk_during_loads_never_runs_code(
        trusted_big_pickle: tuple[Path, str, Any], tmp_path: Path) -> None:
    # A real second process rewrites the chunk in a loop, genuine / malicious, while the
    # victim loads the value again and again: every load is the genuine value or a refusal.
    db, key, value = trusted_big_pickle
    marker = tmp_path / "PWNED"
    chunk_id, _, _, raw_size = one_chunk(db, key)
    with sqlite3.connect(db) as raw:
        (tmp_path / "genuine").write_bytes(raw.execute("SELECT data FROM blob_chunks WHERE chunk_id = ?",
                                                       (chunk_id,)).fetchone()[0])
    (tmp_path / "evil").write_bytes(evil_pickle(marker, raw_size))
    stop = tmp_path / "stop"
    flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(db), str(chunk_id),
                                str(tmp_path / "genuine"), str(tmp_path / "evil"), str(stop)],
                               stdout=subprocess.PIPE, text=True)
    store = Store(db)
    outcomes = {"genuine": 0, "refused": 0}
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and (min(outcomes.values()) < 3 or sum(outcomes.values()) < 40):
            try:
                assert store.load_value(key, "pickle") == value
                outcomes["genuine"] += 1
            except UntrustedArtifact:
                outcomes["refused"] += 1
            assert not marker.exists()
    finally:
        stop.touch()
        flips = int(flipper.communicate(timeout=60)[0])
        store.close()
    assert flips >= 2
    assert outcomes["genuine"] and outcomes["refused"], outcomes  # the race was really on
    assert not marker.exists()


# ------------------------------------------------------------------ 3. size bounds

@pytest.fixture(scope="module")
def zstd_bomb() -> bytes:
    """3 GiB of zeros as one ~100 KB zstd frame that announces its 3 GiB."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj(size=3 * GiB)
    zeros = bytes(16 << 20)
    return b"".join([*(compressor.compress(zeros) for _ in range(192)), compressor.flush()])


LOAD_SCRIPT = textwrap.dedent("""
    import sys
    from runstore import Run, Store, namespace
    from runstore.errors import RunstoreError
    namespace(None)
    try:
        value = Run(sys.argv[1], store=Store(sys.argv[2])).data.alpha
    except RunstoreError as exc:
        print(f"{type(exc).__name__}: {exc}")
        sys.exit(3)
    print("loaded", type(value).__name__)
""")


def _bombed_store(tmp_path: Path, zstd_bomb: bytes, *, raw_size: int) -> tuple[Path, str, str]:
    db = tmp_path / "bomb.db"
    store = Store(db)
    ids = add_run(store)
    store.close()
    key, encoding = artifact_key(db, "alpha", "end")
    assert encoding == "json"
    edit(db, ("UPDATE blob_chunks SET data = ?, compression = 'zstd', raw_size = ? WHERE chunk_key = ?",
              (zstd_bomb, raw_size, key)),
         ("UPDATE blobs SET size = ? WHERE blob_key = ?", (raw_size, key)))  # artifacts row still says 3 B
    assert db.stat().st_size < 400_000
    return db, ids["pathspec"], f"{ids['pathspec']}/end/{ids['tasks']['end']}"


@pytest.mark.parametrize("raw_size", [3 * GiB, 3], ids=["claims-3GiB", "frame-announces-3GiB"])
def test_chunk_inflating_to_3_gib_is_refused_in_bounded_memory(tmp_path: Path, zstd_bomb: bytes,
                                                               raw_size: int) -> None:
    db, pathspec, task = _bombed_store(tmp_path, zstd_bomb, raw_size=raw_size)
    for args in (["show", pathspec], ["show", pathspec, "--json"], ["show", task]):
        shown = run_limited([sys.executable, "-m", "runstore", "--db", str(db), *args], tmp_path)
        assert_one_line_error(shown, "damaged")
    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT)
    loaded = run_limited([sys.executable, str(script), pathspec, str(db)], tmp_path)
    assert loaded.returncode == 3 and "Traceback" not in loaded.stderr, (loaded.stdout, loaded.stderr)
    assert loaded.stdout.startswith("StoreError: ") and "damaged" in loaded.stdout
    with pytest.raises(StoreError, match="damaged"):
        Store(db).value_size(artifact_key(db, "alpha", "end")[0])


def test_3_gib_value_in_well_formed_chunks_is_listed_not_previewed(tmp_path: Path) -> None:
    # 192 parts all pointing at one 16 MiB chunk of zeros (a few hundred bytes compressed):
    # a structurally valid 3 GiB JSON value whose artifact row claims 3 bytes.
    db = tmp_path / "big.db"
    store = Store(db)
    ids = add_run(store)
    store.close()
    key, _ = artifact_key(db, "alpha", "end")
    zeros = bytes(CHUNK_SIZE)
    zkey = hashlib.sha256(zeros).hexdigest()
    edit(db, ("INSERT INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data)"
              " VALUES (?, 'zstd', ?, 0, ?)", (zkey, CHUNK_SIZE, zstandard.ZstdCompressor().compress(zeros))),
         ("DELETE FROM blob_parts WHERE blob_key = ?", (key,)),
         ("UPDATE blobs SET size = ?, n_chunks = 192 WHERE blob_key = ?", (192 * CHUNK_SIZE, key)),
         *((f"INSERT INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, {seq}, ?)", (key, zkey))
           for seq in range(192)))
    shown = run_limited([sys.executable, "-m", "runstore", "--db", str(db), "show",
                         f"{ids['pathspec']}/end/{ids['tasks']['end']}"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"alpha\s.*<float, 3221225472 B>", shown.stdout), shown.stdout
    dumped = run_limited([sys.executable, "-m", "runstore", "--db", str(db), "show", ids["pathspec"]],
                         tmp_path)
    assert dumped.returncode == 0 and "3221225472 B" in dumped.stdout, dumped.stderr


def test_parts_not_adding_up_to_the_blob_size_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "parts.db"
    store = Store(db)
    ids = add_run(store, result=os.urandom(1000))  # bytes, stored uncompressed
    store.close()
    key, _ = artifact_key(db, "result", "end")
    edit(db, ("UPDATE blobs SET size = size + 1000 WHERE blob_key = ?", (key,)))
    with pytest.raises(StoreError, match=r"add up to 1000 bytes, not the 2000 recorded"):
        Store(db).load_value(key, "bytes")
    shown = subprocess.run([sys.executable, "-m", "runstore", "--db", str(db), "show",
                            f"{ids['pathspec']}/end/{ids['tasks']['end']}"],
                           capture_output=True, text=True, timeout=60)
    assert_one_line_error(shown, "damaged", "add up to")
    # a chunk storing fewer bytes than it claims (uncompressed): also refused before reading
    edit(db, ("UPDATE blobs SET size = size - 1000 WHERE blob_key = ?", (key,)),
         ("UPDATE blob_chunks SET data = substr(data, 1, 10) WHERE chunk_key = ?", (key,)))
    with pytest.raises(StoreError, match="stores 10 bytes for 1000"):
        Store(db).load_value(key, "bytes")


def test_decompression_is_capped_without_a_size_in_the_frame() -> None:
    compressor = zstandard.ZstdCompressor().compressobj()  # no content size in the header
    bomb = compressor.compress(bytes(64 << 20)) + compressor.flush()
    assert zstandard.frame_content_size(bomb) == -1
    with pytest.raises(CodecError):
        decompress_chunk("zstd", bomb, 1000)
    with pytest.raises(CodecError, match="at most"):
        decompress_chunk("zstd", bomb, CHUNK_SIZE + 1)
    with pytest.raises(CodecError):
        decompress_chunk("zstd", b"not zstd at all", 100)


def test_npy_header_claiming_more_than_the_value_holds_is_refused(tmp_path: Path) -> None:
    import numpy as np
    from numpy.lib import format as npformat

    store = Store(tmp_path / "npy.db")
    ref = store.put_value(np.arange(4))
    # A self-consistent blob (its key is its hash) whose header claims 8 TB.
    out = io.BytesIO()
    npformat.write_array_header_1_0(out, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    hostile = out.getvalue()
    store.close()
    key = hashlib.sha256(hostile).hexdigest()
    edit(tmp_path / "npy.db",
         ("INSERT INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data)"
          " VALUES (?, 'none', ?, 0, ?)",
          (key, len(hostile), hostile)),
         ("INSERT INTO blobs(blob_key, size, n_chunks, created_at) VALUES (?, ?, 1, 0)", (key, len(hostile))),
         ("INSERT INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, 0, ?)", (key, key)))
    store = Store(tmp_path / "npy.db")
    with pytest.raises(CodecError, match="claims 8000000000000 bytes"):
        store.load_value(key, "npy")
    assert list(store.load_value(ref.blob_key, "npy")) == [0, 1, 2, 3]


def test_altered_safe_values_are_refused_too(tmp_path: Path) -> None:
    # json / bytes / npy cannot run code, but a value that is not what its key says is
    # not returned either: the bytes are hashed as they are decoded.
    db = tmp_path / "safe.db"
    store = Store(db)
    ref = store.put_value(b"x" * (3 << 20))  # compressible: one zstd chunk
    store.close()
    other = zstandard.ZstdCompressor().compress(b"y" * (3 << 20))
    edit(db, ("UPDATE blob_chunks SET data = ? WHERE chunk_key = ?", (other, ref.blob_key)))
    with pytest.raises(UntrustedArtifact, match="altered"):
        Store(db).load_value(ref.blob_key, "bytes")
    with pytest.raises(UntrustedArtifact, match="altered"):
        Store(db).open_blob(ref.blob_key).read()


# ------------------------------------------------------------------ code packages before trigger

def _as(name: str, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / f"home-{name}"
    return {**os.environ, "RUNSTORE_USER": name, "HOME": str(home), "RUNSTORE_HOME": str(home / ".runstore")}


def test_planted_code_package_is_refused_by_trigger(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    script = project / "resume_flow.py"
    shutil.copy(FLOW, script)
    db = tmp_path / "runstore.db"
    anne = _as("anne", tmp_path)
    deployed = subprocess.run([sys.executable, str(script), "--db", str(db), "deploy"], capture_output=True,
                              text=True, env=anne, timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    # A co-writer swaps the deployed package's bytes for a flow that writes a marker, keeping the key.
    marker = tmp_path / "PWNED"
    evil = code_tarball(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\n"
                        + FLOW.read_text(), script="resume_flow.py", flow="ResumeFlow")
    with sqlite3.connect(db) as raw:
        (key,) = raw.execute("SELECT c.blob_key FROM deployments d JOIN code_packages c"
                             " ON c.code_id = d.code_id").fetchone()
    edit(db, ("UPDATE blob_chunks SET data = ?, compression = 'none', raw_size = ? WHERE chunk_key ="
              " (SELECT chunk_key FROM blob_parts WHERE blob_key = ?)", (evil, len(evil), key)),
         ("UPDATE blobs SET size = ? WHERE blob_key = ?", (len(evil), key)))
    before = Store(db).sql("SELECT count(*) FROM runs").rows
    triggered = subprocess.run([sys.executable, str(script), "--db", str(db), "trigger"], capture_output=True,
                               text=True, env=anne, timeout=120)
    assert_one_line_error(triggered, "altered")
    assert not marker.exists()
    assert Store(db).sql("SELECT count(*) FROM runs").rows == before
    with pytest.raises(UntrustedArtifact):  # the library call behind it (and behind Run.code)
        Store(db).load_value(key, "bytes", check_chunks=True)


# ------------------------------------------------------------------ 8. doctor --deep

def test_doctor_deep_names_each_altered_chunk_and_blob_with_its_users(tmp_path: Path) -> None:
    db = tmp_path / "doc.db"
    store = Store(db)
    ids = add_run(store, result=os.urandom(40 << 20))  # 3 chunks: 16 + 16 + 8 MiB
    store.close()
    clean = subprocess.run([sys.executable, "-m", "runstore", "--db", str(db), "doctor", "--deep"],
                           capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0 and clean.stdout.strip().endswith("ok"), clean.stdout + clean.stderr

    x_key, _ = artifact_key(db, "x")
    big_key, _ = artifact_key(db, "result", "end")
    with sqlite3.connect(db) as raw:
        chunks = raw.execute("SELECT seq, chunk_key FROM blob_parts WHERE blob_key = ? ORDER BY seq",
                             (big_key,)).fetchall()
    assert len(chunks) == 3
    # one small chunk edited by hand (same size), and the big blob's first two parts swapped
    edit(db, ("UPDATE blob_chunks SET data = CAST(replace(CAST(data AS TEXT), '3', '4') AS BLOB)"
              " WHERE chunk_key = ?", (x_key,)),
         ("UPDATE blob_parts SET chunk_key = CASE seq WHEN 0 THEN ? ELSE ? END"
          " WHERE blob_key = ? AND seq < 2",
          (chunks[1][1], chunks[0][1], big_key)))
    plain = subprocess.run([sys.executable, "-m", "runstore", "--db", str(db), "doctor"],
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0  # the plain check does not read the values
    deep = subprocess.run([sys.executable, "-m", "runstore", "--db", str(db), "doctor", "--deep"],
                          capture_output=True, text=True, timeout=120)
    assert deep.returncode == 1, deep.stdout + deep.stderr
    problems = [line for line in deep.stdout.splitlines() if line.startswith("PROBLEM:")]
    assert len(problems) == 2, deep.stdout
    start = f"{ids['pathspec']}/start/{ids['tasks']['start']}"
    end = f"{ids['pathspec']}/end/{ids['tasks']['end']}"
    assert any(f"chunk {x_key[:16]}" in p and "do not hash to its key" in p and f"{start}.x" in p
               for p in problems)
    assert any(f"blob {big_key[:16]}" in p and "do not hash to its key" in p and f"{end}.result" in p
               for p in problems)
    report = Store(db).doctor(deep=True)
    assert not report.ok and len(report.problems) == 2


def test_doctor_deep_reports_chunks_beyond_the_bounds(tmp_path: Path, zstd_bomb: bytes) -> None:
    db, pathspec, _ = _bombed_store(tmp_path, zstd_bomb, raw_size=3 * GiB)
    deep = run_limited([sys.executable, "-m", "runstore", "--db", str(db), "doctor", "--deep"], tmp_path)
    assert deep.returncode == 1 and "Traceback" not in deep.stderr, deep.stderr
    problems = [line for line in deep.stdout.splitlines() if line.startswith("PROBLEM:")]
    assert problems and all("claims 3221225472 bytes" in p for p in problems), deep.stdout
    assert any(f"{pathspec}/end/" in p and ".alpha" in p for p in problems), deep.stdout


def test_rehash_reads_one_chunk_at_a_time(tmp_path: Path) -> None:
    # Bounded memory: doctor --deep on a 100 MiB value stays well under twice a chunk above start.
    db = tmp_path / "mem.db"
    store = Store(db)
    store.put_value(os.urandom(100 << 20))
    store.close()
    deep = run_limited([sys.executable, "-c", "import sys; from runstore import Store;"
                        " r = Store(sys.argv[1]).doctor(deep=True); sys.exit(0 if r.ok else 1)", str(db)],
                       tmp_path, limit=GiB // 2 + (1 << 27))
    assert deep.returncode == 0, deep.stderr


def test_check_chunks_refuses_a_chunk_under_another_key(tmp_path: Path) -> None:
    # A self-consistent value (its bytes hash to its key) built from a chunk filed under
    # someone else's chunk key: harmless to load, but a later save of the value owning
    # that key would reuse it. Code is decoded with check_chunks; doctor --deep names it.
    db = tmp_path / "label.db"
    Store(db).close()
    one, two = b"a" * 100, b"b" * 100
    blob_key = hashlib.sha256(one + two).hexdigest()
    stolen = hashlib.sha256(b"the key of another value").hexdigest()
    edit(db, *(("INSERT INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data)"
                " VALUES (?, 'none', 100, 0, ?)", (key, data))
               for key, data in ((hashlib.sha256(one).hexdigest(), one), (stolen, two))),
         ("INSERT INTO blobs(blob_key, size, n_chunks, created_at) VALUES (?, 200, 2, 0)", (blob_key,)),
         ("INSERT INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, 0, ?)",
          (blob_key, hashlib.sha256(one).hexdigest())),
         ("INSERT INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, 1, ?)", (blob_key, stolen)))
    store = Store(db)
    assert store.load_value(blob_key, "bytes") == one + two
    with pytest.raises(UntrustedArtifact, match="altered"):
        store.load_value(blob_key, "bytes", check_chunks=True)
    problems = store.rehash_problems()
    assert len(problems) == 1 and f"chunk {stolen[:16]}" in problems[0], problems


# ------------------------------------------------------------------ hash once (#18): chunk-list keys
# A value of several chunks is keyed by its size and chunk keys (codecs.chunk_list_key), so its
# bytes are hashed once, chunk by chunk; values stored before keep their sha256-of-all-bytes key.

def _parts(db: Path, blob_key: str) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as raw:
        return raw.execute("SELECT seq, chunk_key FROM blob_parts WHERE blob_key = ? ORDER BY seq",
                           (blob_key,)).fetchall()


@pytest.mark.parametrize("order", ["genuine-first", "malicious-first"])
def test_a_chunk_list_keyed_pickle_read_twice_is_checked_chunk_by_chunk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, order: str) -> None:
    # As test_chunk_read_twice_...: but a trusted pickle of two chunks (16 MiB + ~4 MiB), whose
    # key is derived from its chunk keys: the second chunk answers an attacker's pickle on one read.
    value = collections.deque([os.urandom(20 << 20)])  # a deque is never safepickle: a real pickle
    db = tmp_path / "mine.db"
    store = Store(db)
    add_run(store, model=value)
    store.close()
    key, encoding = artifact_key(db, "model")
    assert encoding == "pickle" and key.startswith("t") and len(_parts(db, key)) == 2
    with sqlite3.connect(db) as raw:
        chunk_id, genuine = raw.execute(
            "SELECT c.chunk_id, c.data FROM blob_parts p JOIN blob_chunks c ON c.chunk_key = p.chunk_key"
            " WHERE p.blob_key = ? AND p.seq = 0", (key,)).fetchone()
    marker = tmp_path / "PWNED"
    evil = evil_pickle(marker, len(genuine))
    reads: dict[tuple[int, int], int] = {}
    real_fetch = _blobs._fetch_pieces

    def two_faced(conn: sqlite3.Connection, cid: int, offset: int, n: int) -> Iterator[bytes]:
        pos = offset
        for piece in real_fetch(conn, cid, offset, n):
            reads[cid, pos] = reads.get((cid, pos), 0) + 1
            if cid == chunk_id:
                first = reads[cid, pos] == 1
                source = genuine if first == (order == "genuine-first") else evil
                piece = source[pos:pos + len(piece)]
            yield piece
            pos += len(piece)

    monkeypatch.setattr(_blobs, "_fetch_pieces", two_faced)
    store = Store(db)
    for _ in range(2):
        reads.clear()
        if order == "genuine-first":
            assert store.load_value(key, "pickle") == value
        else:
            with pytest.raises(UntrustedArtifact, match="altered"):
                store.load_value(key, "pickle")
        assert reads and set(reads.values()) == {1}  # every stored byte read exactly once
    assert not marker.exists()
    store.close()


def test_a_chunk_list_key_refuses_its_chunks_swapped_or_replaced(tmp_path: Path) -> None:
    db = tmp_path / "list.db"
    store = Store(db)
    value, other = os.urandom(40 << 20), os.urandom(8 << 20)  # 16 + 16 + 8 MiB; one 8 MiB chunk
    ref, spare = store.put_value(value), store.put_value(other)
    store.close()
    parts = _parts(db, ref.blob_key)
    assert ref.blob_key.startswith("t") and len(parts) == 3 and not spare.blob_key.startswith("t")
    # the genuine chunks in another order: every chunk still hashes to its key, the list does not
    edit(db, ("UPDATE blob_parts SET chunk_key = CASE seq WHEN 0 THEN ? ELSE ? END"
              " WHERE blob_key = ? AND seq < 2", (parts[1][1], parts[0][1], ref.blob_key)))
    store = Store(db)
    for check_chunks in (False, True):
        with pytest.raises(UntrustedArtifact, match="altered"):
            store.load_value(ref.blob_key, "bytes", check_chunks=check_chunks)
    assert [p for p in store.rehash_problems() if f"blob {ref.blob_key[:16]}" in p]
    store.close()
    # back in order, and the last 8 MiB part swapped for another value's genuine 8 MiB chunk
    edit(db, ("UPDATE blob_parts SET chunk_key = CASE seq WHEN 0 THEN ? ELSE ? END"
              " WHERE blob_key = ? AND seq < 2", (parts[0][1], parts[1][1], ref.blob_key)),
         ("UPDATE blob_parts SET chunk_key = ? WHERE blob_key = ? AND seq = 2", (spare.blob_key, ref.blob_key)))
    store = Store(db)
    with pytest.raises(UntrustedArtifact, match="altered"):
        store.load_value(ref.blob_key, "bytes")
    problems = store.rehash_problems()
    assert len(problems) == 1 and f"blob {ref.blob_key[:16]}" in problems[0], problems
    assert store.load_value(spare.blob_key, "bytes") == other  # the victim's other value unchanged
    store.close()
    # and the original list back: loads, and doctor --deep is clean again
    edit(db, ("UPDATE blob_parts SET chunk_key = ? WHERE blob_key = ? AND seq = 2", (parts[2][1], ref.blob_key)))
    store = Store(db)
    assert store.load_value(ref.blob_key, "bytes") == value and store.rehash_problems() == []
    store.close()


def test_values_stored_before_chunk_list_keys_still_load_and_are_checked(tmp_path: Path) -> None:
    # A value of several chunks written before #18 is keyed by the sha256 of all its bytes.
    # Built by hand: the same rows under that key (what an older runstore wrote).
    db = tmp_path / "old.db"
    store = Store(db)
    value = os.urandom(40 << 20)
    new = store.put_value(value)
    store.close()
    old_key = hashlib.sha256(value).hexdigest()
    parts = _parts(db, new.blob_key)
    edit(db, ("INSERT INTO blobs(blob_key, size, n_chunks, created_at) VALUES (?, ?, 3, 0)", (old_key, len(value))),
         *(("INSERT INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, ?, ?)", (old_key, seq, chunk))
           for seq, chunk in parts))
    store = Store(db)
    assert store.load_value(old_key, "bytes") == value
    assert store.load_value(old_key, "bytes", check_chunks=True) == value
    assert store.rehash_problems() == []
    target = Store(tmp_path / "copy.db")  # merge re-hashes an old key the old way
    ids = add_run(store, result=value)
    store.close()
    with sqlite3.connect(db) as raw:  # the run's artifact now names the old key
        raw.execute("UPDATE artifacts SET blob_key = ? WHERE blob_key = ?", (old_key, new.blob_key))
    report = target.merge_from(db)
    assert [source for source, _ in report.copied] == [ids["pathspec"]] and report.blobs >= 1
    assert target.load_value(old_key, "bytes") == value
    target.close()
    # its first two parts swapped: each chunk genuine, the whole not
    edit(db, ("UPDATE blob_parts SET chunk_key = CASE seq WHEN 0 THEN ? ELSE ? END"
              " WHERE blob_key = ? AND seq < 2", (parts[1][1], parts[0][1], old_key)))
    store = Store(db)
    with pytest.raises(UntrustedArtifact, match="altered"):
        store.load_value(old_key, "bytes")
    problems = store.rehash_problems()
    assert len(problems) == 1 and f"blob {old_key[:16]}" in problems[0], problems
    store.close()
