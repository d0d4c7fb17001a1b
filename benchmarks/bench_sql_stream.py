"""`runstore sql` of 200,000 rows of ~1 KB in each output format (issue #18).

Run from the repository root (about half a minute per format on 2 loaded cores)::

    python benchmarks/bench_sql_stream.py | tee benchmarks/results/bench_sql_stream.txt

Each format runs as a real ``python -m runstore sql`` child under a 180 MiB address-space
limit (``RLIMIT_AS``), output to /dev/null; printed: exit code, wall time, time to the
first byte of output, the child's peak RSS. Then the same rows buffered by ``Store.sql``
under the same limit (expected: MemoryError). The query needs no tables (a recursive CTE),
so an empty store is used. The table format cuts cells to 60 columns and so writes less.

``--json-out --rows N`` is the case ``run_all.py`` measures (issue #18: 2,000,000 rows):
narrow rows (an int and a 20-digit text, ~30 bytes) so that the time is the streaming,
not the bytes; each format (table, ``--csv``, ``--jsonl``, ``--json``) under the same
address-space limit, and ``runstore sql QUERY | head -2`` through a shell pipe (the time
until the pipeline ends). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = 200_000
QUERY = (f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {ROWS}) "
         "SELECT x, printf('%01000d', x) AS pad FROM c")
LIMIT = 180 << 20


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def narrow_query(rows: int) -> str:
    return (f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) "
            "SELECT x, printf('%020d', x) AS pad FROM c")


def stream_once(db: Path, fmt: list[str], query: str) -> dict[str, float | int]:
    """One ``runstore sql`` child to /dev/null-like draining: wall, first byte, peak RSS (bytes), exit code."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "runstore", "--db", str(db), "sql", *fmt, query],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=_limit)
    assert proc.stdout is not None
    proc.stdout.read(1)
    first = time.perf_counter() - start
    while proc.stdout.read(1 << 20):
        pass
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return {"wall_s": time.perf_counter() - start, "first_byte_s": first, "peak_rss": rusage.ru_maxrss * 1024,
            "exit": os.waitstatus_to_exitcode(status)}


def measure(rows: int) -> dict[str, object]:
    """Every format over ``rows`` narrow rows, and ``| head -2``: the JSON ``run_all.py`` reads."""
    import shlex

    query = narrow_query(rows)
    out: dict[str, object] = {"rows": rows, "limit_bytes": LIMIT}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        subprocess.run([sys.executable, "-c", f"from runstore import Store; Store({str(db)!r})"], check=True)
        for name, fmt in (("table", []), ("csv", ["--csv"]), ("jsonl", ["--jsonl"]), ("json", ["--json"])):
            out[name] = stream_once(db, fmt, query)
        command = (f"{shlex.quote(sys.executable)} -m runstore --db {shlex.quote(str(db))} sql "
                   f"{shlex.quote(query)} | head -2")
        start = time.perf_counter()
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=600)
        out["head2_s"] = time.perf_counter() - start
        out["head2_lines"] = len(done.stdout.splitlines())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows for --json-out")
    parser.add_argument("--json-out", action="store_true", help="the run_all.py case: one JSON object")
    args = parser.parse_args()
    if args.json_out:
        print(json.dumps(measure(args.rows)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        subprocess.run([sys.executable, "-c", f"from runstore import Store; Store({str(db)!r})"], check=True)
        print(f"{ROWS:,} rows of ~1 KB, child address space limited to {LIMIT >> 20} MiB")
        for fmt in (["--csv"], ["--jsonl"], ["--json"]):
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "runstore", "--db", str(db), "sql", *fmt, QUERY],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_limit)
            assert proc.stdout is not None
            proc.stdout.read(1)
            first = time.perf_counter() - start
            while proc.stdout.read(1 << 20):
                pass
            _, rusage = os.wait4(proc.pid, 0)[1:]
            wall = time.perf_counter() - start
            proc.returncode = 0
            print(f"{fmt[0]:8s} wall {wall:6.2f} s   first byte {first:5.2f} s   peak RSS {rusage.ru_maxrss / 1024:6.1f} MiB")
        code = f"from runstore import Store; print(len(Store({str(db)!r}, readonly=True).sql({QUERY!r}).rows))"
        proc2 = subprocess.run([sys.executable, "-c", code], capture_output=True, preexec_fn=_limit)
        print("Store.sql (buffered):", "MemoryError" if b"MemoryError" in proc2.stderr else f"exit {proc2.returncode}")


if __name__ == "__main__":
    main()
