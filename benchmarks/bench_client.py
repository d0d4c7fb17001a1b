"""Client query cost at 1,000 and 100,000 runs (SPEC §11: <= 5 ms at 100k, <= 2x the 1k time).

Run from the repository root::

    python benchmarks/bench_client.py > benchmarks/results/bench_client.txt

Each size gets a fresh store file in a temporary directory, filled in bulk through the
store's own connection (``executemany`` inside one write transaction; the schema's
triggers and indexes run as they would for real runs). Four users share one flow;
every 10th run carries the tag ``crazy_test``; one run in five failed, and the newest
2 % of runs all failed (so ``latest_successful_run`` has many newer failures to skip).
Every query builds fresh client objects, as a user's script would, and is timed as the
median of many calls, timed in alternating batches at both sizes. ``runs(tag)`` and namespace iteration take the newest 10 runs.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runstore import Flow, Run, Store, namespace  # noqa: E402

FLOW = "BenchFlow"
USERS = ["anne", "will", "carol", "dave"]
SYSTEM = ["runtime:local", f"python_version:{platform.python_version()}", "runstore_version:0.1.0",
          "date:20261123"]
SIZES = (1_000, 100_000)
REPEATS = 600
BATCH = 20
TARGET_MS = 5.0
TARGET_RATIO = 2.0


def populate(store: Store, n: int) -> None:
    """n runs of FLOW, their tags, in one transaction."""
    start = time.time() - n
    runs, tags = [], []
    for i in range(n):
        run_id = i + 1
        user = USERS[i % len(USERS)]
        failed = i % 5 == 4 or i >= n * 0.98
        status = "failed" if failed else "succeeded"
        created = start + i
        runs.append((run_id, 1, run_id, str(uuid.uuid4()), user, f"user:{user}", status, created,
                     created + 0.5, created + 0.5))
        tags.extend((run_id, tag, 1, 1, created, status) for tag in [f"user:{user}", *SYSTEM])
        if i % 10 == 0:
            tags.append((run_id, "crazy_test", 0, 1, created, status))
    with store.write() as conn:
        conn.execute("INSERT INTO flows(flow_id, name, created_at, last_run_number) VALUES (1, ?, ?, ?)",
                     (FLOW, start, n))
        conn.executemany(
            "INSERT INTO runs(run_id, flow_id, run_number, uuid, user_name, namespace, status, created_at,"
            " finished_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
        conn.executemany(
            "INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at, run_status)"
            " VALUES (?, ?, ?, ?, ?, ?)", tags)


def interleaved_ms(small: Callable[[], object], big: Callable[[], object]) -> tuple[float, float]:
    """Median ms of each action, timed in alternating batches so load hits both alike."""
    for action in (small, big):
        for _ in range(10):
            action()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS // BATCH):
        for action, bucket in ((small, times[0]), (big, times[1])):
            for _ in range(BATCH):
                t0 = time.perf_counter()
                action()
                bucket.append(time.perf_counter() - t0)
    return statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000


def queries(store: Store, n: int) -> dict[str, Callable[[], object]]:
    middle = f"{FLOW}/{(n // 2) - ((n // 2) % len(USERS)) + 1}"  # one of anne's runs

    def in_namespace(ns: str | None, body: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            namespace(ns)
            return body()
        return run

    return {
        "latest_run (user:anne)": in_namespace("user:anne", lambda: Flow(FLOW, store=store).latest_run),
        "latest_successful_run (user:anne)": in_namespace(
            "user:anne", lambda: Flow(FLOW, store=store).latest_successful_run),
        "runs('crazy_test'), newest 10": in_namespace(
            "user:anne", lambda: list(islice(Flow(FLOW, store=store).runs("crazy_test"), 10))),
        "Run(pathspec) (user:anne)": in_namespace("user:anne", lambda: Run(middle, store=store)),
        "iterate newest 10 (user:anne)": in_namespace(
            "user:anne", lambda: list(islice(Flow(FLOW, store=store), 10))),
        "latest_run (global)": in_namespace(None, lambda: Flow(FLOW, store=store).latest_run),
        "latest_successful_run (global)": in_namespace(
            None, lambda: Flow(FLOW, store=store).latest_successful_run),
        "iterate newest 10 (tag namespace crazy_test)": in_namespace(
            "crazy_test", lambda: list(islice(Flow(FLOW, store=store), 10))),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.platform()}; {cpu}; {os.cpu_count()} CPUs; Python {platform.python_version()};"
            f" SQLite {sqlite3.sqlite_version}")


def main() -> int:
    print(f"# bench_client: client queries at {' and '.join(f'{n:,}' for n in SIZES)} runs")
    print(f"# machine: {machine()}")
    print(f"# median of {REPEATS} calls per size, in alternating batches of {BATCH} (1k, 100k, 1k, …)"
          " so background load hits both sizes alike; milliseconds; fresh client objects every call")
    with tempfile.TemporaryDirectory() as tmp:
        stores = []
        for n in SIZES:
            store = Store(Path(tmp) / f"bench-{n}.db")
            t0 = time.perf_counter()
            populate(store, n)
            print(f"# populated {n:,} runs in {time.perf_counter() - t0:.1f} s "
                  f"({os.path.getsize(store.path) / 1e6:.1f} MB + WAL)")
            stores.append(store)
        small_queries, big_queries = (queries(store, n) for store, n in zip(stores, SIZES))
        results = {name: interleaved_ms(small_queries[name], big_queries[name]) for name in small_queries}
        for store in stores:
            store.close()
    print()
    print(f"{'query':46} {'1k ms':>8} {'100k ms':>8} {'ratio':>6}  target")
    ok = True
    for name, (a, b) in results.items():
        ratio = b / a
        good = b <= TARGET_MS and ratio <= TARGET_RATIO
        ok &= good
        print(f"{name:46} {a:8.3f} {b:8.3f} {ratio:6.2f}  {'ok' if good else 'MISSED'}")
    print()
    print(f"# targets: <= {TARGET_MS} ms at 100k and <= {TARGET_RATIO}x the 1k time: "
          f"{'all met' if ok else 'NOT all met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
