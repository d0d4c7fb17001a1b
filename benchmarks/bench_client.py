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
median of many calls, timed in alternating batches at every size (1k, 10k, 100k, 1k, ...)
so background load hits all sizes alike. ``runs(tag)`` and namespace iteration take the
newest 10 runs. The queries run in a fresh child process that only opens the stores, so
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


def interleaved(actions: list[Callable[[], object]], repeats: int = REPEATS) -> list[list[float]]:
    """Seconds per call of each action, timed in alternating batches so load hits all alike."""
    for action in actions:
        for _ in range(10):
            action()
    times: list[list[float]] = [[] for _ in actions]
    for _ in range(max(1, repeats // BATCH)):
        for action, bucket in zip(actions, times):
            for _ in range(BATCH):
                t0 = time.perf_counter()
                action()
                bucket.append(time.perf_counter() - t0)
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


def measure(paths: list[str], sizes: list[int], repeats: int) -> dict[str, object]:
    """Time every query on existing stores, interleaving the sizes (run in a fresh child process)."""
    stores = [Store(path) for path in paths]
    per_size = [queries(store, n) for store, n in zip(stores, sizes)]
    out: dict[str, object] = {str(n): {} for n in sizes}
    for name in per_size[0]:
        for n, samples in zip(sizes, interleaved([q[name] for q in per_size], repeats)):
            out[str(n)][name] = samples  # type: ignore[index]
    out["peak_rss"] = peak_rss()
    for store in stores:
        store.close()
    return out


def collect(repeats: int = REPEATS, sizes: tuple[int, ...] = SIZES) -> dict[str, object]:
    """{"1000": {query: [seconds...]}, ..., populate_s, bytes, peak_rss}; JSON-serializable."""
    result: dict[str, object] = {"populate_s": {}, "bytes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n in sizes:
            store = Store(Path(tmp) / f"bench-{n}.db")
            t0 = time.perf_counter()
            populate(store, n)
            result["populate_s"][str(n)] = time.perf_counter() - t0  # type: ignore[index]
            store.checkpoint()
            result["bytes"][str(n)] = os.path.getsize(store.path)  # type: ignore[index]
            paths.append(str(store.path))
            store.close()
        proc = subprocess.run([sys.executable, __file__, "--measure", json.dumps([paths, list(sizes), repeats])],
                              capture_output=True, text=True, check=True)
        result.update(json.loads(proc.stdout))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=REPEATS, help="calls per query and size")
    parser.add_argument("--json", action="store_true", help="print one JSON object of raw samples")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*json.loads(args.measure))))
        return 0
    result = collect(args.repeat)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"# bench_client: client queries at {', '.join(f'{n:,}' for n in SIZES)} runs")
    print(f"# machine: {describe()}")
    print(f"# median of {args.repeat} calls per size, in alternating batches of {BATCH} (1k, 10k, 100k, 1k, ...)"
          " so background load hits every size alike; milliseconds; fresh client objects every call")
    for n in SIZES:
        print(f"# populated {n:,} runs in {result['populate_s'][str(n)]:.1f} s "  # type: ignore[index]
              f"({result['bytes'][str(n)] / 1e6:.1f} MB)")  # type: ignore[index]
    print()
    print(f"{'query':46} " + " ".join(f"{f'{n // 1000}k ms':>8}" for n in SIZES) + f" {'ratio':>6}  target")
    ok = True
    for name in result[str(SIZES[0])]:  # type: ignore[union-attr]
        meds = [statistics.median(result[str(n)][name]) * 1000 for n in SIZES]  # type: ignore[index]
        ratio = meds[-1] / meds[0]
        good = meds[-1] <= TARGET_MS and ratio <= TARGET_RATIO
        ok &= good
        print(f"{name:46} " + " ".join(f"{m:8.3f}" for m in meds) + f" {ratio:6.2f}  {'ok' if good else 'MISSED'}")
    print()
    print(f"# peak RSS of the query process (all stores open): {result['peak_rss'] / 2**20:.0f} MiB")  # type: ignore[operator]
    print(f"# targets: <= {TARGET_MS} ms at {SIZES[-1]:,} and <= {TARGET_RATIO}x the {SIZES[0]:,} time: "
          f"{'all met' if ok else 'NOT all met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
