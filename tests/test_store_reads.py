"""The store's read API behind the client (runstore/store/_queries.py): each query returns the
rows it names, newest first, filtered exactly as asked, and None / [] / '' for what is not there.
Times are set by hand where order matters, so a query ordering or filtering wrongly fails."""

from __future__ import annotations

import pytest
from storefill import fill_run

from runstore import NotFound, Store, TaggingError


@pytest.fixture
def store(memory_store: Store) -> Store:
    """Runs 1-4 of PredictionFlow (anne, will, anne failed, will tagged exp) and 1 of Other (anne)."""
    fill_run(memory_store, user="anne", tags=["t1"], params={"alpha": 1},
             artifacts={"start": {"x": 1}}, retry_at="start", code=b"tarball")     # PredictionFlow/1
    fill_run(memory_store, user="will")                                              # PredictionFlow/2
    fill_run(memory_store, user="anne", fail_at="end")                              # PredictionFlow/3
    fill_run(memory_store, user="will", tags=["exp", "t1"])                         # PredictionFlow/4
    fill_run(memory_store, "Other", user="anne")                                    # Other/1
    with memory_store.write() as conn:  # run n of PredictionFlow created at 100 * n, Other at 250
        conn.execute("UPDATE runs SET created_at = 100 * run_number WHERE flow_id = 1")
        conn.execute("UPDATE runs SET created_at = 250 WHERE flow_id = 2")
        conn.execute("UPDATE run_tags SET created_at = (SELECT created_at FROM runs r WHERE r.run_id = run_tags.run_id)")
        conn.execute("UPDATE flows SET created_at = CASE name WHEN 'PredictionFlow' THEN 10 ELSE 20 END")
    return memory_store


def _flow_id(store: Store, name: str = "PredictionFlow") -> int:
    found = store.find_flow(name)
    assert found is not None
    return found["flow_id"]


def _run_id(store: Store, number: int, flow: str = "PredictionFlow") -> int:
    row = store.lookup_run(flow, number)
    assert row is not None
    return row["run_id"]


def _numbers(rows: list[dict]) -> list[int]:
    return [r["run_number"] for r in rows]


def test_flows(store: Store) -> None:
    assert store.find_flow("Nope") is None
    assert set(store.find_flow("Other")) == {"flow_id", "name", "created_at"}
    assert [f["name"] for f in store.list_flows()] == ["Other", "PredictionFlow"]  # newest first
    assert [f["name"] for f in store.list_flows("user:will")] == ["PredictionFlow"]
    assert [f["name"] for f in store.list_flows("user:anne")] == ["Other", "PredictionFlow"]
    assert store.list_flows("nobody") == []
    store.create_run("Empty", user="zoe")
    with store.write() as conn:  # a flow whose runs were all deleted is not listed
        conn.execute("DELETE FROM runs WHERE flow_id = (SELECT flow_id FROM flows WHERE name = 'Empty')")
    assert "Empty" not in [f["name"] for f in store.list_flows()] and store.find_flow("Empty") is not None
    flow_id = _flow_id(store)
    assert store.flow_in_namespace(flow_id, "user:will") and not store.flow_in_namespace(flow_id, "user:zoe")
    assert not store.flow_in_namespace(_flow_id(store, "Other"), "user:will")
    assert store.latest_namespace(flow_id) == "user:will"
    assert store.latest_namespace(_flow_id(store, "Empty")) is None


def test_one_run(store: Store) -> None:
    run = store.lookup_run("PredictionFlow", 3)
    assert run is not None and (run["flow"], run["run_number"], run["user_name"], run["status"]) == (
        "PredictionFlow", 3, "anne", "failed")
    assert run["created_at"] == 300 and run["namespace"] == "user:anne"
    assert store.lookup_run("PredictionFlow", 9) is None and store.lookup_run("Nope", 1) is None
    assert store.lookup_run_by_id(run["run_id"]) == run
    assert store.lookup_run_by_id(10**6) is None
    assert store.run_exists("Other", 1) and not store.run_exists("Other", 2) and not store.run_exists("X", 1)
    four = _run_id(store, 4)
    assert [(t, s) for t, s in store.run_tags(four) if not s] == [("exp", False), ("t1", False)]
    assert ("user:will", True) in store.run_tags(four)
    assert all(isinstance(s, bool) for _, s in store.run_tags(four))
    assert store.run_has_tag(four, "exp") and not store.run_has_tag(four, "t2")
    assert not store.run_has_tag(_run_id(store, 1), "exp")


def test_list_runs_filters(store: Store) -> None:
    flow_id = _flow_id(store)
    assert _numbers(store.list_runs(flow_id)) == [4, 3, 2, 1]
    assert _numbers(store.list_runs(flow_id, namespace="user:anne")) == [3, 1]
    assert _numbers(store.list_runs(flow_id, tags=["t1"])) == [4, 1]
    assert _numbers(store.list_runs(flow_id, tags=["t1", "exp"])) == [4]
    assert _numbers(store.list_runs(flow_id, tags=["t1"], namespace="user:anne")) == [1]
    assert _numbers(store.list_runs(flow_id, tags=["user:anne"], namespace="user:anne")) == [3, 1]  # asked twice
    assert _numbers(store.list_runs(flow_id, successful=True)) == [4, 2, 1]
    assert _numbers(store.list_runs(flow_id, namespace="user:anne", successful=True)) == [1]
    assert _numbers(store.list_runs(flow_id, tags=["t1"], namespace="user:will", successful=True)) == [4]
    assert _numbers(store.list_runs(flow_id, tags=["nope"])) == []
    assert _numbers(store.list_runs(_flow_id(store, "Other"), namespace="user:will")) == []


def test_list_runs_pages(store: Store) -> None:
    flow_id = _flow_id(store)
    assert _numbers(store.list_runs(flow_id, limit=2)) == [4, 3]
    assert _numbers(store.list_runs(flow_id, before=300)) == [3, 2, 1]  # at or before
    assert _numbers(store.list_runs(flow_id, before=299, limit=1)) == [2]
    assert _numbers(store.list_runs(flow_id, namespace="user:anne", before=300)) == [3, 1]
    assert _numbers(store.list_runs(flow_id, namespace="user:anne", before=299)) == [1]
    assert _numbers(store.list_runs(flow_id, namespace="user:anne", limit=1)) == [3]
    assert _numbers(store.list_runs(flow_id, successful=True, before=350)) == [2, 1]
    assert _numbers(store.list_runs(flow_id, tags=["t1"], successful=True, before=350)) == [1]
    row = store.list_runs(flow_id, limit=1)[0]
    assert row == store.lookup_run("PredictionFlow", 4)  # the same columns as a lookup


def test_steps_and_tasks(store: Store) -> None:
    run_id = _run_id(store, 1)
    steps = store.list_steps(run_id)
    assert [s["name"] for s in steps] == ["end", "start", "_parameters"]  # newest first
    assert set(steps[0]) == {"step_id", "run_id", "name", "created_at"}
    start = store.find_step(run_id, "start")
    assert start is not None and start["step_id"] == steps[1]["step_id"]
    assert store.find_step(run_id, "nope") is None and store.find_step(_run_id(store, 2), "nope") is None
    tasks = store.list_tasks(start["step_id"])
    assert len(tasks) == 1 and tasks[0]["step"] == "start" and tasks[0]["run_id"] == run_id
    assert tasks[0]["attempt"] == 1 and tasks[0]["done_attempt"] == 1
    task_id = tasks[0]["task_id"]
    assert store.find_task(run_id, "start", task_id) == tasks[0]
    assert store.find_task(run_id, "end", task_id) is None  # another step
    assert store.find_task(_run_id(store, 2), "start", task_id) is None  # another run
    assert store.list_tasks(start["step_id"], limit=1) == tasks


def test_foreach_tasks_newest_first_and_step_finish(memory_store: Store) -> None:
    record = fill_run(memory_store, steps=["start", "fan", "end"], foreach={"fan": 3})
    fan = memory_store.find_step(record.run_id, "fan")
    assert fan is not None
    with memory_store.write() as conn:
        conn.execute("UPDATE tasks SET finished_at = 500 + task_id")
    tasks = memory_store.list_tasks(fan["step_id"])
    assert [t["foreach_index"] for t in tasks] == [2, 1, 0]
    assert [t["foreach_index"] for t in memory_store.list_tasks(fan["step_id"], limit=2)] == [2, 1]
    assert memory_store.step_finished_at(fan["step_id"]) == 500 + max(t["task_id"] for t in tasks)
    with memory_store.write() as conn:
        conn.execute("UPDATE tasks SET finished_at = NULL WHERE task_id = ?", (tasks[1]["task_id"],))
    assert memory_store.step_finished_at(fan["step_id"]) is None
    empty = memory_store.create_run("NoTasks", user="anne")
    with memory_store.write() as conn:
        conn.execute("INSERT INTO steps(run_id, name, created_at) VALUES (?, 'lonely', 0)", (empty.run_id,))
    lonely = memory_store.find_step(empty.run_id, "lonely")
    assert lonely is not None and memory_store.step_finished_at(lonely["step_id"]) is None


def test_attempts_logs_and_metadata(store: Store) -> None:
    run_id = _run_id(store, 1)
    task_id = store.list_tasks(store.find_step(run_id, "start")["step_id"])[0]["task_id"]
    first = store.find_attempt(task_id, 0)
    assert first is not None and first["status"] == "failed" and first["exception_type"] == "builtins.ValueError"
    assert first["stdout_size"] == len("start out attempt 0\n") and first["stderr_size"] == len("start err\n")
    assert store.find_attempt(task_id, 1)["status"] == "succeeded"
    assert store.find_attempt(task_id, 2) is None
    assert store.read_log(task_id, 1, "stdout") == "start out attempt 1\n"
    assert store.read_log(task_id, 0, "stderr") == "start err\n"
    assert store.read_log(task_id, 7, "stdout") == ""
    with pytest.raises(ValueError) as info:
        store.read_log(task_id, 0, "stdin")
    assert str(info.value) == "stream is 'stdout' or 'stderr', not 'stdin'"
    every = store.list_metadata(task_id)
    assert {m["attempt"] for m in every} == {0, 1}
    assert {m["attempt"] for m in store.list_metadata(task_id, 1)} == {1}
    assert {m["attempt"] for m in store.list_metadata(task_id, 0)} == {0}
    assert set(every[0]) == {"attempt", "name", "value", "type", "created_at"}


def test_artifacts_and_code(store: Store) -> None:
    run_id = _run_id(store, 1)
    task_id = store.list_tasks(store.find_step(run_id, "start")["step_id"])[0]["task_id"]
    public = store.list_artifacts(task_id, 1)
    assert sorted(a["name"] for a in public) == ["alpha", "x"]
    assert sorted(a["name"] for a in store.list_artifacts(task_id, 1, private=True)) == ["_note", "alpha", "x"]
    assert [a["name"] for a in store.list_artifacts(task_id, 0, private=True)] == ["_note"]  # the failed attempt
    x = store.find_artifact(task_id, 1, "x")
    assert x is not None and (x["encoding"], x["type"], x["attempt"]) == ("json", "int", 1)
    assert store.find_artifact(task_id, 0, "x") is None and store.find_artifact(task_id, 1, "y") is None
    code_id = store.lookup_run("PredictionFlow", 1)["code_id"]
    package = store.find_code_package(code_id)
    assert package is not None and package["script_name"] == "flow.py" and package["code_id"] == code_id
    assert store.find_code_package(code_id + 100) is None


def test_tag_edits(store: Store) -> None:
    four = _run_id(store, 4)
    result = store.update_run_tags(four, add=["new"], remove=["exp"])
    assert result == store.run_tags(four) and result == sorted(result)
    assert [t for t, s in result if not s] == ["new", "t1"] and ("user:will", True) in result
    with pytest.raises(TaggingError, match="prefix 'user:' is reserved for system tags"):
        store.update_run_tags(four, add=["user:will"])  # a reserved prefix is never a user tag (SPEC §13.5)
    assert [t for t, s in store.run_tags(four) if not s] == ["new", "t1"]
    with pytest.raises(TaggingError) as info:
        store.update_run_tags(four, remove=["user:will", "new"])
    assert str(info.value) == "Cannot remove a tag that is an existing system tag (['user:will'])"
    assert [t for t, s in store.run_tags(four) if not s] == ["new", "t1"]  # nothing changed
    with pytest.raises(NotFound) as info:
        store.update_run_tags(10**6, add=["x"])
    assert str(info.value).startswith("run 1000000 does not exist in ")
    with store.read() as conn:
        stamps = {row[0] for row in conn.execute("SELECT created_at FROM run_tags WHERE run_id = ?", (four,))}
    assert stamps == {400}  # new tag rows carry the run's creation time


def test_tag_set_bound(store: Store) -> None:
    one = _run_id(store, 1)
    many = [f"m{i}" for i in range(49)]
    assert len([t for t, s in store.update_run_tags(one, add=many) if not s]) == 50  # t1 + 49
    with pytest.raises(TaggingError, match="^Cannot increase size of tag set beyond 50$"):
        store.update_run_tags(one, add=["one-more"])
    store.update_run_tags(one, add=["swap"], remove=["t1"])  # 50 -> 50 is allowed
    assert "swap" in {t for t, _ in store.run_tags(one)}


def test_a_page_of_runs_is_100_by_default(memory_store: Store) -> None:
    for _ in range(101):
        memory_store.create_run("Many", user="anne")
    flow_id = _flow_id(memory_store, "Many")
    assert _numbers(memory_store.list_runs(flow_id)) == list(range(101, 1, -1))
    assert len(memory_store.list_runs(flow_id, namespace="user:anne")) == 100


def test_a_tag_set_already_over_the_bound_may_be_edited_without_growing(store: Store) -> None:
    one = _run_id(store, 1)
    with store.write() as conn:  # 51 user tags, as an older writer could leave them
        conn.executemany("INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at) VALUES (?, ?, 0, 1, 100)",
                         [(one, f"old{i}") for i in range(50)])
    assert len([t for t, s in store.run_tags(one) if not s]) == 51
    edited = store.update_run_tags(one, add=["fresh"], remove=["old0"])  # 51 -> 51
    assert len([t for t, s in edited if not s]) == 51 and ("fresh", False) in edited
    with pytest.raises(TaggingError, match="beyond 50"):
        store.update_run_tags(one, add=["more"])  # 51 -> 52


@pytest.mark.parametrize("spec, expected", [
    ("HelloFlow", ("HelloFlow", None)), ("HelloFlow/5", ("HelloFlow", 5)), (" HelloFlow/05/ ", ("HelloFlow", 5)),
])
def test_admin_pathspecs_go_through_util(spec: str, expected: tuple[str, int | None]):
    from runstore.store._reads import parse_run_pathspec

    assert parse_run_pathspec(spec) == expected


@pytest.mark.parametrize("spec", [
    "HelloFlow/5/start", "5", "Hello-Flow", "HelloFlow/x", "HelloFlow/\u00b2", "HelloFlow/-1", "", "/",
    "HelloFlow/" + "9" * 25,  # beyond any id: refused before it reaches SQLite (was an OverflowError)
    "Flöw/1",
])
def test_delete_and_export_refuse_bad_pathspecs_in_one_line(memory_store: Store, spec: str, tmp_path):
    from runstore.errors import InvalidPathspec

    fill_run(memory_store, "HelloFlow")
    for call in (lambda: memory_store.delete_runs([spec]),
                 lambda: memory_store.export_runs([spec], tmp_path / "out.db")):
        with pytest.raises(InvalidPathspec, match="is not a flow name or a run pathspec like HelloFlow/5") as caught:
            call()
        assert "\n" not in str(caught.value)
    assert memory_store.sql("SELECT count(*) FROM runs").rows == [(1,)]


def test_ui_and_card_ids_go_through_util():
    from runstore.cards._cli import _digits
    from runstore.errors import InvalidPathspec
    from runstore.ui.data import run_pathspec

    assert run_pathspec("HelloFlow/5/") == ("HelloFlow", 5)
    for bad in ("HelloFlow/\u00b2", "HelloFlow/" + "9" * 25, "HelloFlow", "HelloFlow/5/start", "/5"):
        with pytest.raises(InvalidPathspec):  # "²" was a ValueError from int()
            run_pathspec(bad)
    assert _digits("12") and not _digits("\u00b2") and not _digits("9" * 25)
