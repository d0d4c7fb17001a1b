"""What re-hashing costs a merge (SPEC §13.4, docs/security.md "Costs").

Run from the repository root (about half a minute, ~400 MB of disk)::

    .venv/bin/python benchmarks/bench_merge.py --repeat 3 | tee benchmarks/results/bench_merge.txt

Two source stores are built in a temporary directory: one run holding a 100 MiB value
(random bytes, so incompressible: 7 chunks of up to 16 MiB), and 1,000 small runs (the
admin tests' two-step run with a few small JSON artifacts and a code package each). Each
is merged into a fresh store (``Store.merge_from``, which re-hashes every chunk and blob
it copies). Separately, the verification work alone is timed over the same source: every
chunk read once, decompressed under its size bound and sha256-hashed, and every blob's
chunks hashed in order — exactly what ``store/_transfer.py: _Transfer._copy_verified_blob`` adds to a copy.
Times are medians of ``--repeat``; "share" = verification time / merge time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from storefill import add_run  # noqa: E402  (the tests' run builder)

from runstore import Store  # noqa: E402
from runstore.store._blobs import chunk_bytes  # noqa: E402


def build_big(path: Path) -> None:
    store = Store(path)
    add_run(store, model=os.urandom(100 * 1024 * 1024))
    store.checkpoint()
    store.close()


def build_small(path: Path, runs: int = 1000) -> None:
    store = Store(path)
    for i in range(runs):
        add_run(store, alpha=i / runs, result={"score": i})
    store.checkpoint()
    store.close()


def time_merge(source: Path, scratch: Path) -> float:
    target = scratch / f"target-{time.monotonic_ns()}.db"
    store = Store(target)
    started = time.perf_counter()
    store.merge_from(source)
    elapsed = time.perf_counter() - started
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    return elapsed


def time_verification(source: Path) -> float:
    store = Store(source, readonly=True)
    started = time.perf_counter()
    with store.read() as conn:
        for (blob_key,) in conn.execute("SELECT blob_key FROM blobs").fetchall():
            digest = hashlib.sha256()
            for compression, raw_size, data, chunk_key in conn.execute(
                    "SELECT c.compression, c.raw_size, c.data, c.chunk_key FROM blob_parts p"
                    " JOIN blob_chunks c ON c.chunk_key = p.chunk_key WHERE p.blob_key = ? ORDER BY p.seq",
                    (blob_key,)):
                raw = chunk_bytes(compression, data, raw_size, chunk_key)  # hashes it against chunk_key
                digest.update(raw)
            assert digest.hexdigest() == blob_key
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as tmp:
        scratch = Path(tmp)
        cases = {"one 100 MiB value": scratch / "big.db", "1,000 small runs": scratch / "small.db"}
        build_big(cases["one 100 MiB value"])
        build_small(cases["1,000 small runs"])
        print(f"{'source':<20} {'merge (s)':>10} {'verify (s)':>11} {'share':>7}")
        for name, path in cases.items():
            merge = statistics.median(time_merge(path, scratch) for _ in range(args.repeat))
            verify = statistics.median(time_verification(path) for _ in range(args.repeat))
            print(f"{name:<20} {merge:>10.3f} {verify:>11.3f} {verify / merge:>7.1%}")


if __name__ == "__main__":
    main()
