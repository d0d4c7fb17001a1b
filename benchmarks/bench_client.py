"""Client query cost at 1,000, 10,000 and 100,000 runs (SPEC §11: <= 5 ms at 100k, <= 2x the 1k time).

Run from the repository root::

    python benchmarks/bench_client.py > benchmarks/results/bench_client.txt

``benchmarks/run_all.py`` calls it with ``--json [--repeat N]`` (raw samples, peak memory).

Each size gets a fresh store file in a temporary directory, filled in bulk through the
store's own connection (``executemany`` inside one write transaction; the schema's
triggers and indexes run as they would for real runs). Four users share one flow;
every 10th run carries the tag ``crazy_test``; one run in five failed, and the newest
2 % of runs all failed (so ``latest_successful_run`` has many newer failures to skip).
Every query builds fresh client objects, as a user's script would, and is timed as the
median of many repeats. ``runs(tag)`` and namespace iteration take the newest 10 runs.
The queries of each size run in a fresh child process that only opens the store, so
its peak resident memory (VmHWM) is the queries' own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe  # noqa: E402
from values import peak_rss  # noqa: E402

from runstore import Flow, Run, Store, namespace  # noqa: E402

FLOW = "BenchFlow"
USERS = ["anne", "will", "carol", "dave"]
SYSTEM = ["runtime:local", f"python_version:{platform.python_version()}", "runstore_version:0.1.0",
          "date:20261123"]
SIZES = (1_000, 10_000, 100_000)
REPEATS = 300
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
    with store.read() as conn:
        conn.execute("ANALYZE")  # what `runstore doctor`/gc would leave behind; plans do not depend on it


def samples(action: Callable[[], object], repeats: int = REPEATS) -> list[float]:
    """Seconds per call, after 10 warm-up calls."""
    for _ in range(10):
        action()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        action()
        times.append(time.perf_counter() - t0)
    return times


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


def measure(path: str, n: int, repeats: int) -> dict[str, object]:
    """Time every query on an existing store (run in a fresh child process)."""
    store = Store(path)
    out: dict[str, object] = {name: samples(action, repeats) for name, action in queries(store, n).items()}
    out["peak_rss"] = peak_rss()
    store.close()
    return out


def collect(repeats: int = REPEATS, sizes: tuple[int, ...] = SIZES) -> dict[str, object]:
    """{size: {query: [seconds...], peak_rss}, populate: {size: seconds}}; JSON-serializable."""
    result: dict[str, object] = {"populate_s": {}, "bytes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            store = Store(Path(tmp) / f"bench-{n}.db")
            t0 = time.perf_counter()
            populate(store, n)
            result["populate_s"][n] = time.perf_counter() - t0  # type: ignore[index]
            store.checkpoint()
            result["bytes"][n] = os.path.getsize(store.path)  # type: ignore[index]
            store.close()
            proc = subprocess.run([sys.executable, __file__, "--measure", str(store.path), str(n), str(repeats)],
                                  capture_output=True, text=True, check=True)
            result[str(n)] = json.loads(proc.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=REPEATS)
    parser.add_argument("--json", action="store_true", help="print one JSON object of raw samples")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        path, n, repeats = args.measure
        print(json.dumps(measure(path, int(n), int(repeats))))
        return 0
    result = collect(args.repeat)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"# bench_client: client queries at {', '.join(f'{n:,}' for n in SIZES)} runs")
    print(f"# machine: {describe()}")
    print(f"# median of {args.repeat} repeats, milliseconds; fresh client objects every time")
    for n in SIZES:
        print(f"# populated {n:,} runs in {result['populate_s'][n]:.1f} s ({result['bytes'][n] / 1e6:.1f} MB)")
    print()
    print(f"{'query':46} " + " ".join(f"{f'{n // 1000}k ms':>8}" for n in SIZES) + f" {'ratio':>6}  target")
    ok = True
    for name in queries(Store(":memory:"), 4):
        meds = [statistics.median(result[str(n)][name]) * 1000 for n in SIZES]
        ratio = meds[-1] / meds[0]
        good = meds[-1] <= TARGET_MS and ratio <= TARGET_RATIO
        ok &= good
        print(f"{name:46} " + " ".join(f"{m:8.3f}" for m in meds) + f" {ratio:6.2f}  {'ok' if good else 'MISSED'}")
    print()
    print("# peak RSS of the query process: "
          + ", ".join(f"{n:,} runs {result[str(n)]['peak_rss'] / 2**20:.0f} MiB" for n in SIZES))
    print(f"# targets: <= {TARGET_MS} ms at {SIZES[-1]:,} and <= {TARGET_RATIO}x the {SIZES[0]:,} time: "
          f"{'all met' if ok else 'NOT all met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
