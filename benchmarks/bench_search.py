"""Listing and filtering 10,000 runs by a parameter value: runstore's SQL views and client.

Run from the repository root (in runstore's venv)::

    python benchmarks/bench_search.py --runs 10000 --repeat 5

The same runs as ``benchmarks/peers/mlflow_search.py`` stores in MLflow (``run_all.py``
runs both and prints the ratios): run i of ``SearchFlow`` has the parameters
``x = "v%03d" % (i % 100)`` (each value matches 1 % of the runs), ``alpha = (i % 1000)
/ 1000`` and ``n = i``, and succeeded. The runs are written through the store's own
API (``create_run``, a ``_parameters`` task with ``finish_attempt`` of the three
parameter artifacts, as the runtime records them) inside one outer write transaction;
only the queries are timed, each the median of ``--repeat`` on an open store:

* filter, documented view: ``SELECT pathspec, parameters FROM parameters_view WHERE
  flow = ? AND json_extract(parameters, '$.x') = ?`` (100 rows);
* filter, artifacts: ``artifacts_view`` rows of the ``_parameters`` step with
  ``name = 'x' AND value = ?``, joined back to ``parameters_view`` for all parameters;
* list: every run with status, tags and parameters (``runs_view`` joined with
  ``parameters_view``), and ``list(Flow('SearchFlow'))`` (10,000 client ``Run``
  objects, namespace filter off).

Prints a table, or with ``--json`` one JSON object (seconds per repeat, peak RSS).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))

from values import peak_rss  # noqa: E402

from runstore import Flow, Store, namespace  # noqa: E402

FLOW = "SearchFlow"
TARGET_VALUE = "v042"

FILTER_VIEW = ("SELECT pathspec, parameters FROM parameters_view "
               "WHERE flow = ? AND json_extract(parameters, '$.x') = ?")
FILTER_ARTIFACTS = ("SELECT p.pathspec, p.parameters FROM artifacts_view a "
                    "JOIN parameters_view p ON p.run_id = a.run_id "
                    "WHERE a.flow = ? AND a.step = '_parameters' AND a.name = 'x' AND a.value = ?")
LIST_ALL = ("SELECT r.pathspec, r.status, r.created_at, r.tags, p.parameters FROM runs_view r "
            "JOIN parameters_view p ON p.run_id = r.run_id WHERE r.flow = ? ORDER BY r.created_ts DESC")


def params_of(i: int) -> dict[str, object]:
    return {"x": f"v{i % 100:03d}", "alpha": (i % 1000) / 1000, "n": i}


def populate(store: Store, n: int) -> None:
    """n succeeded runs of FLOW with their parameters, written through the store API in one transaction."""
    with store.write() as conn:
        for i in range(n):
            run = store.create_run(FLOW, user="anne", system_tags=["runtime:local"])
            task = store.create_task(run.run_id, "_parameters")
            store.start_attempt(task, 0)
            prepared = {k: store.prepare_value(v) for k, v in params_of(i).items()}
            store.finish_attempt(task, 0, "succeeded", artifacts=prepared)
            conn.execute("UPDATE runs SET status = 'succeeded', finished_at = created_at + 1 WHERE run_id = ?",
                         (run.run_id,))
    store.checkpoint()


def timed(fn, repeat: int) -> tuple[list[float], object]:
    fn()  # warm up
    out, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t0)
    return out, result


def collect(n: int, repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "search.db")
        t0 = time.perf_counter()
        populate(store, n)
        result: dict[str, object] = {"populate_s": time.perf_counter() - t0,
                                     "bytes": store.path.stat().st_size}

        def sql(query: str, *args: object):
            def run() -> list:
                with store.read() as conn:
                    return conn.execute(query, args).fetchall()
            return run

        samples, rows = timed(sql(FILTER_VIEW, FLOW, TARGET_VALUE), repeat)
        assert len(rows) == n // 100, len(rows)  # type: ignore[arg-type]
        result["filter_view"] = samples
        samples, rows = timed(sql(FILTER_ARTIFACTS, FLOW, TARGET_VALUE), repeat)
        assert len(rows) == n // 100, len(rows)  # type: ignore[arg-type]
        result["filter_artifacts"] = samples
        samples, rows = timed(sql(LIST_ALL, FLOW), repeat)
        assert len(rows) == n  # type: ignore[arg-type]
        result["list_sql"] = samples
        namespace(None)
        samples, runs = timed(lambda: list(Flow(FLOW, store=store)), repeat)
        assert len(runs) == n  # type: ignore[arg-type]
        result["list_client"] = samples
        result["peak_rss"] = peak_rss()
        store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = collect(args.runs, args.repeat)
    if args.json:
        print(json.dumps(result))
        return
    print(f"# {args.runs:,} runs populated in {result['populate_s']:.1f} s; median of {args.repeat}, ms")
    for key in ("filter_view", "filter_artifacts", "list_sql", "list_client"):
        print(f"{key:20} {statistics.median(result[key]) * 1000:9.2f}")  # type: ignore[arg-type]
    print(f"peak RSS {result['peak_rss'] / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
