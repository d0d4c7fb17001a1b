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

* filter, ``params_view`` (schema migration 9): ``WHERE flow = ? AND name = 'x' AND
  value = '"v042"'`` (the index ``run_params_by_value``), joined to ``parameters_view`` for
  every parameter of the 100 runs, as MLflow's ``search_runs`` returns them;
* filter, client: ``list(Flow('SearchFlow').runs(where={'x': 'v042'}))`` (100 ``Run``
  objects, namespace filter off);
* filter, the forms before ``params_view``: ``parameters_view`` + ``json_extract`` (reads
  every run) and ``artifacts_view`` rows of the ``_parameters`` step;
* list: every run with status, tags and parameters (``runs_view`` joined with
  ``parameters_view``), and ``list(Flow('SearchFlow'))`` (10,000 client ``Run``
  objects, namespace filter off).

Also where the file's bytes go: every table and index from SQLite's ``dbstat`` (pages,
payload, unused bytes), and the file size after ``VACUUM`` (page fill).

Prints a table, or with ``--json`` one JSON object (seconds per repeat, peak RSS, bytes).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
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
FILTER_PARAMS = ("SELECT p.pathspec, q.parameters FROM params_view p "
                 "JOIN parameters_view q ON q.run_id = p.run_id "
                 "WHERE p.flow = ? AND p.name = 'x' AND p.value = ?")
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

        result["tables"] = breakdown(store.path)
        samples, rows = timed(sql(FILTER_PARAMS, FLOW, json.dumps(TARGET_VALUE)), repeat)
        assert len(rows) == n // 100, len(rows)  # type: ignore[arg-type]
        result["filter_params_view"] = samples
        namespace(None)
        samples, runs = timed(lambda: list(Flow(FLOW, store=store).runs(where={"x": TARGET_VALUE})), repeat)
        assert len(runs) == n // 100, len(runs)  # type: ignore[arg-type]
        result["filter_client"] = samples
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
        vacuumed = Path(tmp) / "vacuumed.db"
        with sqlite3.connect(store.path) as conn:
            conn.execute("VACUUM INTO ?", (str(vacuumed),))
        result["bytes_vacuumed"] = vacuumed.stat().st_size
    return result


def breakdown(path: Path) -> dict[str, dict[str, int]]:
    """Bytes per table and index: ``{name: {pages, bytes, payload, unused, cells}}`` from ``dbstat``."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        return {name: {"pages": pages, "bytes": pages * page, "payload": payload, "unused": unused, "cells": cells}
                for name, pages, payload, unused, cells in conn.execute(
                    "SELECT name, count(*), sum(payload), sum(unused), sum(ncell) FROM dbstat"
                    " GROUP BY name ORDER BY count(*) DESC, name")}


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
    for key in ("filter_params_view", "filter_client", "filter_view", "filter_artifacts", "list_sql", "list_client"):
        print(f"{key:20} {statistics.median(result[key]) * 1000:9.2f}")  # type: ignore[arg-type]
    print(f"peak RSS {result['peak_rss'] / 2**20:.0f} MiB")
    total = result["bytes"]
    print(f"\n# file {total / 2**20:.2f} MiB ({total / args.runs:.0f} bytes a run); after VACUUM"
          f" {result['bytes_vacuumed'] / 2**20:.2f} MiB. Where the bytes go (dbstat):")
    print(f"{'table or index':32} {'MiB':>6} {'share':>6} {'payload':>8} {'unused':>7} {'rows':>7}")
    for name, t in result["tables"].items():  # type: ignore[union-attr]
        if t["pages"] > 1:
            print(f"{name:32} {t['bytes'] / 2**20:6.2f} {t['bytes'] / total:6.1%} {t['payload'] / 2**20:8.2f}"
                  f" {t['unused'] / 2**20:7.2f} {t['cells']:7}")


if __name__ == "__main__":
    main()
