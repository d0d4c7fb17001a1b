"""Inherited artifacts by reference (#18): one row per value stored, bindings for the rest.

Every task must still show exactly the artifacts the copy-everything store showed:
each shape below spells out, per task, what a task had under the old semantics
(everything its input had, minus what it deleted, plus what it set; a join only what
it set or merged; parameters everywhere), and the client, ``artifacts_view`` and the
stored rows are checked against it. docs/storage.md "Inherited artifacts by reference".
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import run_flow
from hypothesis import given, settings
from hypothesis import strategies as st

from runstore import Run, Store, namespace

HEADER = """
import os
from runstore import FlowSpec, Parameter, step
"""

LINEAR = HEADER + """
class LinearShape(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.a = 1
        self.big = list(range(50))
        self.gone = "x"
        self.next(self.mid)

    @step
    def mid(self):
        assert self.big[3] == 3  # read (cached on self): still the inherited value
        self.a = 1               # set to the value it had
        del self.gone
        self.c = {"k": [1, 2]}
        self.next(self.end)

    @step
    def end(self):
        if os.path.exists(os.environ.get("SHAPE_FAIL", "/nonexistent")):
            raise RuntimeError("end fails on purpose")
        self.d = (1, 2)

if __name__ == "__main__":
    LinearShape()
"""

BRANCH = HEADER + """
class BranchShape(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.x = 1
        self.shared = [1, 2]
        self.next(self.a, self.b)

    @step
    def a(self):
        self.y = "a"
        self.next(self.join)

    @step
    def b(self):
        self.y = "b"
        self.z = 5
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs, exclude=["y"])
        self.y = inputs.a.y + inputs.b.y
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    BranchShape()
"""

FOREACH = HEADER + """
class ForeachShape(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.items = list(range(4))
        self.k = 7
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.r = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.r for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ForeachShape()
"""

NESTED = HEADER + """
class NestedShape(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.outer = [0, 1]
        self.next(self.mid, foreach="outer")

    @step
    def mid(self):
        self.o = self.input
        self.inner = [10, 20]
        self.next(self.leaf, foreach="inner")

    @step
    def leaf(self):
        self.v = self.o + self.input
        self.next(self.join_inner)

    @step
    def join_inner(self, inputs):
        self.vs = sorted(i.v for i in inputs)
        self.merge_artifacts(inputs, include=["o", "inner"])
        self.next(self.join_outer)

    @step
    def join_outer(self, inputs):
        self.all = sorted(v for i in inputs for v in i.vs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    NestedShape()
"""

SWITCH = HEADER + """
class SwitchShape(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.mode = "hi"
        self.w = [1]
        self.next({"hi": self.high, "lo": self.low}, condition="mode")

    @step
    def high(self):
        self.h = 1
        self.next(self.end)

    @step
    def low(self):
        self.h = 0
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SwitchShape()
"""

P = {"alpha": 0.5}
BIG = list(range(50))
LINEAR_WANT = {
    ("start", None): {**P, "a": 1, "big": BIG, "gone": "x"},
    ("mid", None): {**P, "a": 1, "big": BIG, "c": {"k": [1, 2]}},
    ("end", None): {**P, "a": 1, "big": BIG, "c": {"k": [1, 2]}, "d": (1, 2)},
}
JOINED = {**P, "x": 1, "shared": [1, 2], "z": 5, "y": "ab"}
SHAPES: dict[str, tuple[str, dict[tuple[str, str | None], dict[str, Any]]]] = {
    "linear": (LINEAR, LINEAR_WANT),
    "branch_join_merge": (BRANCH, {
        ("start", None): {**P, "x": 1, "shared": [1, 2]},
        ("a", None): {**P, "x": 1, "shared": [1, 2], "y": "a"},
        ("b", None): {**P, "x": 1, "shared": [1, 2], "y": "b", "z": 5},
        ("join", None): JOINED,
        ("end", None): JOINED,
    }),
    "foreach": (FOREACH, {
        ("start", None): {**P, "items": [0, 1, 2, 3], "k": 7},
        **{("body", f"start:{i}"): {**P, "items": [0, 1, 2, 3], "k": 7, "r": 2 * i} for i in range(4)},
        ("join", None): {**P, "total": 12},
        ("end", None): {**P, "total": 12},
    }),
    "nested_foreach": (NESTED, {
        ("start", None): {**P, "outer": [0, 1]},
        **{("mid", f"start:{i}"): {**P, "outer": [0, 1], "o": i, "inner": [10, 20]} for i in range(2)},
        **{("leaf", f"start:{i},mid:{j}"): {**P, "outer": [0, 1], "o": i, "inner": [10, 20], "v": i + 10 * (j + 1)}
           for i in range(2) for j in range(2)},
        **{("join_inner", f"start:{i}"): {**P, "vs": [i + 10, i + 20], "o": i, "inner": [10, 20]} for i in range(2)},
        ("join_outer", None): {**P, "all": [10, 11, 20, 21]},
        ("end", None): {**P, "all": [10, 11, 20, 21]},
    }),
    "switch": (SWITCH, {
        ("start", None): {**P, "mode": "hi", "w": [1]},
        ("high", None): {**P, "mode": "hi", "w": [1], "h": 1},
        ("end", None): {**P, "mode": "hi", "w": [1], "h": 1},
    }),
}
#: What the runtime adds privately (per shape and step): foreach tasks their frames.
FOREACH_PRIVATE = {"_foreach_stack", "_foreach_input"}


def shown(store: Store, pathspec: str) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Every task of a run as the client shows it: {(step, foreach_path): {name: value}}."""
    namespace(None)
    flow, number = pathspec.split("/")
    paths = {t["task_id"]: t["foreach_path"] for t in store.list_run_tasks(store.find_run(flow, int(number))["run_id"])}
    out = {}
    for step in Run(pathspec, store=store):
        for task in step:
            key = (step.id, paths[int(task.id)])
            assert key not in out
            out[key] = {artifact.id: artifact.data for artifact in task}
            # the three ways in agree: iteration, task[name], task.data.name
            for name, value in out[key].items():
                assert task[name].data == value and getattr(task.data, name) == value
                assert name in task
    return out


def view_rows(path: Path, run_id: int) -> dict[int, dict[str, tuple[Any, ...]]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT task_id, name, value_json, encoding, type, size, blob_key, step"
                            " FROM artifacts_view WHERE run_id = ?", (run_id,)).fetchall()
    finally:
        conn.close()
    out: dict[int, dict[str, tuple[Any, ...]]] = {}
    for task_id, name, *rest in rows:
        assert name not in out.setdefault(task_id, {})
        out[task_id][name] = tuple(rest)
    return out


def check_run(store: Store, path: Path, pathspec: str, want: dict[tuple[str, str | None], dict[str, Any]]) -> None:
    got = shown(store, pathspec)
    assert got == want
    flow, number = pathspec.split("/")
    run = store.find_run(flow, int(number))
    view = view_rows(path, run["run_id"])
    for task in store.list_run_tasks(run["run_id"]):
        if task["step"] == "_parameters":
            continue
        rows = store.list_artifacts(task["task_id"], task["attempt"], private=True)
        names = {r["name"] for r in rows}
        public = {n for n in names if not n.startswith("_")}
        assert public == set(want[(task["step"], task["foreach_path"])])
        assert (names & FOREACH_PRIVATE == FOREACH_PRIVATE) == bool(task["foreach_path"])
        # artifacts_view: the same names, blobs and JSON previews as the client's rows
        assert set(view[task["task_id"]]) == names
        for r in rows:
            value_json, encoding, kind, size, blob_key, _ = view[task["task_id"]][r["name"]]
            assert (encoding, kind, size, blob_key, value_json) == (
                r["encoding"], r["type"], r["size"], r["blob_key"], r["json_value"])
            if not r["name"].startswith("_") and encoding == "json":
                assert json.loads(value_json) == want[(task["step"], task["foreach_path"])][r["name"]]
        refs = store.list_artifact_refs(task["task_id"])
        assert set(refs) == names and all(ref.artifact_id is not None for ref in refs.values())


def stored_rows(path: Path, run_id: int, name: str) -> int:
    """How many ``artifacts`` rows of a run hold ``name`` (bindings not counted)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM artifacts a JOIN tasks t ON t.task_id = a.task_id"
                            " WHERE t.run_id = ? AND a.name = ?", (run_id, name)).fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_task_shows_what_copy_everything_showed(shape: str, tmp_path: Path) -> None:
    source, want = SHAPES[shape]
    flow = tmp_path / "flow.py"
    flow.write_text(textwrap.dedent(source))
    db = tmp_path / "runstore.db"
    done = run_flow(flow, db, "run", quiet=True)
    assert done.returncode == 0, done.stderr
    with Store(db) as store:
        name = store.list_flows()[0]["name"]
        check_run(store, db, f"{name}/1", want)
        run_id = store.find_run(name, 1)["run_id"]
    # Inherited values are stored once per run, not once per task that has them.
    assert stored_rows(db, run_id, "alpha") == 1
    inherited = {"linear": "big", "branch_join_merge": "shared", "foreach": "items",
                 "nested_foreach": "outer", "switch": "w"}[shape]
    assert stored_rows(db, run_id, inherited) == 1


def test_a_read_or_reset_value_is_bound_not_stored_again(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(textwrap.dedent(LINEAR))
    db = tmp_path / "runstore.db"
    assert run_flow(flow, db, "run", quiet=True).returncode == 0
    with Store(db) as store:
        run_id = store.find_run("LinearShape", 1)["run_id"]
    # mid read self.big and set self.a = 1 again: both stay bindings to start's rows
    assert stored_rows(db, run_id, "a") == 1 and stored_rows(db, run_id, "big") == 1
    assert stored_rows(db, run_id, "c") == 1


def test_resume_clones_show_the_same_artifacts_and_bind_inherited_values(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(textwrap.dedent(LINEAR))
    db = tmp_path / "runstore.db"
    fail = tmp_path / "fail"
    fail.write_text("")
    env = {"SHAPE_FAIL": str(fail)}
    assert run_flow(flow, db, "run", quiet=True, env=env).returncode != 0
    fail.unlink()
    done = run_flow(flow, db, "resume", quiet=True, env=env)
    assert done.returncode == 0, done.stderr
    with Store(db) as store:
        check_run(store, db, "LinearShape/2", LINEAR_WANT)
        run_id = store.find_run("LinearShape", 2)["run_id"]
    conn = sqlite3.connect(db)
    cloned = dict(conn.execute("SELECT s.name, t.origin_pathspec FROM tasks t JOIN steps s ON s.step_id = t.step_id"
                               " WHERE t.run_id = ?", (run_id,)).fetchall())
    conn.close()
    assert cloned["start"] and cloned["mid"] and not cloned["end"]
    # start's clone owns its values; mid's clone binds them; the parameters are the
    # resumed run's _parameters row.
    assert stored_rows(db, run_id, "big") == 1
    assert stored_rows(db, run_id, "alpha") == 1
    # nothing points into the origin run: deleting it and collecting garbage keeps the resumed run whole
    with Store(db) as store:
        assert store.delete_runs(["LinearShape/1"]) == ["LinearShape/1"]
        store.gc()
        check_run(store, db, "LinearShape/2", LINEAR_WANT)
        assert store.doctor().problems == []


def _table_bytes(path: Path) -> int | None:
    """Bytes of the pages of the tables and indexes holding artifacts, or None without dbstat."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN ('artifacts', 'task_values', 'blobs',"
            " 'artifacts_by_blob', 'artifacts_by_name', 'task_values_by_artifact', 'sqlite_autoindex_artifacts_1')"
        ).fetchone()[0]
    except sqlite3.OperationalError:  # SQLite built without the dbstat table
        return None
    finally:
        conn.close()


WIDE = HEADER + """
class WideShape(FlowSpec):
    @step
    def start(self):
        self.items = list(range(int(os.environ["WIDTH"])))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.r = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.r for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    WideShape()
"""


def test_a_foreach_four_times_wider_stores_about_four_times_more(tmp_path: Path) -> None:
    """Before #18, n children each stored the O(n) JSON text of ``items``: bytes grew as n²."""
    flow = tmp_path / "flow.py"
    flow.write_text(textwrap.dedent(WIDE))
    sizes, rows = {}, {}
    for n in (200, 800):
        db = tmp_path / f"w{n}.db"
        done = run_flow(flow, db, "run", "--max-num-splits", str(n), "--max-workers", "2", quiet=True,
                        env={"WIDTH": str(n)}, timeout=300)
        assert done.returncode == 0, done.stderr
        conn = sqlite3.connect(db)
        rows[n] = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("artifacts", "task_values")}
        assert conn.execute("SELECT count(*) FROM artifacts WHERE name = 'items'").fetchone()[0] == 1
        items_json = json.dumps(list(range(n)), separators=(",", ":"))
        # the preview is stored once, in blobs; artifact rows carry none
        assert conn.execute("SELECT count(*) FROM blobs WHERE json_value = ?", (items_json,)).fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM artifacts WHERE json_value IS NOT NULL").fetchone()[0] == 0
        conn.close()
        sizes[n] = _table_bytes(db) or db.stat().st_size
    # per child: r, _foreach_stack, _foreach_input stored; 4 bindings (+ items, alpha-free flow)
    for table in ("artifacts", "task_values"):
        assert rows[800][table] / rows[200][table] < 4.1, rows
    assert sizes[800] / sizes[200] < 5, sizes  # n² would be ~16


# ------------------------------------------------------------ migration 8

RETRY = HEADER + """
from runstore import retry

class RetryShape(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.items = list(range(3))
        self.next(self.body, foreach="items")

    @retry(times=1, minutes_between_retries=0)
    @step
    def body(self):
        self.r = self.input
        marker = os.path.join(os.environ["MARKS"], str(self.input))
        if self.input == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            self.partial = "left by the failed attempt"
            raise RuntimeError("first attempt fails")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs, include=["items"])
        self.total = sum(i.r for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.blob = b"raw"

if __name__ == "__main__":
    RetryShape()
"""

#: Tables of schema 7 copied as they are (artifacts is rebuilt the way version 7 wrote it).
V7_TABLES = ("store_info", "flows", "blob_chunks", "blobs", "blob_parts", "blob_trust", "code_packages", "runs",
             "run_tags", "steps", "tasks", "attempts", "metadata", "cards", "deleted_runs", "log_stamps",
             "deployments")


def write_version_7(source: Path, out: Path) -> None:
    """The store ``source`` as schema 7 wrote it: every task attempt with a full ``artifacts``
    row (JSON text included) for every artifact it had, inherited ones too; no ``task_values``."""
    from runstore.store._schemacheck import apply_migrations

    conn = sqlite3.connect(out, isolation_level=None)
    apply_migrations(conn, 7)
    conn.execute("ATTACH DATABASE ? AS src", (str(source),))
    for table in V7_TABLES:
        columns = ", ".join(row[1] for row in conn.execute(f"PRAGMA main.table_info({table})"))
        conn.execute(f"INSERT INTO main.{table}({columns}) SELECT {columns} FROM src.{table}")
    conn.execute(
        "INSERT INTO main.artifacts(task_id, attempt, name, blob_key, encoding, type, size, created_at, json_value)"
        " SELECT v.task_id, v.attempt, v.name, a.blob_key, a.encoding, a.type, a.size,"
        "        coalesce(x.finished_at, a.created_at), CASE WHEN a.encoding = 'json' THEN b.json_value END"
        "   FROM src.task_values v JOIN src.artifacts a ON a.artifact_id = v.artifact_id"
        "   LEFT JOIN src.blobs b ON b.blob_key = a.blob_key"
        "   LEFT JOIN src.attempts x ON x.task_id = v.task_id AND x.attempt = v.attempt"
        "  ORDER BY v.task_id, v.attempt, v.name")
    conn.execute("DETACH DATABASE src")
    conn.execute("PRAGMA user_version = 7")
    conn.close()


def every_attempt(path: Path) -> dict[tuple[int, int], dict[str, tuple[Any, ...]]]:
    """{(task_id, attempt): {name: (blob_key, encoding, type, size, created_at, json_value)}} as stored."""
    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 7:
        rows = conn.execute("SELECT task_id, attempt, name, blob_key, encoding, type, size, created_at, json_value"
                            " FROM artifacts").fetchall()
    else:
        rows = conn.execute(
            "SELECT v.task_id, v.attempt, v.name, a.blob_key, a.encoding, a.type, a.size,"
            " coalesce(x.finished_at, a.created_at), CASE WHEN a.encoding = 'json' THEN b.json_value END"
            " FROM task_values v JOIN artifacts a ON a.artifact_id = v.artifact_id"
            " LEFT JOIN blobs b ON b.blob_key = a.blob_key"
            " LEFT JOIN attempts x ON x.task_id = v.task_id AND x.attempt = v.attempt").fetchall()
    conn.close()
    out: dict[tuple[int, int], dict[str, tuple[Any, ...]]] = {}
    for task_id, attempt, name, *rest in rows:
        out.setdefault((task_id, attempt), {})[name] = tuple(rest)
    return out


def view(path: Path, name: str, order: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    cur = conn.execute(f"SELECT * FROM {name} ORDER BY {order}")
    columns = [d[0] for d in cur.description]
    rows = [tuple(v for c, v in zip(columns, row) if c != "artifact_id") for row in cur.fetchall()]
    conn.close()
    return rows


def test_migration_8_keeps_what_every_task_attempt_shows_and_drops_the_copies(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    (tmp_path / "marks").mkdir()
    for source in (FOREACH, BRANCH, NESTED, RETRY, LINEAR):
        flow = tmp_path / "flow.py"
        flow.write_text(textwrap.dedent(source))
        done = run_flow(flow, db, "run", quiet=True, env={"MARKS": str(tmp_path / "marks")})
        assert done.returncode == 0, done.stderr
    flow.write_text(textwrap.dedent(LINEAR))  # and a resumed run: clones
    fail = tmp_path / "fail"
    fail.write_text("")
    assert run_flow(flow, db, "run", quiet=True, env={"SHAPE_FAIL": str(fail)}).returncode != 0
    fail.unlink()
    assert run_flow(flow, db, "resume", quiet=True, env={"SHAPE_FAIL": str(fail)}).returncode == 0
    Store(db).close()  # checkpointed

    old = tmp_path / "runstore.db"
    write_version_7(db, old)
    before = every_attempt(old)
    views_before = {name: view(old, name, order) for name, order in
                    (("artifacts_view", "task_id, name"), ("parameters_view", "run_id"))}
    retried = [key for key in before if key[1] == 1]
    assert retried and "partial" in before[(retried[0][0], 0)]  # a failed attempt's artifacts too
    conn = sqlite3.connect(old)
    old_rows = conn.execute("SELECT count(*) FROM artifacts").fetchone()[0]
    conn.close()

    with Store(old) as store:  # upgrades to the current schema (after a backup)
        assert store.integrity_problems() == []
        assert store.doctor().problems == []
        after_client = {key: {r["name"]: (r["blob_key"], r["encoding"], r["type"], r["size"], r["created_at"],
                                          r["json_value"])
                              for r in store.list_artifacts(key[0], key[1], private=True)} for key in before}
    assert (tmp_path / "runstore.v7-backup.db").exists()
    assert every_attempt(old) == before
    assert after_client == before
    assert {name: view(old, name, order) for name, order in
            (("artifacts_view", "task_id, name"), ("parameters_view", "run_id"))} == views_before
    conn = sqlite3.connect(old)
    new_rows = conn.execute("SELECT count(*) FROM artifacts").fetchone()[0]
    copies = conn.execute("SELECT count(*) FROM artifacts WHERE json_value IS NOT NULL").fetchone()[0]
    per_run = conn.execute("SELECT count(*) FROM (SELECT t.run_id, a.name, a.blob_key FROM artifacts a"
                           " JOIN tasks t ON t.task_id = a.task_id GROUP BY 1, 2, 3 HAVING count(*) > 1)").fetchone()[0]
    conn.close()
    assert new_rows < old_rows / 2 and copies == 0 and per_run == 0
    # and the upgraded file reads like one written by today's runtime
    with Store(old) as store:
        check_run(store, old, "ForeachShape/1", SHAPES["foreach"][1])
        check_run(store, old, "LinearShape/3", LINEAR_WANT)  # the resumed run


# ------------------------------------------------------------ hostile files (SPEC §13)

def test_a_binding_into_another_run_or_name_is_never_followed(tmp_path: Path) -> None:
    """A sender edits ``task_values``: run 2's tasks bound to run 1's rows, to a row of another
    name, to a row that does not exist, and two tasks bound to each other's rows. Reading never
    crosses runs (those names are simply not there), never loops (one join, no pointer chain,
    checked under a timeout in a child), doctor names each stray binding, and merge copies none."""
    flow = tmp_path / "flow.py"
    flow.write_text(textwrap.dedent(LINEAR))
    db = tmp_path / "attacker.db"
    assert run_flow(flow, db, "run", "--alpha", "0.1", quiet=True).returncode == 0
    assert run_flow(flow, db, "run", quiet=True).returncode == 0
    conn = sqlite3.connect(db)

    def task(run: int, step: str) -> int:
        return conn.execute("SELECT t.task_id FROM tasks t JOIN steps s ON s.step_id = t.step_id JOIN runs r"
                            " ON r.run_id = t.run_id WHERE r.run_number = ? AND s.name = ?", (run, step)).fetchone()[0]

    def row(run: int, name: str) -> int:
        return conn.execute("SELECT a.artifact_id FROM artifacts a JOIN tasks t ON t.task_id = a.task_id"
                            " JOIN runs r ON r.run_id = t.run_id WHERE r.run_number = ? AND a.name = ?",
                            (run, name)).fetchone()[0]

    end2, mid2, start2 = task(2, "end"), task(2, "mid"), task(2, "start")
    with conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("UPDATE task_values SET artifact_id = ? WHERE task_id = ? AND name = 'alpha'", (row(1, "alpha"), end2))
        conn.execute("UPDATE task_values SET artifact_id = ? WHERE task_id = ? AND name = 'c'", (row(2, "big"), end2))
        conn.execute("INSERT INTO task_values VALUES (?, 0, 'stolen', ?)", (end2, row(1, "big")))
        conn.execute("INSERT INTO task_values VALUES (?, 0, 'ghost', 999999)", (end2,))
        # "a cycle": start's a bound to mid's row and mid's a bound to start's row (same run)
        conn.execute("UPDATE artifacts SET name = 'a2' WHERE artifact_id = ?", (row(2, "c"),))
        conn.execute("UPDATE task_values SET artifact_id = ? WHERE task_id = ? AND name = 'a'", (row(2, "a"), mid2))
        conn.execute("INSERT INTO task_values VALUES (?, 0, 'a2', ?)", (start2, row(2, "a2")))
        conn.execute("INSERT INTO task_values VALUES (?, 0, 'a2', ?)", (mid2, row(2, "a2")))
        # and a JSON preview that is not the value: what SQL would show after a merge
        conn.execute("UPDATE blobs SET json_value = '\"forged\"' WHERE blob_key ="
                     " (SELECT blob_key FROM artifacts WHERE artifact_id = ?)", (row(2, "big"),))
    conn.close()

    reader = tmp_path / "read.py"
    reader.write_text(textwrap.dedent(f"""
        import json, sqlite3
        from runstore import Run, Store, namespace
        namespace(None)
        store = Store({str(db)!r}, readonly=True)
        out = {{}}
        for step in Run("LinearShape/2", store=store):
            for task in step:
                out[step.id] = sorted(a.id for a in task)
        out["view"] = sorted(r[0] for r in sqlite3.connect({str(db)!r}).execute(
            "SELECT name FROM artifacts_view WHERE step = 'end' AND run_number = 2"))
        out["refs"] = sorted(store.list_artifact_refs({end2}))
        print(json.dumps(out))
    """))
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(reader)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # end showed alpha, a, big, c, d: alpha (run 1's row), c (a row named big), stolen, ghost are not followed
    assert seen["end"] == ["a", "big", "d"]
    assert seen["view"] == ["a", "big", "d"]
    assert seen["refs"] == ["a", "big", "d"]
    # the same-run bindings are shown as bound, once each: no pointer is followed further
    assert seen["mid"] == ["a", "a2", "alpha", "big"] and seen["start"] == ["a", "a2", "alpha", "big", "gone"]

    with Store(db, readonly=True) as store:
        problems = store.doctor().problems
    stray = sorted(p.split()[1] for p in problems if p.startswith("artifact "))
    assert stray == [f"LinearShape/2/end/{end2}.{n}" for n in ("alpha", "c", "ghost", "stolen")] + [
        f"LinearShape/2/mid/{mid2}.c"], problems  # mid's c: its row was renamed a2
    assert any("missing artifacts row" in p for p in problems)  # the dangling one, by the foreign key check

    victim = Store(tmp_path / "victim.db")
    victim.merge_from(db)
    with victim.read() as conn2:
        names = sorted(r[0] for r in conn2.execute(
            "SELECT name FROM artifacts_view WHERE step = 'end' AND run_number = 2"))
        strays = conn2.execute("SELECT count(*) FROM task_values v WHERE NOT EXISTS (SELECT 1 FROM artifacts a"
                               " JOIN tasks o ON o.task_id = a.task_id JOIN tasks t ON t.task_id = v.task_id"
                               " WHERE a.artifact_id = v.artifact_id AND o.run_id = t.run_id)").fetchone()[0]
    assert names == ["a", "big", "d"] and strays == 0
    with victim.read() as conn2:
        previews = {r[0] for r in conn2.execute("SELECT value_json FROM artifacts_view WHERE name = 'big'")}
    assert previews == {json.dumps(list(range(50)), separators=(",", ":"))}  # merge rebuilt it from the bytes
    assert victim.doctor().problems == []
    victim.close()


# ------------------------------------------------------------ the store's rule, on random task graphs

_names = st.sampled_from(["a", "b", "c", "d", "_private"])
_values = st.one_of(st.integers(-3, 3), st.text(max_size=3), st.lists(st.integers(0, 2), max_size=3),
                    st.tuples(st.integers(0, 2)))
_task = st.fixed_dictionaries({
    "parent": st.integers(0, 30),          # an earlier task of the run (modulo), or none
    "delete": st.sets(_names, max_size=2),
    "set": st.dictionaries(_names, _values, max_size=3),
    "foreign": st.sets(_names, max_size=1),  # names taken by reference from another run's task
})


@settings(max_examples=40, deadline=None)
@given(tasks=st.lists(_task, min_size=1, max_size=12))
def test_bindings_reproduce_copy_everything_on_random_task_graphs(tasks: list[dict[str, Any]]) -> None:
    """Each task commits its input's references minus what it deleted plus what it set (and
    references read from another run): what every task shows equals the copy-everything oracle,
    and rows are stored only for set values and foreign references."""
    store = Store(":memory:")
    other = store.create_run("Other", user="anne").run_id
    donor = store.create_task(other, "start")
    store.start_attempt(donor, 0)
    store.finish_attempt(donor, 0, "succeeded", artifacts={n: store.put_value(f"other {n}")
                                                           for n in ("a", "b", "c", "d", "_private")})
    foreign_refs = store.list_artifact_refs(donor)
    run = store.create_run("F", user="anne").run_id
    ids: list[int] = []
    expected: list[dict[str, Any]] = []
    stored = 0
    for spec in tasks:
        task_id = store.create_task(run, "step")
        parent = spec["parent"] % (len(ids) + 1) - 1  # -1: no input
        refs = dict(store.list_artifact_refs(ids[parent])) if parent >= 0 else {}
        want = dict(expected[parent]) if parent >= 0 else {}
        for name in spec["delete"]:
            refs.pop(name, None)
            want.pop(name, None)
        for name in spec["foreign"]:
            refs[name] = foreign_refs[name]
            want[name] = f"other {name}"
        for name, value in spec["set"].items():
            refs[name] = store.put_value(value)
            want[name] = value
        stored += len(spec["set"]) + len(spec["foreign"] - set(spec["set"]))
        store.start_attempt(task_id, 0)
        store.finish_attempt(task_id, 0, "succeeded", artifacts=refs)
        ids.append(task_id)
        expected.append(want)
    for task_id, want in zip(ids, expected):
        shown = {r["name"]: store.load_value(r["blob_key"], r["encoding"])
                 for r in store.list_artifacts(task_id, 0, private=True)}
        assert shown == want
        with store.read() as conn:
            viewed = {name: value for name, value in conn.execute(
                "SELECT name, value_json FROM artifacts_view WHERE task_id = ?", (task_id,))}
        assert set(viewed) == set(want)
    with store.read() as conn:
        rows = conn.execute("SELECT count(*) FROM artifacts a JOIN tasks t ON t.task_id = a.task_id"
                            " WHERE t.run_id = ?", (run,)).fetchone()[0]
        strays = conn.execute("SELECT count(*) FROM task_values v JOIN tasks t ON t.task_id = v.task_id"
                              " JOIN artifacts a ON a.artifact_id = v.artifact_id JOIN tasks o"
                              " ON o.task_id = a.task_id WHERE o.run_id <> t.run_id").fetchone()[0]
    assert rows == stored and strays == 0
    store.close()


def test_gc_gives_back_the_space_migration_8_freed(tmp_path: Path) -> None:
    """A schema-7 file of a 300-wide foreach holds 300 copies of ``items``; after the upgrade
    those pages are free, and ``gc`` compacts the file though it collects no value."""
    flow = tmp_path / "flow.py"
    flow.write_text(textwrap.dedent(WIDE))
    db = tmp_path / "new.db"
    done = run_flow(flow, db, "run", "--max-num-splits", "300", quiet=True, env={"WIDTH": "300"}, timeout=300)
    assert done.returncode == 0, done.stderr
    Store(db).close()
    old = tmp_path / "runstore.db"
    write_version_7(db, old)
    before = every_attempt(old)
    with Store(old) as store:
        size = old.stat().st_size
        report = store.gc()
        assert (report.blobs, report.chunks) == (0, 0)
        assert old.stat().st_size < size * 3 / 4, (size, old.stat().st_size)  # without the compaction: equal
        assert store.doctor().problems == []
    assert every_attempt(old) == before


def test_reads_of_a_task_and_of_a_name_are_index_lookups(tmp_path: Path) -> None:
    """The query contract: a task's artifacts come from task_values' primary key, a name's from
    artifacts_by_name then task_values_by_artifact; nothing scans a table, however many runs."""
    from runstore.store._reads import _ARTIFACT_QUERY, _REF_QUERY

    store = Store(tmp_path / "runstore.db")
    with store.read() as conn:
        def plan(sql: str, *args: Any) -> str:
            return " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))

        for query in (_ARTIFACT_QUERY, _REF_QUERY):
            task = plan(f"{query} WHERE v.task_id = ? AND v.attempt = ?", 1, 0)
            assert "v USING PRIMARY KEY (task_id=? AND attempt=?)" in task and "SCAN" not in task, task
        named = plan("SELECT pathspec, value FROM artifacts_view WHERE name = ?", "accuracy")
        assert "artifacts_by_name (name=?)" in named and "task_values_by_artifact (artifact_id=?)" in named, named
        assert "SCAN" not in named, named
        run = plan("SELECT value FROM artifacts_view WHERE run_id = ? AND step = '_parameters' AND name = ?", 1, "a")
        assert "tasks_by_run (run_id=?)" in run and "SCAN" not in run, run
    store.close()
