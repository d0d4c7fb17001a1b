"""Blob layout: content addressing, dedup, chunking, compression, memory bounds, trust."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from runstore import Store, StoreError, UntrustedArtifact
from runstore.codecs import CHUNK_SIZE

MiB = 1024 * 1024


def counts(store: Store) -> dict[str, int]:
    with store.read() as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("blobs", "blob_chunks", "blob_parts", "artifacts")
        }


def chunk_rows(store: Store, blob_key: str) -> list[tuple[int, str, int, int]]:
    with store.read() as conn:
        return conn.execute(
            "SELECT p.seq, c.compression, c.raw_size, length(c.data) FROM blob_parts p "
            "JOIN blob_chunks c ON c.chunk_key = p.chunk_key WHERE p.blob_key = ? ORDER BY p.seq",
            (blob_key,),
        ).fetchall()


def finish_task_with(store: Store, flow: str, artifacts: dict) -> int:
    run = store.create_run(flow, user="tester")
    task = store.create_task(run.run_id, "start")
    store.start_attempt(task, 0)
    store.finish_attempt(task, 0, "succeeded", artifacts={k: store.prepare_value(v) for k, v in artifacts.items()})
    store.finish_run(run.run_id, "succeeded")
    return task


# ------------------------------------------------------------------ addressing and dedup

def test_blob_key_is_sha256_of_the_encoded_bytes(memory_store: Store) -> None:
    for value in (b"payload", {"a": [1, 2]}, np.arange(5), (1, 2)):
        ref = memory_store.put_value(value)
        encoded = memory_store.open_blob(ref.blob_key).read()
        assert ref.blob_key == hashlib.sha256(encoded).hexdigest()
        assert ref.size == len(encoded)


def test_a_value_of_several_chunks_is_hashed_once(file_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash once (#18): saving and loading a 40 MiB value hashes each of its bytes once,
    for a pickle too (checked chunk by chunk, with no whole-value hash besides)."""
    import runstore.codecs
    from runstore.codecs import chunk_list_key
    from runstore.store import _blobs

    hashed = [0]
    real = hashlib.sha256

    class Counting:
        def __init__(self, data: bytes = b"") -> None:
            self._h = real()
            self.update(data)

        def update(self, data: bytes) -> None:
            hashed[0] += memoryview(data).nbytes
            self._h.update(data)

        def hexdigest(self) -> str:
            return self._h.hexdigest()

    counting = type("hashlib", (), {"sha256": Counting})
    for module in (runstore.codecs, _blobs):
        monkeypatch.setattr(module, "hashlib", counting)
    for value in (os.urandom(40 * MiB), {"weights": os.urandom(40 * MiB)}):
        hashed[0] = 0
        ref = file_store.put_value(value)
        # saved: each byte hashed once (its chunk's key), plus the short chunk list (was 2x the size)
        assert ref.size <= hashed[0] < ref.size + 1024
        keys = [row[0] for row in file_store.sql("SELECT chunk_key FROM blob_parts WHERE blob_key = ? ORDER BY seq",
                                                 [ref.blob_key]).rows]
        assert len(keys) == 3 and ref.blob_key == chunk_list_key(ref.size, keys)
        hashed[0] = 0
        assert file_store.load_value(ref.blob_key, ref.encoding) == value
        assert ref.size <= hashed[0] < ref.size + 1024  # loaded: verified in one pass (a pickle was 2x)


def test_a_large_array_is_read_through_one_blob_handle_per_chunk(file_store: Store,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """#18: a handle per 4 MiB piece re-walked the chunk's overflow pages for each piece;
    an array is filled with one handle per chunk (docs/storage.md, the read measurements)."""
    from runstore.store import _blobs

    value = np.random.default_rng(3).random(40 * MiB // 8)  # 3 chunks of raw float bytes
    ref = file_store.put_value(value)
    opened: list[tuple[int, int]] = []
    real = _blobs._fetch_pieces

    def counting(conn, chunk_id, offset, n):  # type: ignore[no-untyped-def]
        opened.append((chunk_id, n))
        return real(conn, chunk_id, offset, n)

    monkeypatch.setattr(_blobs, "_fetch_pieces", counting)
    assert np.array_equal(file_store.load_value(ref.blob_key, ref.encoding), value)
    assert len({chunk for chunk, _ in opened}) == 3 and len(opened) <= 4, opened  # npy header: a short first read
    assert sum(n for _, n in opened) == ref.size


def test_identical_values_are_stored_once_across_tasks_runs_and_flows(memory_store: Store) -> None:
    big = np.random.default_rng(1).random(300_000)  # 2.3 MiB, one chunk
    value = {"weights": list(range(1000))}
    finish_task_with(memory_store, "FlowA", {"x": big, "y": value})
    first = counts(memory_store)
    finish_task_with(memory_store, "FlowA", {"x": big, "y": value})  # another run, same flow
    finish_task_with(memory_store, "FlowB", {"x": big.copy(), "z": dict(value)})  # another flow
    after = counts(memory_store)
    assert first["artifacts"] == 2 and after["artifacts"] == 6
    assert after["blobs"] == first["blobs"] == 2
    assert after["blob_chunks"] == first["blob_chunks"] == 2
    assert after["blob_parts"] == first["blob_parts"]
    with memory_store.read() as conn:
        assert conn.execute("SELECT count(DISTINCT blob_key) FROM artifacts").fetchone()[0] == 2


def test_chunk_boundaries_exactly_16_mib_and_one_more(memory_store: Store) -> None:
    exact = os.urandom(CHUNK_SIZE)
    ref = memory_store.put_value(exact)
    assert ref.size == CHUNK_SIZE
    assert chunk_rows(memory_store, ref.blob_key) == [(0, "none", CHUNK_SIZE, CHUNK_SIZE)]

    plus_one = exact + b"!"
    ref2 = memory_store.put_value(plus_one)
    assert chunk_rows(memory_store, ref2.blob_key) == [(0, "none", CHUNK_SIZE, CHUNK_SIZE), (1, "none", 1, 1)]
    # The first 16 MiB are the same chunk as the first value: only the 1-byte chunk is new.
    assert counts(memory_store)["blob_chunks"] == 2
    assert memory_store.load_value(ref.blob_key, "bytes") == exact
    assert memory_store.load_value(ref2.blob_key, "bytes") == plus_one
    one_less = exact[:-1]
    ref3 = memory_store.put_value(one_less)
    assert [row[2] for row in chunk_rows(memory_store, ref3.blob_key)] == [CHUNK_SIZE - 1]
    assert memory_store.load_value(ref3.blob_key, "bytes") == one_less


def test_array_spanning_chunks_round_trips(memory_store: Store) -> None:
    array = np.random.default_rng(2).random((5, CHUNK_SIZE // 8 // 2 + 7))  # ~40 MiB, odd boundary
    ref = memory_store.put_value(array)
    assert len(chunk_rows(memory_store, ref.blob_key)) == 3
    back = memory_store.load_value(ref.blob_key, "npy")
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_compression_only_where_it_pays(memory_store: Store) -> None:
    compressible = memory_store.put_value(b"abc" * 2_000_000)
    random = memory_store.put_value(os.urandom(3 * MiB))
    tiny = memory_store.put_value(b"x" * 40)
    [(_, method, raw, stored)] = chunk_rows(memory_store, compressible.blob_key)
    assert method == "zstd" and raw == 6_000_000 and stored < raw // 50
    assert chunk_rows(memory_store, random.blob_key)[0][1] == "none"
    assert chunk_rows(memory_store, tiny.blob_key)[0][1] == "none"
    assert memory_store.load_value(compressible.blob_key, "bytes") == b"abc" * 2_000_000
    zeros = np.zeros(4 * MiB // 8)
    ref = memory_store.put_value(zeros)
    assert chunk_rows(memory_store, ref.blob_key)[0][1] == "zstd"
    assert np.array_equal(memory_store.load_value(ref.blob_key, "npy"), zeros)


def test_prepared_value_is_invisible_until_committed(file_store: Store) -> None:
    prepared = file_store.prepare_value(os.urandom(20 * MiB))  # first chunk flushed early
    with pytest.raises(KeyError):
        file_store.load_value(prepared.stored.blob_key, "bytes")
    with file_store.write() as conn:
        file_store.commit_values(conn, [prepared])
    assert len(file_store.load_value(prepared.stored.blob_key, "bytes")) == 20 * MiB


def test_missing_chunk_is_a_store_error_not_a_crash(memory_store: Store) -> None:
    ref = memory_store.put_value(os.urandom(2 * MiB))
    conn = memory_store.connection()  # simulate a damaged file: the chunk row is gone
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("DELETE FROM blob_chunks")
    conn.execute("PRAGMA foreign_keys = ON")
    with pytest.raises(StoreError, match="missing"):
        memory_store.load_value(ref.blob_key, "bytes")


def test_same_100_mib_array_again_adds_at_most_4_kib(file_store: Store) -> None:
    array = np.random.default_rng(3).random(100 * MiB // 8)
    first = file_store.put_value(array)
    file_store.checkpoint()
    size = file_store.path.stat().st_size
    assert size > 100 * MiB
    again = file_store.put_value(array.copy())
    file_store.checkpoint()
    assert again == first
    assert file_store.path.stat().st_size - size <= 4096
    back = file_store.load_value(first.blob_key, "npy")
    assert np.array_equal(back, array)


# ------------------------------------------------------------------ memory bounds (real processes)

MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from runstore import Store

    def peak_mib():
        # VmHWM starts afresh at exec; ru_maxrss would inherit the parent's peak.
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise SystemExit("no VmHWM")

    mode, path = sys.argv[1], sys.argv[2]
    store = Store(path)
    size = 100 * 1024 * 1024
    # Warm up: import every codec and compression module before measuring.
    warm = store.put_value(np.arange(1000.0))
    store.load_value(warm.blob_key, "npy")
    store.load_value(store.put_value(b"a" * 100000).blob_key, "bytes")
    if mode == "save":
        base = peak_mib()
        array = np.random.default_rng(0).random(size // 8)
        ref = store.put_value(array)
        print(json.dumps({"base": base, "peak": peak_mib(), "key": ref.blob_key}))
    else:
        key = sys.argv[3]
        base = peak_mib()
        array = store.load_value(key, "npy")
        assert array.nbytes == size
        print(json.dumps({"base": base, "peak": peak_mib()}))
    """
)


def _measure(tmp_path: Path, *args: str) -> dict:
    script = tmp_path / "measure.py"
    script.write_text(MEMORY_SCRIPT)
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for peak RSS")
def test_100_mib_array_peak_memory_on_save_and_load_is_at_most_1_5x(tmp_path: Path) -> None:
    db = str(tmp_path / "mem.db")
    save = _measure(tmp_path, "save", db)
    load = _measure(tmp_path, "load", db, save["key"])
    # Peak resident memory above the warmed-up interpreter, in units of the array size.
    # The array itself is 1.0x; it must show up, or the measurement is broken. Python
    # 3.10's sqlite3 has no incremental blob I/O, so SQLite copies each 16 MiB chunk it
    # is given (measured 1.52x there); 3.11+ streams chunks in place (1.2x).
    limit = 1.5 if sys.version_info >= (3, 11) else 1.6
    assert 1.0 <= (save["peak"] - save["base"]) / 100 <= limit, save
    assert 1.0 <= (load["peak"] - load["base"]) / 100 <= 1.5, load


# ------------------------------------------------------------------ trust

def test_pickles_from_another_user_are_untrusted_but_safe_codecs_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "shared.db"
    writer = Store(db)
    refs = {
        "pickle": writer.put_value((1, "tuple")),
        "json": writer.put_value({"a": 1}),
        "bytes": writer.put_value(b"raw"),
        "npy": writer.put_value(np.arange(3)),
    }
    assert writer.load_value(refs["pickle"].blob_key, "pickle") == (1, "tuple")
    writer.close()

    monkeypatch.setenv("RUNSTORE_HOME", str(tmp_path / "someone-else"))
    reader = Store(db)
    assert not reader.is_trusted(refs["pickle"].blob_key)
    with pytest.raises(UntrustedArtifact, match="runstore trust"):
        reader.load_value(refs["pickle"].blob_key, "pickle")
    with pytest.raises(PermissionError):
        reader.load_value(refs["pickle"].blob_key, "pickle")
    assert reader.load_value(refs["json"].blob_key, "json") == {"a": 1}
    assert reader.load_value(refs["bytes"].blob_key, "bytes") == b"raw"
    assert list(reader.load_value(refs["npy"].blob_key, "npy")) == [0, 1, 2]
    # Raw bytes of an untrusted blob are still available (no decoding happens).
    assert reader.open_blob(refs["pickle"].blob_key).read()[:1] == b"\x80"
    # Writing the same value makes it this reader's own, hence trusted.
    reader.put_value((1, "tuple"))
    assert reader.load_value(refs["pickle"].blob_key, "pickle") == (1, "tuple")


# ------------------------------------------------------------------ 1.2 GB

@pytest.mark.slow
def test_1_2_gb_bytes_value_round_trips_through_a_file_store(file_store: Store) -> None:
    size = 1_200_000_000
    value = np.random.default_rng(4).integers(0, 256, size, dtype=np.uint8).tobytes()
    digest = hashlib.sha256(value).hexdigest()
    started = time.perf_counter()
    ref = file_store.put_value(value)
    del value
    assert ref.blob_key == digest and ref.size == size
    assert len(chunk_rows(file_store, ref.blob_key)) == -(-size // CHUNK_SIZE)
    back = file_store.load_value(ref.blob_key, "bytes")
    assert type(back) is bytes and len(back) == size
    assert hashlib.sha256(back).hexdigest() == digest
    print(f"1.2 GB round trip: {time.perf_counter() - started:.1f} s")
