"""Artifact save/load speed and memory against raw file I/O of the same bytes (SPEC §11).

Run from the repository root (about a minute, needs ~1 GB of RAM and disk)::

    .venv/bin/python benchmarks/bench_blobs.py --repeat 5 | tee benchmarks/results/bench_blobs.txt

``benchmarks/run_all.py`` calls it with ``--json`` (one JSON object of raw samples).

Three values, built by ``benchmarks/peers/values.py`` (the Metaflow side builds the
very same ones), measured in one run in one temporary directory:

* ``array``: a 100 MiB float64 array (random, so incompressible): ``Store.put_value``
  into a fresh file store vs ``write()`` of the array's bytes to a new file, and
  ``Store.load_value`` vs ``readinto()`` of that file into a preallocated array. Then
  the same array is put again: time (hashing only) and bytes the file grew by after a
  checkpoint (dedup; SPEC: <= 4 KiB). For reference, the same bytes written and read
  through plain sqlite3 (no runstore code; 4 KiB pages as the store uses, and 64 KiB),
  and one sha256 pass over them (content addressing needs at least that);
* ``dict``: a 1,000,000-key ``{str: int}`` dict (runstore stores it as safepickle): save and
  load vs writing/reading the same encoded bytes to/from one file (so the ratio shows
  the cost of encoding, which the raw baseline does not pay);
* ``small``: 1,000 small artifacts (JSON dicts, 512-byte strings, small arrays, short
  lists): all 1,000 prepared and committed in one transaction as a task does (and, for
  reference, one ``put_value`` each = one transaction each), and loaded one by one, vs
  writing / reading 1,000 files of the same encoded bytes.

The raw baselines do not fsync (the store runs ``synchronous=NORMAL``: in WAL mode a
commit does not fsync either), except the one SPEC §11 names for the 100 MiB save:
"raw write+fsync" (``raw_write_fsync``, the array's bytes written to a new file and
fsynced). Times are the median of ``--repeat`` runs; ratio = raw time / store time, so
1.0 means as fast as raw and the SPEC asks for >= 0.5 for the array (save against
write+fsync, load against read). Peak memory is measured in fresh child processes (VmHWM above a
warmed-up interpreter, the value itself included), one for a save and one for a load;
for the array as a multiple of its size (SPEC: <= 1.5x).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _machine import describe  # noqa: E402
from values import ARRAY_BYTES, MiB, make, peak_rss  # noqa: E402

from runstore import Store  # noqa: E402

CASES = ("array", "dict", "small")


def machine() -> list[str]:
    return [f"machine: {describe()}", f"numpy {np.__version__}",
            f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fresh(folder: Path, name: str) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(str(folder / name) + suffix).unlink(missing_ok=True)
    return folder / name


def fresh_store(folder: Path, name: str = "bench.db") -> Store:
    store = Store(fresh(folder, name))
    store.put_value(b"warm up")
    return store


# ------------------------------------------------------------------ child: peak memory

def child(case: str, op: str, path: str) -> None:
    """One save (op=save, stores the key next to the db) or one load, in a fresh process."""
    store = Store(path)
    warm = store.put_value(np.arange(1000.0))
    store.load_value(warm.blob_key, "npy")
    store.load_value(store.put_value(b"a" * 100000).blob_key, "bytes")
    keys_file = Path(path + ".keys")
    base = peak_rss()
    if op == "save":
        values = make(case)
        items = values if case == "small" else [values]
        prepared = [store.prepare_value(v) for v in items]
        with store.write() as conn:
            store.commit_values(conn, prepared)
        keys_file.write_text(json.dumps([[p.stored.blob_key, p.stored.encoding] for p in prepared]))
    else:
        loaded = [store.load_value(key, enc) for key, enc in json.loads(keys_file.read_text())]
        assert loaded
    print(json.dumps({"extra": peak_rss() - base, "base": base}))


def peak_memory(folder: Path, case: str) -> dict[str, int]:
    path = str(fresh(folder, f"mem-{case}.db"))
    out = {}
    for op in ("save", "load"):
        proc = subprocess.run([sys.executable, __file__, "--child", case, op, path],
                              capture_output=True, text=True, check=True)
        out[op] = json.loads(proc.stdout)["extra"]
    return out


# ------------------------------------------------------------------ bare SQLite

def bare_sqlite(folder: Path, data: bytes, page_size: int) -> tuple[float, float]:
    """The same bytes through plain sqlite3, no runstore code: (write + commit, read) seconds.

    WAL, ``synchronous=NORMAL``, 16 MiB rows reserved with ``zeroblob`` and filled with
    incremental blob I/O in 4 MiB pieces, one transaction; read back piece by piece into a
    preallocated buffer. This is the floor for any store that keeps values in SQLite pages.
    """
    path = fresh(folder, f"bare-{page_size}.db")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA page_size = {page_size}")
        conn.execute("PRAGMA journal_mode = wal")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
        view, piece, chunk = memoryview(data), 4 * MiB, 16 * MiB

        def write() -> None:
            conn.execute("BEGIN IMMEDIATE")
            for start in range(0, len(view), chunk):
                part = view[start:start + chunk]
                rowid = conn.execute("INSERT INTO t(data) VALUES (zeroblob(?))", (len(part),)).lastrowid
                with conn.blobopen("t", "data", rowid) as handle:
                    for pos in range(0, len(part), piece):
                        handle.write(part[pos:pos + piece])
            conn.execute("COMMIT")

        write_s = timed(write)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        target = bytearray(len(data))

        def read() -> None:
            out, pos = memoryview(target), 0
            conn.execute("BEGIN")
            for (rowid,) in conn.execute("SELECT id FROM t ORDER BY id").fetchall():
                with conn.blobopen("t", "data", rowid, readonly=True) as handle:
                    size = len(handle)
                    for off in range(0, size, piece):
                        got = handle.read(min(piece, size - off))
                        out[pos:pos + len(got)] = got
                        pos += len(got)
            conn.execute("COMMIT")

        return write_s, timed(read)
    finally:
        conn.close()
        fresh(folder, f"bare-{page_size}.db")


# ------------------------------------------------------------------ cases

def bench_one(folder: Path, value: object, repeat: int, dedup: bool) -> dict[str, list[float]]:
    """A single large value: array or dict."""
    probe = Store(":memory:")
    encoded = probe.open_blob(probe.put_value(value).blob_key).read()
    probe.close()
    out: dict[str, list[float]] = {k: [] for k in ("raw_write", "raw_write_fsync", "raw_read", "save",
                                                      "save_ckpt", "load", "again", "growth")}
    out["bytes"] = [len(encoded)]
    for _ in range(repeat):
        raw = fresh(folder, "raw.bin")

        def write_raw() -> None:
            with open(raw, "wb") as fh:
                fh.write(encoded)

        out["raw_write"].append(timed(write_raw))

        def write_raw_fsync() -> None:  # SPEC §11's baseline for the 100 MiB save: write + fsync
            with open(raw, "wb") as fh:
                fh.write(encoded)
                fh.flush()
                os.fsync(fh.fileno())

        raw.unlink()
        out["raw_write_fsync"].append(timed(write_raw_fsync))
        target = bytearray(len(encoded))

        def read_raw() -> None:
            with open(raw, "rb") as fh:
                fh.readinto(target)

        out["raw_read"].append(timed(read_raw))
        raw.unlink()

        store = fresh_store(folder)
        refs = []
        out["save"].append(timed(lambda: refs.append(store.put_value(value))))
        out["save_ckpt"].append(out["save"][-1] + timed(store.checkpoint))
        ref = refs[0]
        loaded = []
        out["load"].append(timed(lambda: loaded.append(store.load_value(ref.blob_key, ref.encoding))))
        loaded.clear()
        if dedup:
            out.setdefault("sha256", []).append(timed(lambda: hashlib.sha256(encoded).digest()))
            for page in (4096, 65536):
                w, r = bare_sqlite(folder, encoded, page)
                out.setdefault(f"sqlite{page}_write", []).append(w)
                out.setdefault(f"sqlite{page}_read", []).append(r)
            size = store.path.stat().st_size
            out["again"].append(timed(lambda: store.put_value(value)))
            store.checkpoint()
            out["growth"].append(store.path.stat().st_size - size)
        store.close()
    return out


def bench_small(folder: Path, values: list[object], repeat: int) -> dict[str, list[float]]:
    probe = Store(":memory:")
    encoded = [probe.open_blob(probe.put_value(v).blob_key).read() for v in values]
    probe.close()
    out: dict[str, list[float]] = {k: [] for k in ("raw_write", "raw_read", "save", "save_each", "load")}
    out["bytes"] = [sum(len(e) for e in encoded)]
    for _ in range(repeat):
        files = folder / "files"
        shutil.rmtree(files, ignore_errors=True)
        files.mkdir()

        def write_raw() -> None:
            for i, data in enumerate(encoded):
                with open(files / str(i), "wb") as fh:
                    fh.write(data)

        def read_raw() -> None:
            for i in range(len(encoded)):
                with open(files / str(i), "rb") as fh:
                    fh.read()

        out["raw_write"].append(timed(write_raw))
        out["raw_read"].append(timed(read_raw))

        store = fresh_store(folder, "small.db")
        refs = []
        out["save_each"].append(timed(lambda: refs.extend(store.put_value(v) for v in values)))
        store.close()

        store = fresh_store(folder, "small.db")

        def save_one_txn() -> None:
            prepared = [store.prepare_value(v) for v in values]
            with store.write() as conn:
                store.commit_values(conn, prepared)

        out["save"].append(timed(save_one_txn))
        out["load"].append(timed(lambda: [store.load_value(r.blob_key, r.encoding) for r in refs]))
        store.close()
    return out


def collect(repeat: int, cases: tuple[str, ...] = CASES, memory: bool = True) -> dict[str, object]:
    """Raw samples of every case (seconds), file growth, and peak memory; JSON-serializable."""
    folder = Path(tempfile.mkdtemp(prefix="bench-blobs-"))
    try:
        result: dict[str, object] = {"numpy": np.__version__}
        for case in cases:
            value = make(case)
            if case == "small":
                out = bench_small(folder, value, repeat)  # type: ignore[arg-type]
            else:
                out = bench_one(folder, value, repeat, dedup=case == "array")
            del value
            if memory:
                out["mem"] = peak_memory(folder, case)  # type: ignore[assignment]
            result[case] = out
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------ report

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--case", action="append", choices=CASES, help="only this case (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object of raw samples")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    result = collect(args.repeat, tuple(args.case or CASES))
    if args.json:
        print(json.dumps(result))
        return
    med = statistics.median
    lines = ["bench_blobs: runstore artifacts vs raw file I/O of the same bytes (median of "
             f"{args.repeat} runs; ratio = raw time / store time, target >= 0.50 for the array)", *machine(), ""]
    lines.append(f"{'case':34} {'store s':>9} {'raw s':>9} {'ratio':>7}  {'MB/s store':>10}  peak MiB")
    for case in args.case or CASES:
        r = result[case]
        size = r["bytes"][0]
        for op, raw in (("save", "raw_write_fsync" if case == "array" else "raw_write"), ("load", "raw_read")):
            store_s, raw_s = med(r[op]), med(r[raw])
            lines.append(f"{case + ' ' + op:34} {store_s:9.3f} {raw_s:9.3f} {raw_s / store_s:7.2f}  "
                         f"{size / MiB / store_s:10.0f}  {r['mem'][op] / MiB:8.0f}")
        if case == "array":
            lines.append(f"  one sha256 pass over the bytes: {med(r['sha256']):.3f} s")
            for page in (4096, 65536):
                lines.append(f"  bare sqlite3, {page // 1024} KiB pages: write {med(r[f'sqlite{page}_write']):.3f} s, "
                             f"read {med(r[f'sqlite{page}_read']):.3f} s")
            lines.append(f"  same array again: {med(r['again']):.3f} s (hashing + touching the stored chunks), file grew by {max(r['growth'])} bytes "
                         f"(target <= 4096); peak memory save {r['mem']['save'] / ARRAY_BYTES:.2f}x, "
                         f"load {r['mem']['load'] / ARRAY_BYTES:.2f}x the array (target <= 1.5x)")
        if case == "small":
            lines.append(f"  one transaction per artifact: save {med(r['save_each']):.3f} s; "
                         f"{size / 1024:.0f} KiB encoded in total")
    if "array" in result:
        lines.append(f"  (array save against write+fsync, as SPEC §11 says; plain write() without fsync: "
                     f"{med(result['array']['raw_write']):.3f} s)")
    if "array" in result and med(result["array"]["raw_write_fsync"]) / med(result["array"]["save"]) < 0.5:
        lines += [
            "",
            "Why targets are missed (see docs/storage.md):",
            "- raw read of one 100 MiB file hits the page cache at several GB/s; the store",
            "  must sha256 every byte once (the chunk keys; the blob key is derived from them), and SQLite",
            "  writes every 4 KiB page to the WAL with a frame header and checksum, then copies",
            "  it into the main file at checkpoint (and fsyncs it). With 64 KiB pages (runstore.store._db.PAGE_SIZE)",
            "  save and load run about 3x faster (load then meets the target) but each small",
            "  transaction (a task's rows) writes 16x more WAL bytes, so 4 KiB is kept for now.",
            "- small artifacts: each save/load is one or two SQL statements (~30-90 us) against",
            "  one open()/write() of a cached file; saving them in one transaction, as a task",
            "  does, is faster than writing files.",
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
