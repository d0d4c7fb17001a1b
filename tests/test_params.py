"""Parameters by value (#18): ``run_params``/``params_view``, ``Flow.runs(where=...)``, migration 9.

Everything runs on real files; the hostile-merge tests build the attacker's file by
running runstore normally and then editing it with the ``sqlite3`` module.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers import run_flow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storefill import fill_run

from runstore import Flow, ParameterError, Run, RunstoreError, Store, namespace
from runstore.schema import MIGRATIONS, SCHEMA_VERSION
from runstore.store._db import _split_sql

FLOWS = Path(__file__).parent / "flows"


def params_rows(store: Store, flow: str = "PredictionFlow") -> list[tuple[Any, ...]]:
    return store.sql("SELECT pathspec, name, value FROM params_view WHERE flow = ? ORDER BY run_number, name",
                     [flow]).rows


def found(flow: Flow, *tags: str, **where: Any) -> list[str]:
    return [r.pathspec for r in flow.runs(*tags, where=where)]


def plan(conn: sqlite3.Connection, sql: str, *args: Any) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


# ------------------------------------------------------------ the view


def test_params_view_has_one_row_per_run_and_parameter(file_store: Store) -> None:
    fill_run(file_store, params={"alpha": 0.5, "label": "a", "layers": [64, 32], "on": True, "none": None})
    fill_run(file_store, params={"alpha": 2, "shape": (3, 4)})  # a tuple is pickled: no JSON text
    fill_run(file_store)                                          # no parameters: no rows
    assert params_rows(file_store) == [
        ("PredictionFlow/1", "alpha", "0.5"), ("PredictionFlow/1", "label", '"a"'),
        ("PredictionFlow/1", "layers", "[64,32]"), ("PredictionFlow/1", "none", "null"),
        ("PredictionFlow/1", "on", "true"),
        ("PredictionFlow/2", "alpha", "2"), ("PredictionFlow/2", "shape", None),
    ]
    row = file_store.sql("SELECT * FROM params_view WHERE name = 'label'").as_dicts()[0]
    assert (row["flow"], row["run_number"], row["user"], row["namespace"], row["status"], row["value_sql"]) == (
        "PredictionFlow", 1, "anne", "user:anne", "succeeded", "a")
    # the same values as the client and parameters_view show
    namespace(None)
    assert Run("PredictionFlow/1", store=file_store)["_parameters"].task.data.layers == [64, 32]
    whole = json.loads(file_store.sql("SELECT parameters FROM parameters_view WHERE run_number = 1").rows[0][0])
    assert {name: json.loads(value) for _, name, value in params_rows(file_store)[:5]} == whole


def test_filter_by_name_and_value_is_an_index_search(file_store: Store) -> None:
    for i in range(30):
        fill_run(file_store, params={"alpha": i / 10, "x": f"v{i % 3}"}, steps=["end"])
    file_store.checkpoint()
    conn = sqlite3.connect(f"file:{file_store.path}?mode=ro", uri=True)
    try:
        for sql, args in [
            ("SELECT pathspec FROM params_view WHERE name = ? AND value = ?", ("x", '"v1"')),
            ("SELECT pathspec, value FROM params_view WHERE name = ? AND value = ? AND flow = ?",
             ("alpha", "0.5", "PredictionFlow")),
        ]:
            used = plan(conn, sql, *args)
            assert "run_params_by_value (name=? AND value=?)" in used, used
            assert "SCAN" not in used, used
        assert [r[0] for r in conn.execute("SELECT pathspec FROM params_view WHERE name = 'x' AND value = '\"v1\"'"
                                           " ORDER BY run_number")] == [f"PredictionFlow/{i + 1}"
                                                                        for i in range(1, 30, 3)]
    finally:
        conn.close()


def test_rows_go_with_their_run(file_store: Store) -> None:
    fill_run(file_store, params={"alpha": 0.1})
    fill_run(file_store, params={"alpha": 0.2})
    file_store.delete_runs(["PredictionFlow/1"])
    assert params_rows(file_store) == [("PredictionFlow/2", "alpha", "0.2")]
    with file_store.read() as conn:
        assert conn.execute("SELECT count(*) FROM run_params").fetchone()[0] == 1


# ------------------------------------------------------------ Flow.runs(where=...)


def test_where_matches_json_equal_values(client_store: Store) -> None:
    fill_run(client_store, params={"alpha": 0.1, "n": 1, "opt": "adam", "on": True})     # 1
    fill_run(client_store, params={"alpha": 0.5, "n": 1.0, "opt": "sgd", "on": False})    # 2
    fill_run(client_store, params={"alpha": 0.1, "n": 2, "opt": "1", "on": 1})            # 3
    flow = Flow("PredictionFlow")
    assert found(flow, alpha=0.1) == ["PredictionFlow/3", "PredictionFlow/1"]
    assert found(flow, n=1) == ["PredictionFlow/2", "PredictionFlow/1"]       # 1 == 1.0 as JSON numbers
    assert found(flow, n=1.0) == ["PredictionFlow/2", "PredictionFlow/1"]
    assert found(flow, opt="adam") == ["PredictionFlow/1"]
    assert found(flow, opt=1) == []                                            # "1" is a string
    assert found(flow, on=True) == ["PredictionFlow/1"]                        # a bool is not the number 1
    assert found(flow, on=1) == ["PredictionFlow/3"]
    assert found(flow, alpha=0.1, opt="adam") == ["PredictionFlow/1"]        # keys ANDed
    assert found(flow, alpha=0.1, opt="sgd") == []
    assert found(flow, missing=1) == []
    assert [r.pathspec for r in flow.runs(where={})] == [f"PredictionFlow/{n}" for n in (3, 2, 1)]


def test_where_composes_with_namespace_and_tags(client_store: Store) -> None:
    fill_run(client_store, user="anne", tags=["exp"], params={"alpha": 0.1})     # 1
    fill_run(client_store, user="will", tags=["exp"], params={"alpha": 0.1})     # 2
    fill_run(client_store, user="anne", params={"alpha": 0.1})                   # 3
    fill_run(client_store, user="anne", tags=["exp"], params={"alpha": 0.2})     # 4
    fill_run(client_store, "OtherFlow", user="anne", tags=["exp"], params={"alpha": 0.1})
    namespace("user:anne")
    flow = Flow("PredictionFlow")
    assert found(flow, alpha=0.1) == ["PredictionFlow/3", "PredictionFlow/1"]
    assert found(flow, "exp", alpha=0.1) == ["PredictionFlow/1"]
    namespace(None)
    assert found(Flow("PredictionFlow"), "exp", alpha=0.1) == ["PredictionFlow/2", "PredictionFlow/1"]
    assert "where={'alpha': 0.1}" in repr(Flow("PredictionFlow").runs(where={"alpha": 0.1}))


def test_where_pages_through_many_matches(client_store: Store) -> None:
    for i in range(260):
        fill_run(client_store, params={"even": i % 2 == 0}, steps=["end"])
    namespace(None)
    runs = found(Flow("PredictionFlow"), even=True)
    assert runs == [f"PredictionFlow/{n}" for n in range(259, 0, -2)]


@pytest.mark.parametrize("value", [(1, 2), {1, 2}, float("nan"), float("inf"), object(), b"x", {1: "a"}])
def test_where_refuses_a_value_json_cannot_hold(client_store: Store, value: Any) -> None:
    fill_run(client_store, params={"alpha": 0.1})
    with pytest.raises(ParameterError, match="not a JSON value") as info:
        Flow("PredictionFlow").runs(where={"alpha": value})
    assert isinstance(info.value, ValueError) and isinstance(info.value, RunstoreError)
    assert "\n" not in str(info.value)
    with pytest.raises(ParameterError, match="dict of parameter names"):
        Flow("PredictionFlow").runs(where=[("alpha", 0.1)])  # type: ignore[arg-type]


_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
                     st.sampled_from([0, 0.0, -0.0, 1, 1.0, 2 ** 53, float(2 ** 53), "1", "true", "null"]))


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON values: bools only with bools, numbers by value, otherwise same type and value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=_scalars, asked=_scalars)
def test_where_is_json_equality_over_plain_values(stored: Any, asked: Any) -> None:
    store = Store(":memory:")
    try:
        fill_run(store, params={"p": stored}, steps=["end"])
        namespace(None)
        hits = found(Flow("PredictionFlow", store=store), p=asked)
        assert hits == (["PredictionFlow/1"] if json_equal(stored, asked) else []), (stored, asked)
        assert found(Flow("PredictionFlow", store=store), p=stored) == ["PredictionFlow/1"]
    finally:
        store.close()


# ------------------------------------------------------------ resume, merge, export


def test_resumed_and_cloned_runs_have_their_parameters(tmp_path: Path) -> None:
    db = tmp_path / "runstore.db"
    fail = tmp_path / "fail"
    fail.touch()
    env = {"RESUME_FAIL_FILE": str(fail)}
    assert run_flow(FLOWS / "resume_flow.py", db, "run", "--alpha", "3", "--label", "x", env=env).returncode == 1
    fail.unlink()
    done = run_flow(FLOWS / "resume_flow.py", db, "resume", env=env)
    assert done.returncode == 0, done.stderr
    store = Store(db)
    rows = store.sql("SELECT run_number, name, value FROM params_view ORDER BY run_number, name").rows
    assert rows == [(1, "alpha", "3"), (1, "label", '"x"'), (1, "learning_rate", "0.01"),
                    (2, "alpha", "3"), (2, "label", '"x"'), (2, "learning_rate", "0.01")]
    namespace(None)
    assert found(Flow("ResumeFlow", store=store), alpha=3, label="x") == ["ResumeFlow/2", "ResumeFlow/1"]
    store.close()


def test_export_and_merge_carry_parameters(tmp_path: Path) -> None:
    source = Store(tmp_path / "a.db")
    fill_run(source, params={"alpha": 0.1, "label": "a"})
    fill_run(source, params={"alpha": 0.2, "label": "b"})
    source.export_runs(["PredictionFlow/2"], tmp_path / "out.db")
    exported = Store(tmp_path / "out.db")
    assert params_rows(exported) == [("PredictionFlow/2", "alpha", "0.2"), ("PredictionFlow/2", "label", '"b"')]
    target = Store(tmp_path / "b.db")
    fill_run(target, params={"alpha": 0.9})
    target.merge_from(tmp_path / "a.db")
    assert params_rows(target) == [("PredictionFlow/1", "alpha", "0.9"),
                                   ("PredictionFlow/2", "alpha", "0.1"), ("PredictionFlow/2", "label", '"a"'),
                                   ("PredictionFlow/3", "alpha", "0.2"), ("PredictionFlow/3", "label", '"b"')]
    for store in (source, exported, target):
        store.close()


def test_merge_ignores_a_forged_run_params_table(tmp_path: Path) -> None:
    """The attacker's file claims alpha = 0.1 (run_params and the artifact's JSON copy); the value is 0.5."""
    evil = tmp_path / "evil.db"
    store = Store(evil)
    fill_run(store, params={"alpha": 0.5}, tags=["victim"])
    store.close()
    conn = sqlite3.connect(evil)
    with conn:
        conn.execute("UPDATE run_params SET value = '0.1' WHERE name = 'alpha'")
        conn.execute("INSERT INTO run_params(run_id, name, value) VALUES (1, 'admin', 'true')")
        conn.execute("UPDATE artifacts SET json_value = '0.1' WHERE name = 'alpha'")
    conn.close()
    mine = Store(tmp_path / "mine.db")
    fill_run(mine, params={"alpha": 0.1})
    mine.merge_from(evil)
    assert params_rows(mine) == [("PredictionFlow/1", "alpha", "0.1"), ("PredictionFlow/2", "alpha", "0.5")]
    namespace(None)
    flow = Flow("PredictionFlow", store=mine)
    assert found(flow, alpha=0.1) == ["PredictionFlow/1"]       # the merged run does not appear
    assert found(flow, admin=True) == []
    assert found(flow, alpha=0.5) == ["PredictionFlow/2"]
    assert Run("PredictionFlow/2", store=mine)["_parameters"].task.data.alpha == 0.5
    mine.close()


def test_merge_of_a_json_blob_that_is_not_json_gives_no_value(tmp_path: Path) -> None:
    """A parameter blob rewritten (with a matching key) to text JSON cannot hold is never matched."""
    evil = tmp_path / "evil.db"
    store = Store(evil)
    fill_run(store, params={"alpha": 0.5})
    store.close()
    data = b"NaN"
    key = hashlib.sha256(data).hexdigest()
    conn = sqlite3.connect(evil)
    with conn:
        conn.execute("INSERT INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data)"
                     " VALUES (?, 'none', 3, 1.0, ?)", (key, data))
        conn.execute("INSERT INTO blobs(blob_key, size, n_chunks, created_at) VALUES (?, 3, 1, 1.0)", (key,))
        conn.execute("INSERT INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, 0, ?)", (key, key))
        conn.execute("UPDATE artifacts SET blob_key = ?, json_value = 'NaN' WHERE name = 'alpha'", (key,))
    conn.close()
    mine = Store(tmp_path / "mine.db")
    mine.merge_from(evil)
    assert params_rows(mine) == [("PredictionFlow/1", "alpha", None)]
    namespace(None)
    assert found(Flow("PredictionFlow", store=mine), alpha=0.5) == []
    mine.close()


# ------------------------------------------------------------ migration


def write_version_7(path: Path) -> None:
    """A file as runstore at schema version 7 wrote it: two runs with parameters, one without.

    Rows are written by hand with that version's columns, blobs included, so the
    file is what a user of that version has on disk.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("BEGIN")
    for script in MIGRATIONS[:7]:
        for statement in _split_sql(script):
            conn.execute(statement)
    conn.execute("INSERT INTO store_info(key, value) VALUES ('uuid', '01d00000-0000-4000-8000-000000000077'),"
                 " ('created_at', '1.0')")
    conn.execute("INSERT INTO flows(name, created_at, last_run_number) VALUES ('OldFlow', 1.0, 3)")

    def blob(value: Any) -> tuple[str, int, str]:
        data = json.dumps(value, separators=(",", ":")).encode()
        key = hashlib.sha256(data).hexdigest()
        conn.execute("INSERT OR IGNORE INTO blob_chunks(chunk_key, compression, raw_size, touched_at, data)"
                     " VALUES (?, 'none', ?, 1.0, ?)", (key, len(data), data))
        conn.execute("INSERT OR IGNORE INTO blobs(blob_key, size, n_chunks, created_at) VALUES (?, ?, 1, 1.0)",
                     (key, len(data)))
        conn.execute("INSERT OR IGNORE INTO blob_parts(blob_key, seq, chunk_key) VALUES (?, 0, ?)", (key, key))
        return key, len(data), data.decode()

    for number, params in [(1, {"alpha": 0.1, "opt": "adam"}), (2, {"alpha": 0.5, "opt": "adam"}), (3, {})]:
        run_id = conn.execute(
            "INSERT INTO runs(flow_id, run_number, uuid, user_name, namespace, status, created_at, finished_at)"
            " VALUES (1, ?, ?, 'anne', 'user:anne', 'succeeded', ?, ?)",
            (number, f"01d00000-0000-4000-8000-00000000000{number}", 100.0 + number, 160.0 + number)).lastrowid
        conn.execute("INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at) VALUES (?, 'user:anne', 1, 1, ?)",
                     (run_id, 100.0 + number))
        step_id = conn.execute("INSERT INTO steps(run_id, name, created_at) VALUES (?, '_parameters', 1.0)",
                               (run_id,)).lastrowid
        task_id = conn.execute("INSERT INTO tasks(run_id, step_id, created_at, finished_at, status, attempt)"
                               " VALUES (?, ?, 1.0, 2.0, 'succeeded', 0)", (run_id, step_id)).lastrowid
        conn.execute("INSERT INTO attempts(task_id, attempt, started_at, finished_at, status)"
                     " VALUES (?, 0, 1.0, 2.0, 'succeeded')", (task_id,))
        for name, value in {**params, "_graph_info": {"steps": []}}.items():
            key, size, text = blob(value)
            conn.execute("INSERT INTO artifacts(task_id, attempt, name, blob_key, encoding, type, size, created_at,"
                         " json_value) VALUES (?, 0, ?, ?, 'json', ?, ?, 1.0, ?)",
                         (task_id, name, key, type(value).__name__, size, text))
    conn.execute("PRAGMA user_version = 7")
    conn.execute("COMMIT")
    conn.close()


def test_version_7_file_gets_its_parameters_by_value(tmp_path: Path) -> None:
    path = tmp_path / "runstore.db"
    write_version_7(path)
    store = Store(path)
    with store.read() as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert params_rows(store, "OldFlow") == [("OldFlow/1", "alpha", "0.1"), ("OldFlow/1", "opt", '"adam"'),
                                             ("OldFlow/2", "alpha", "0.5"), ("OldFlow/2", "opt", '"adam"')]
    namespace("user:anne")
    flow = Flow("OldFlow", store=store)
    assert found(flow, opt="adam") == ["OldFlow/2", "OldFlow/1"]
    assert found(flow, alpha=0.5, opt="adam") == ["OldFlow/2"]
    assert Run("OldFlow/1", store=store)["_parameters"].task.data.alpha == 0.1
    assert store.integrity_problems() == []
    # a run recorded after the upgrade is indexed as it commits
    fill_run(store, "OldFlow", params={"alpha": 0.5})
    assert found(flow, alpha=0.5) == ["OldFlow/4", "OldFlow/2"]
    store.close()
    assert (tmp_path / "runstore.v7-backup.db").exists()
    old = Store(tmp_path / "runstore.v7-backup.db", diagnose=True)  # what `runstore doctor` opens
    assert not [p for p in old.doctor().problems if "run_params" in p]
    old.close()


def test_a_float_that_is_an_integer_matches_as_json(client_store: Store) -> None:
    fill_run(client_store, params={"big": float(2 ** 60), "neg": -0.0})
    flow = Flow("PredictionFlow")
    assert found(flow, big=2 ** 60) == ["PredictionFlow/1"]
    assert found(flow, neg=0) == ["PredictionFlow/1"]
    assert not math.isnan(0.0)


# ------------------------------------------------------------ the UI's sorted runs page


def test_ui_sorts_by_a_parameter_through_run_params(tmp_path: Path) -> None:
    """The sorted runs page reads each run's value from run_params (edited here: the page follows)."""
    from runstore.ui.data import RunsQuery, SortBy, list_runs_sorted

    path = tmp_path / "runstore.db"
    store = Store(path)
    for alpha in (0.5, 10, 2, "b", None):
        fill_run(store, params={"alpha": alpha} if alpha is not None else {}, steps=["end"])
    by = SortBy("param", "alpha")
    order = [r["run_number"] for r in list_runs_sorted(store, RunsQuery(limit=10), by).rows]
    assert order == [1, 3, 2, 4, 5]  # numbers as numbers, then strings, the run lacking it last
    store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE run_params SET value = '-1' WHERE value = '10'")
    conn.close()
    store = Store(path, readonly=True)
    assert [r["run_number"] for r in list_runs_sorted(store, RunsQuery(limit=10), by).rows] == [2, 1, 3, 4, 5]
    store.close()


def test_doctor_reports_edited_parameters_and_export_rebuilds_them(tmp_path: Path) -> None:
    path = tmp_path / "runstore.db"
    store = Store(path)
    fill_run(store, params={"alpha": 0.5})
    fill_run(store, params={"alpha": 0.7})
    assert store.doctor().ok
    store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE run_params SET value = '0.1' WHERE value = '0.5'")
    conn.close()
    store = Store(path)
    report = store.doctor()
    assert [p for p in report.problems if "run_params" in p] == [
        "run PredictionFlow/1: its parameters in run_params (params_view, Flow.runs(where=...)) and the JSON"
        " values of its _parameters task differ (an edited file); `runstore export` rebuilds run_params"
        " from the stored values"]
    store.export_runs(["PredictionFlow"], tmp_path / "fixed.db")
    fixed = Store(tmp_path / "fixed.db")
    assert fixed.doctor().ok
    assert params_rows(fixed) == [("PredictionFlow/1", "alpha", "0.5"), ("PredictionFlow/2", "alpha", "0.7")]
    fixed.close()
    store.close()
