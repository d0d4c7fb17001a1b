"""Foreach width: store bytes, scheduler peak RSS and wall time of a wide foreach (issue #18).

Run from the repository root (a few minutes at the default widths)::

    python benchmarks/bench_width.py --max-workers 2 | tee benchmarks/results/bench_width.txt

The flow: ``start`` sets ``items = list(range(n))`` and foreaches over it, each child
sets ``result``, a join sums them, ``end`` prints. Before #18 every child stored its
own copy of ``items``' JSON text, so the store grew as n² (n = 1,000 → 11 MiB, 8,000
→ 339 MiB); now an inherited value is a binding to the row ``start`` wrote.

Each width runs ``python flow.py run --max-workers W --max-num-splits n`` in a fresh
folder and process tree: wall time, peak RSS (GNU time's maxrss: the largest process
of the tree, the scheduler), and the store's bytes after the run (``runstore.db`` plus
any ``-wal``), with the row counts of ``artifacts`` and ``task_values``. The last line
gives each measure at the widest width over the narrowest (target ≤ 9× for 8× the width).
``--json`` prints the figures as JSON instead (used by ``run_all.py``, section ``width``).
``--before DIR`` also runs the same widths with ``PYTHONPATH=DIR``, an older runstore source
tree (e.g. ``git archive`` of the commit before #18), for a before/after table.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_runtime import run_measured  # noqa: E402

WIDE = """
from runstore import FlowSpec, step

class WideFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range({n}))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.result = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.result for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total =", self.total)

if __name__ == "__main__":
    WideFlow()
"""


def measure(n: int, workers: int, env: dict[str, str]) -> dict[str, Any]:
    """One run of the wide flow at width ``n``: seconds, peak RSS, store bytes and row counts."""
    with tempfile.TemporaryDirectory(prefix="bench-width-") as tmp:
        folder = Path(tmp)
        (folder / "flow.py").write_text(textwrap.dedent(WIDE.format(n=n)))
        run_env = dict(env, RUNSTORE_DB=str(folder / "runstore.db"))
        seconds, peak = run_measured([sys.executable, "flow.py", "run", "--max-workers", str(workers),
                                      "--max-num-splits", str(n)], folder, run_env)
        size = sum(p.stat().st_size for p in folder.glob("runstore.db*"))
        conn = sqlite3.connect(folder / "runstore.db")
        try:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            rows = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if table in tables else 0
                    for table in ("tasks", "artifacts", "task_values")}
            check = conn.execute("SELECT value FROM artifacts_view WHERE step = 'join' AND name = 'total'").fetchone()
        finally:
            conn.close()
        assert check is not None and check[0] == sum(i * i for i in range(n)), check
        return {"n": n, "seconds": seconds, "peak_rss": peak, "store_bytes": size, "rows": rows}


def table(results: list[dict[str, Any]]) -> None:
    print(f"{'n':>6} {'wall s':>8} {'peak RSS MiB':>13} {'store MiB':>10} {'tasks':>6} {'artifacts':>10} "
          f"{'task_values':>12}")
    for r in results:
        peak = f"{r['peak_rss'] / 2**20:.1f}" if r["peak_rss"] else "?"
        print(f"{r['n']:>6} {r['seconds']:>8.2f} {peak:>13} {r['store_bytes'] / 2**20:>10.2f} "
              f"{r['rows']['tasks']:>6} {r['rows']['artifacts']:>10} {r['rows']['task_values']:>12}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="1000,4000,8000")
    parser.add_argument("--max-workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--before", help="an older runstore source tree to run the same widths with")
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("RUNSTORE_HOME", tempfile.mkdtemp(prefix="bench-width-home-"))
    results = [measure(int(n), args.max_workers, env) for n in args.widths.split(",")]
    first, last = results[0], results[-1]
    ratios = {key: (last[key] / first[key] if first[key] and last[key] else None)
              for key in ("store_bytes", "peak_rss", "seconds")}
    if args.json:
        print(json.dumps({"widths": results, "ratios": ratios, "max_workers": args.max_workers}))
        return 0
    print(f"foreach width, --max-workers {args.max_workers}")
    if args.before:
        before = [measure(int(n), args.max_workers, dict(env, PYTHONPATH=os.path.abspath(args.before)))
                  for n in args.widths.split(",")]
        print(f"before (PYTHONPATH={args.before}):")
        table(before)
        print("after (this tree):")
    table(results)
    text = ", ".join(f"{key} {value:.2f}×" if value else f"{key} ?" for key, value in ratios.items())
    print(f"{last['n']:,} over {first['n']:,} (target ≤ 9× each): {text}")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end: {load} (1/5/15 min) on {os.cpu_count()} CPUs: wall times move with it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
