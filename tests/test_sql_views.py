"""The documented SQL views (docs/sql.md): names, columns, and agreement with the client."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from datetime import datetime

import pytest
from storefill import fill_run, make_crashed

from runstore import Flow, Run, Store, namespace, use_store

COLUMNS = {
    "runs_view": ["run_id", "flow_id", "flow", "run_number", "pathspec", "uuid", "user", "namespace", "status",
                  "created_at", "finished_at", "created_ts", "finished_ts", "duration_s", "invocation",
                  "origin_pathspec", "end_step", "user_tags", "system_tags", "tags"],
    "tags_view": ["run_id", "flow_id", "flow", "run_number", "pathspec", "tag", "kind", "user", "status",
                  "created_at", "created_ts"],
    "tasks_view": ["task_id", "run_id", "flow", "run_number", "step", "pathspec", "status", "attempt", "user",
                   "created_at", "finished_at", "created_ts", "finished_ts", "duration_s", "foreach_path",
                   "foreach_index", "origin_pathspec", "exception_type", "exception_message"],
    "artifacts_view": ["artifact_id", "task_id", "run_id", "flow", "run_number", "step", "task_pathspec",
                       "pathspec", "name", "attempt", "value", "value_json", "encoding", "type", "size",
                       "blob_key", "user", "created_at", "created_ts"],
    "metadata_view": ["task_id", "run_id", "flow", "run_number", "step", "pathspec", "attempt", "name", "value",
                      "type", "created_at", "created_ts"],
    "parameters_view": ["run_id", "flow", "run_number", "pathspec", "user", "parameters", "created_at",
                        "created_ts"],
    "params_view": ["run_id", "flow_id", "flow", "run_number", "pathspec", "name", "value", "value_sql", "user",
                    "namespace", "status", "created_at", "created_ts"],
}


@pytest.fixture
def db(tmp_path):
    """A file store as a user's sqlite3 would see it, plus the Store that wrote it."""
    path = tmp_path / "runstore.db"
    store = Store(path)
    fill_run(store, user="anne", tags=["exp"], params={"alpha": 0.5, "label": "a"},
             artifacts={"end": {"accuracy": 0.81, "model": {"w": [1, 2]}}})                      # 1
    fill_run(store, user="will", params={"alpha": 0.7, "label": "b"},
             artifacts={"end": {"accuracy": 0.9, "blob": b"\x00\x01"}})                          # 2
    fill_run(store, user="anne", params={"alpha": 0.1, "label": "c"}, fail_at="end")              # 3
    fill_run(store, user="anne", params={"alpha": 0.2, "label": "d"}, retry_at="end",
             artifacts={"end": {"accuracy": 0.1234}})                                             # 4
    crashed = fill_run(store, user="will", finish=False, steps=["start"])                        # 5
    make_crashed(store, crashed.run_id)
    store.checkpoint()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    yield store, conn
    conn.close()
    store.close()


def query(conn: sqlite3.Connection, sql: str, *params) -> list[dict]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def same_instant(text: str | None, moment: datetime | None) -> bool:
    """SQL shows milliseconds (ISO-8601, UTC); the client has microseconds."""
    if text is None or moment is None:
        return text is None and moment is None
    return text.endswith("Z") and abs(datetime.fromisoformat(text[:-1] + "+00:00") - moment).total_seconds() < 0.001


@pytest.mark.parametrize("view", sorted(COLUMNS))
def test_view_columns_are_the_documented_ones(db, view, src_dir):
    _, conn = db
    cur = conn.execute(f"SELECT * FROM {view} LIMIT 0")
    assert [d[0] for d in cur.description] == COLUMNS[view]
    docs = (src_dir / "docs" / "sql.md").read_text()
    assert f"`{view}`" in docs
    for column in COLUMNS[view]:
        assert f"`{column}`" in docs, (view, column)


def test_runs_view_agrees_with_the_client(db):
    store, conn = db
    namespace(None)
    rows = query(conn, "SELECT * FROM runs_view WHERE flow = 'PredictionFlow' ORDER BY created_ts DESC")
    runs = list(Flow("PredictionFlow", store=store))
    assert [r["pathspec"] for r in rows] == [r.pathspec for r in runs]
    for row, run in zip(rows, runs):
        assert row["status"] == run.status
        assert (row["uuid"], row["user"], row["namespace"]) == (run.uuid, run.user, run.namespace)
        assert same_instant(row["created_at"], run.created_at)
        assert abs(row["created_ts"] - run.created_at.timestamp()) < 1e-5
        assert same_instant(row["finished_at"], run.finished_at)
        assert json.loads(row["user_tags"]) == sorted(run.user_tags)
        assert json.loads(row["system_tags"]) == sorted(run.system_tags)
        assert json.loads(row["tags"]) == sorted(run.tags)
    assert [r["status"] for r in rows] == ["crashed", "succeeded", "failed", "succeeded", "succeeded"]


def test_namespace_filter_in_sql_uses_the_tag_index(db):
    store, conn = db
    sql = ("SELECT pathspec FROM tags_view WHERE tag = ? AND flow = ? ORDER BY created_ts DESC LIMIT 10")
    plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, ("user:anne", "PredictionFlow")))
    assert "run_tags_by_tag (tag=? AND flow_id=?)" in plan and "TEMP B-TREE" not in plan
    rows = [r[0] for r in conn.execute(sql, ("user:anne", "PredictionFlow"))]
    namespace("user:anne")
    assert rows == [r.pathspec for r in Flow("PredictionFlow", store=store)]
    kinds = dict(conn.execute("SELECT tag, kind FROM tags_view WHERE pathspec = 'PredictionFlow/1'"))
    assert kinds["exp"] == "user" and kinds["user:anne"] == "system" and kinds["runtime:local"] == "system"


def test_artifacts_view_orders_json_values_numerically(db):
    store, conn = db
    rows = query(conn, "SELECT pathspec, value, attempt FROM artifacts_view WHERE name = 'accuracy'"
                       " ORDER BY value DESC")
    assert [r["value"] for r in rows] == [0.9, 0.81, 0.1234]
    namespace(None)
    for row in rows:
        assert Run("/".join(row["pathspec"].split("/")[:2]), store=store).data.accuracy == row["value"]
    retried = [r for r in rows if r["value"] == 0.1234][0]
    assert retried["attempt"] == 1  # the attempt the client shows, not the failed one
    model = query(conn, "SELECT value, value_json, encoding, type FROM artifacts_view WHERE name = 'model'")[0]
    assert json.loads(model["value_json"]) == {"w": [1, 2]} and json.loads(model["value"]) == {"w": [1, 2]}
    assert (model["encoding"], model["type"]) == ("json", "dict")
    raw = query(conn, "SELECT value, value_json, encoding, size FROM artifacts_view WHERE name = 'blob'")[0]
    assert raw["value"] is None and raw["value_json"] is None and raw["encoding"] == "bytes"


def test_parameters_view_is_one_row_per_run(db):
    _, conn = db
    rows = query(conn, "SELECT pathspec, parameters FROM parameters_view ORDER BY run_number")
    assert len(rows) == 5
    assert json.loads(rows[0]["parameters"]) == {"alpha": 0.5, "label": "a"}
    assert json.loads(rows[4]["parameters"]) == {}
    best = conn.execute("SELECT pathspec FROM parameters_view"
                        " ORDER BY json_extract(parameters, '$.alpha') DESC LIMIT 1").fetchone()[0]
    assert best == "PredictionFlow/2"


def test_tasks_and_metadata_views_agree_with_the_client(db):
    store, conn = db
    namespace(None)
    run = Run("PredictionFlow/3", store=store)
    end = run.end_task
    row = query(conn, "SELECT * FROM tasks_view WHERE pathspec = ?", end.pathspec)[0]
    assert (row["status"], row["exception_type"], row["exception_message"]) == (
        "failed", "builtins.ValueError", "end broke")
    assert row["step"] == "end" and row["user"] == "anne" and row["finished_at"] is not None
    meta = dict(conn.execute("SELECT name, value FROM metadata_view WHERE task_id = ?", (int(end.id),)))
    assert meta == end.metadata_dict
    steps = {r[0] for r in conn.execute("SELECT step FROM tasks_view WHERE flow = 'PredictionFlow'"
                                        " AND run_number = 3")}
    assert steps == {"_parameters", "start", "end"}


def test_sqlite3_command_line(db, tmp_path):
    """What a user types in a shell gives what the client shows."""
    exe = shutil.which("sqlite3")
    if exe is None:
        pytest.skip("no sqlite3 command on this machine")
    store, _ = db
    out = subprocess.run([exe, str(store.path), "SELECT pathspec FROM runs_view WHERE user = 'anne'"
                                                " AND status = 'succeeded' ORDER BY created_ts DESC"],
                         capture_output=True, text=True, check=True).stdout.split()
    with use_store(store):
        namespace("user:anne")
        assert out == [r.pathspec for r in Flow("PredictionFlow") if r.successful]


def test_every_query_in_the_docs_runs(db, src_dir):
    import re

    _, conn = db
    text = (src_dir / "docs" / "sql.md").read_text()
    queries = re.findall(r'sqlite3 runstore.db "(.*?)"', text, re.S)
    for block in re.findall(r"```sql\n(.*?)```", text, re.S):
        lines = [line for line in block.splitlines() if not line.strip().startswith("--")]
        queries += [q for q in "\n".join(lines).split(";") if q.strip()]
    assert len(queries) >= 8
    for sql in queries:
        conn.execute(sql).fetchall()  # no syntax error, no unknown column
