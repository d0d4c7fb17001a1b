"""`runstore sql` of 200,000 rows of ~1 KB in each output format (issue #18).

Run from the repository root (about half a minute per format on 2 loaded cores)::

    python benchmarks/bench_sql_stream.py | tee benchmarks/results/bench_sql_stream.txt

Each format runs as a real ``python -m runstore sql`` child under a 180 MiB address-space
limit (``RLIMIT_AS``), output to /dev/null; printed: exit code, wall time, time to the
first byte of output, the child's peak RSS. Then the same rows buffered by ``Store.sql``
under the same limit (expected: MemoryError). The query needs no tables (a recursive CTE),
so an empty store is used. The table format cuts cells to 60 columns and so writes less.
"""

from __future__ import annotations

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


def main() -> None:
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
