"""Blob save/load speed and memory against raw file I/O of the same bytes (SPEC §11).

Run from the repository root (takes about a minute, needs ~1 GB of RAM and disk):

    .venv/bin/python benchmarks/bench_blobs.py --repeat 5 | tee benchmarks/results/bench_blobs.txt

Measured in one run, in one temporary directory (same file system for everything):

* a 100 MiB float64 array (random, so incompressible): ``Store.put_value`` into a
  fresh file store vs ``write()`` of the array's bytes to a new file, and
  ``Store.load_value`` vs ``readinto()`` of that file into a preallocated array;
* 1,000 small artifacts (JSON dicts, short bytes, small arrays): one
  ``put_value`` each (one transaction each), and all 1,000 committed in one
  transaction as a task does, vs writing / reading 1,000 files of the same
  encoded bytes.

The raw baselines never fsync, to match the store's ``synchronous=NORMAL`` (in WAL
mode a commit does not fsync either). Times are the median of ``--repeat`` runs;
ratio = raw time / store time, so 1.0 means as fast as raw and the SPEC asks for
>= 0.5. Peak memory is measured in child processes (peak RSS, VmHWM, above a warmed-up
interpreter, the array itself included), as a multiple of the array size; the SPEC
asks for <= 1.5x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from runstore import Store

MiB = 1024 * 1024
ARRAY_BYTES = 100 * MiB


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        ram = float("nan")
    return [
        f"machine: {os.cpu_count()} cpus ({cpu}), {ram:.1f} GiB RAM, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, numpy {np.__version__}",
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fresh(folder: Path, name: str) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(str(folder / name) + suffix).unlink(missing_ok=True)
    return folder / name


# ------------------------------------------------------------------ child: peak memory

def peak_rss() -> int:
    """Peak resident bytes of this process (VmHWM restarts at exec; ru_maxrss is inherited)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(mode: str, path: str, key: str | None) -> None:
    store = Store(path)
    warm = store.put_value(np.arange(1000.0))
    store.load_value(warm.blob_key, "npy")
    store.load_value(store.put_value(b"a" * 100000).blob_key, "bytes")
    base = peak_rss()
    if mode == "save":
        array = np.random.default_rng(0).random(ARRAY_BYTES // 8)
        key = store.put_value(array).blob_key
    else:
        array = store.load_value(key, "npy")
    peak = peak_rss()
    print(json.dumps({"key": key, "extra": peak - base}))


def peak_memory(folder: Path) -> tuple[float, float]:
    path = str(fresh(folder, "mem.db"))
    run = lambda *args: json.loads(subprocess.run(  # noqa: E731
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True).stdout)
    save = run("save", path)
    load = run("load", path, save["key"])
    return save["extra"] / ARRAY_BYTES, load["extra"] / ARRAY_BYTES


# ------------------------------------------------------------------ large array

def bench_array(folder: Path, repeat: int) -> dict[str, list[float]]:
    array = np.random.default_rng(0).random(ARRAY_BYTES // 8)
    out: dict[str, list[float]] = {k: [] for k in ("raw_write", "raw_read", "save", "save_ckpt", "load",
                                                      "again", "growth")}
    for _ in range(repeat):
        raw = fresh(folder, "raw.bin")

        def write_raw() -> None:
            with open(raw, "wb") as fh:
                fh.write(array.data)

        out["raw_write"].append(timed(write_raw))
        target = np.empty_like(array)

        def read_raw() -> None:
            with open(raw, "rb") as fh:
                fh.readinto(memoryview(target).cast("B"))

        out["raw_read"].append(timed(read_raw))
        raw.unlink()

        store = Store(fresh(folder, "bench.db"))
        store.put_value(b"warm up")
        refs = []
        out["save"].append(timed(lambda: refs.append(store.put_value(array))))
        out["save_ckpt"].append(out["save"][-1] + timed(store.checkpoint))
        ref = refs[0]
        loaded = []
        out["load"].append(timed(lambda: loaded.append(store.load_value(ref.blob_key, "npy"))))
        assert np.array_equal(loaded.pop(), array)
        size = store.path.stat().st_size
        out["again"].append(timed(lambda: store.put_value(array)))
        store.checkpoint()
        out["growth"].append(store.path.stat().st_size - size)
        store.close()
    return out


# ------------------------------------------------------------------ small artifacts

def small_values(n: int = 1000) -> list[object]:
    rng = np.random.default_rng(1)
    values: list[object] = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            values.append({"step": i, "loss": float(rng.random()), "name": f"model-{i}", "tags": ["a", "b"]})
        elif kind == 1:
            values.append(rng.bytes(512))
        elif kind == 2:
            values.append(rng.random(64))
        else:
            values.append([float(x) for x in rng.random(16)])
    return values


def bench_small(folder: Path, repeat: int) -> tuple[dict[str, list[float]], int]:
    values = small_values()
    probe = Store(":memory:")
    encoded = []
    for value in values:
        ref = probe.put_value(value)
        encoded.append(probe.open_blob(ref.blob_key).read())
    total = sum(len(e) for e in encoded)
    out: dict[str, list[float]] = {k: [] for k in ("raw_write", "raw_read", "save_each", "save_one_txn", "load")}
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

        store = Store(fresh(folder, "small.db"))
        store.put_value(b"warm up")
        refs = []
        out["save_each"].append(timed(lambda: refs.extend(store.put_value(v) for v in values)))
        store.close()

        store = Store(fresh(folder, "small.db"))
        store.put_value(b"warm up")

        def save_one_txn() -> None:
            prepared = [store.prepare_value(v) for v in values]
            with store.write() as conn:
                store.commit_values(conn, prepared)

        out["save_one_txn"].append(timed(save_one_txn))
        out["load"].append(timed(lambda: [store.load_value(r.blob_key, r.encoding) for r in refs]))
        store.close()
    return out, total


# ------------------------------------------------------------------ report

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2] if len(args.child) > 2 else None)
        return

    folder = Path(tempfile.mkdtemp(prefix="bench-blobs-"))
    try:
        lines = ["bench_blobs: runstore blobs vs raw file I/O of the same bytes (median of "
                 f"{args.repeat} runs; ratio = raw time / store time, target >= 0.50)", *machine(),
                 f"directory: {folder} (raw baselines without fsync, like synchronous=NORMAL)", ""]
        med = statistics.median
        big = bench_array(folder, args.repeat)
        mb = ARRAY_BYTES / MiB
        rows = [
            ("100 MiB float64 save", med(big["save"]), med(big["raw_write"])),
            ("  ... incl. WAL checkpoint", med(big["save_ckpt"]), med(big["raw_write"])),
            ("100 MiB float64 load", med(big["load"]), med(big["raw_read"])),
        ]
        small, total = bench_small(folder, args.repeat)
        rows += [
            (f"1,000 small save, 1 txn each", med(small["save_each"]), med(small["raw_write"])),
            (f"1,000 small save, 1 txn total", med(small["save_one_txn"]), med(small["raw_write"])),
            (f"1,000 small load", med(small["load"]), med(small["raw_read"])),
        ]
        lines.append(f"{'case':34} {'store s':>9} {'raw s':>9} {'ratio':>7}  {'MB/s store':>10}  verdict")
        for label, store_s, raw_s in rows:
            size = ARRAY_BYTES if label.startswith(("100", "  ")) else total
            ratio = raw_s / store_s
            lines.append(f"{label:34} {store_s:9.3f} {raw_s:9.3f} {ratio:7.2f}  {size / MiB / store_s:10.0f}  "
                         f"{'ok' if ratio >= 0.5 else 'MISSED (< 0.50)'}")
        lines.append(f"(1,000 small artifacts = {total / 1024:.0f} KiB encoded in total)")
        lines.append("")
        lines.append(f"same 100 MiB array again: {med(big['again']):.3f} s (hashing + touching the stored chunks), file grew by "
                     f"{max(big['growth'])} bytes (target <= 4096): "
                     f"{'ok' if max(big['growth']) <= 4096 else 'MISSED'}")
        save_x, load_x = peak_memory(folder)
        lines.append(f"peak memory (resident, above a warmed-up interpreter, array included) as a multiple of "
                     f"the {mb:.0f} MiB array: save {save_x:.2f}x, load {load_x:.2f}x (target <= 1.5x): "
                     f"{'ok' if max(save_x, load_x) <= 1.5 else 'MISSED'}")
        if any(raw_s / store_s < 0.5 for _, store_s, raw_s in rows):
            lines += [
                "",
                "Why targets are missed (see docs/storage.md):",
                "- raw write/read of one 100 MiB file hits the page cache at several GB/s; the store",
                "  must sha256 the value (blob key) and each 16 MiB chunk (chunk keys), and SQLite",
                "  writes every 4 KiB page to the WAL with a frame header and checksum, then copies",
                "  it into the main file at checkpoint (and fsyncs it). With 64 KiB pages (runstore.store._db.PAGE_SIZE)",
                "  save and load run about 3x faster (load then meets the target) but each small",
                "  transaction (a task's rows) writes 16x more WAL bytes, so 4 KiB is kept for now.",
                "- small artifacts: each save/load is one or two SQL statements (~30-90 us) against",
                "  one open()/write() of a cached file; saving them in one transaction, as a task",
                "  does, is faster than writing files.",
            ]
        print("\n".join(lines))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
