"""The client's run-level queries go through indexes (EXPLAIN QUERY PLAN), page
correctly, and find the newest successful run without walking newer failures."""

from __future__ import annotations

from itertools import islice

import pytest
from storefill import fill_run

from runstore import Flow, Run, Store, namespace, use_store


def _plans(store: Store, action) -> list[tuple[str, list[str]]]:
    conn = store.connection()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        action()
    finally:
        conn.set_trace_callback(None)
    return [(sql, [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)])
            for sql in statements if sql.lstrip().upper().startswith("SELECT")]


@pytest.fixture
def populated(memory_store):
    for i in range(12):
        fill_run(memory_store, user="anne" if i % 2 else "will", tags=["exp"] if i % 3 else [],
                 fail_at="end" if i % 4 == 0 else None)
    with use_store(memory_store):
        yield memory_store


@pytest.mark.parametrize("ns", ["user:anne", None, "exp"])
def test_run_level_queries_never_scan_or_sort(populated, ns):
    namespace(ns)

    def action() -> None:
        flow = Flow("PredictionFlow")
        flow.latest_run
        flow.latest_successful_run
        list(flow.runs("exp"))
        list(islice(flow, 10))
        Run(f"PredictionFlow/{flow.latest_run.id}")

    plans = _plans(populated, action)
    assert plans
    for sql, plan in plans:
        for line in plan:
            assert not line.startswith("SCAN"), (sql, plan)
            assert "TEMP B-TREE" not in line, (sql, plan)
    used = " ".join(line for _, plan in plans for line in plan)
    if ns is not None:
        assert "run_tags_by_tag (tag=? AND flow_id=?)" in used
        assert "run_tags_succeeded (tag=? AND flow_id=?)" in used
    else:
        assert "runs_by_flow_created (flow_id=?)" in used
        assert "runs_by_flow_status (flow_id=? AND status=?)" in used


def test_latest_successful_run_skips_many_newer_failures(memory_store):
    good = fill_run(memory_store, user="anne", steps=["end"])
    for _ in range(200):
        fill_run(memory_store, user="anne", steps=["end"], fail_at="end")
    with use_store(memory_store):
        namespace("user:anne")
        flow = Flow("PredictionFlow")
        assert flow.latest_successful_run.id == str(good.run_number)
        assert flow.latest_run.id == "201"
        plans = _plans(memory_store, lambda: flow.latest_successful_run)
    # one range scan of the partial index: the 200 failed runs are not in it
    assert any("run_tags_succeeded" in line for _, plan in plans for line in plan)


def test_run_status_copy_follows_every_writer(memory_store):
    record = memory_store.create_run("F", user="anne", user_tags=["a"])

    def statuses() -> set[str]:
        with memory_store.read() as conn:
            return {row[0] for row in conn.execute("SELECT run_status FROM run_tags WHERE run_id = ?",
                                                   (record.run_id,))}

    assert statuses() == {"running"}
    memory_store.finish_run(record.run_id, "succeeded")
    assert statuses() == {"succeeded"}
    memory_store.update_run_tags(record.run_id, add=["late"])
    with memory_store.write() as conn:  # e.g. a merge copying tag rows with default status
        conn.execute("INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at)"
                     " SELECT run_id, 'raw', 0, flow_id, created_at FROM runs WHERE run_id = ?", (record.run_id,))
    assert statuses() == {"succeeded"}


def test_pages_survive_runs_created_at_the_same_instant(memory_store):
    for _ in range(130):
        memory_store.create_run("TieFlow", user="anne")
    with memory_store.write() as conn:  # a bulk import: every run has the same creation time
        conn.execute("UPDATE runs SET created_at = 1000.0")
        conn.execute("UPDATE run_tags SET created_at = 1000.0")
    with use_store(memory_store):
        for ns in ("user:anne", None):
            namespace(ns)
            ids = [r.id for r in Flow("TieFlow")]
            assert sorted(ids, key=int) == [str(i) for i in range(1, 131)]
            assert len(set(ids)) == 130


def test_long_listings_are_complete_and_newest_first(memory_store):
    for i in range(450):
        memory_store.create_run("LongFlow", user="anne", user_tags=["even"] if i % 2 == 0 else [])
    with use_store(memory_store):
        namespace("user:anne")
        numbers = [r.run_number for r in Flow("LongFlow")]
        assert numbers == list(range(450, 0, -1))
        assert [r.run_number for r in Flow("LongFlow").runs("even")] == list(range(449, 0, -2))
