"""MLflow ``search_runs`` on a ``sqlite:///`` tracking store holding 10,000 runs.

Runs in the peers venv (mlflow), called by ``benchmarks/run_all.py``; alone::

    .peers/bin/python benchmarks/peers/mlflow_search.py --runs 10000 --repeat 5

The same runs as ``benchmarks/bench_search.py`` stores in runstore: run i has the
parameters ``x = "v%03d" % (i % 100)`` (so each value matches 1 % of the runs),
``alpha = (i % 1000) / 1000`` and ``n = i``, and finished successfully.

How the store is populated (only the queries are timed): MLflow creates the
database and its schema (its own migrations), the experiment, and one run through
``MlflowClient`` (``create_run``, ``log_batch`` of the three parameters,
``set_terminated``). The other runs are copies of that run's rows in ``runs``,
``tags`` and ``params`` with a new run id, name, times and parameter values,
inserted in one SQLite transaction: logging 10,000 runs through the tracking API
takes several minutes on this machine and would not change what the queries read.
The count returned by ``search_runs`` is checked.

Queries, each the median over ``--repeat`` (fresh ``MlflowClient`` each time):

* filter: ``MlflowClient().search_runs([exp], filter_string="params.x = 'v042'")``
  -> 100 ``Run`` entities; and the same through ``mlflow.search_runs`` (a pandas
  DataFrame, the call most users write);
* list: all 10,000 runs with their parameters, ``MlflowClient().search_runs`` with
  ``max_results=10000``.

Prints one JSON object with the seconds per repeat, the process's peak resident
memory (VmHWM), the file size, and its bytes per table and index (SQLite's ``dbstat``,
as ``bench_search.py`` reports runstore's).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from values import peak_rss  # noqa: E402

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
logging.getLogger("alembic").setLevel(logging.WARNING)

import mlflow  # noqa: E402
from mlflow.entities import Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

TARGET_VALUE = "v042"


def params_of(i: int) -> dict[str, str]:
    return {"x": f"v{i % 100:03d}", "alpha": repr((i % 1000) / 1000), "n": str(i)}


def populate(db: Path, n: int) -> str:
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("bench", artifact_location=str(db.parent / "artifacts"))
    first = client.create_run(exp, run_name="run-0")
    run_id = first.info.run_id
    client.log_batch(run_id, params=[Param(k, v) for k, v in params_of(0).items()])
    client.set_terminated(run_id)
    conn = sqlite3.connect(db)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    template = dict(zip(cols, conn.execute("SELECT * FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()))
    tags = conn.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall()
    start = template["start_time"] - n * 1000
    runs_rows, tag_rows, param_rows = [], [], []
    for i in range(1, n):
        new_id = uuid.uuid4().hex
        row = dict(template, run_uuid=new_id, name=f"run-{i}", start_time=start + i * 1000,
                   end_time=start + i * 1000 + 500)
        if "artifact_uri" in row and row["artifact_uri"]:
            row["artifact_uri"] = row["artifact_uri"].replace(run_id, new_id)
        runs_rows.append(tuple(row[c] for c in cols))
        tag_rows.extend((k, f"run-{i}" if k == "mlflow.runName" else v, new_id) for k, v in tags)
        param_rows.extend((k, v, new_id) for k, v in params_of(i).items())
    with conn:
        conn.executemany(f"INSERT INTO runs({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", runs_rows)
        conn.executemany("INSERT INTO tags(key, value, run_uuid) VALUES (?, ?, ?)", tag_rows)
        conn.executemany("INSERT INTO params(key, value, run_uuid) VALUES (?, ?, ?)", param_rows)
    conn.close()
    return exp


def breakdown(path: Path) -> dict[str, dict[str, int]]:
    """Bytes per table and index (``dbstat``): ``{name: {pages, bytes, payload, unused, cells}}``."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        return {name: {"pages": pages, "bytes": pages * page, "payload": payload, "unused": unused, "cells": cells}
                for name, pages, payload, unused, cells in conn.execute(
                    "SELECT name, count(*), sum(payload), sum(unused), sum(ncell) FROM dbstat"
                    " GROUP BY name ORDER BY count(*) DESC, name")}
    finally:
        conn.close()


def timed(fn, repeat: int) -> tuple[list[float], object]:
    out, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t0)
    return out, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
    try:
        db = folder / "mlflow.db"
        t0 = time.perf_counter()
        exp = populate(db, args.runs)
        populate_s = time.perf_counter() - t0
        uri = f"sqlite:///{db}"
        mlflow.set_tracking_uri(uri)
        filt = f"params.x = '{TARGET_VALUE}'"
        # warm up: the first query pays for SQLAlchemy's engine and mappers
        MlflowClient(tracking_uri=uri).search_runs([exp], filter_string=filt, max_results=10)
        result: dict[str, object] = {"version": mlflow.__version__, "populate_s": populate_s,
                                     "bytes": db.stat().st_size, "tables": breakdown(db)}
        samples, runs = timed(lambda: MlflowClient(tracking_uri=uri).search_runs(
            [exp], filter_string=filt, max_results=1000), args.repeat)
        assert len(runs) == args.runs // 100, len(runs)  # type: ignore[arg-type]
        result["filter_client"] = samples
        samples, frame = timed(lambda: mlflow.search_runs(experiment_ids=[exp], filter_string=filt), args.repeat)
        assert len(frame) == args.runs // 100  # type: ignore[arg-type]
        result["filter_dataframe"] = samples
        samples, runs = timed(lambda: MlflowClient(tracking_uri=uri).search_runs(
            [exp], max_results=args.runs), args.repeat)
        assert len(runs) == args.runs and all(r.data.params for r in runs)  # type: ignore[union-attr, arg-type]
        result["list_client"] = samples
        result["peak_rss"] = peak_rss()
        print(json.dumps(result))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
