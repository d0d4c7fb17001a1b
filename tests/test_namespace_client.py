"""Namespaces as the client sees them: the two-user story, tags as namespaces, capture."""

from __future__ import annotations

import contextvars
import threading

import pytest
from storefill import fill_run

from runstore import (
    Flow,
    NamespaceMismatch,
    Store,
    StoreError,
    TaggingError,
    Run,
    Runstore,
    Step,
    Task,
    default_namespace,
    get_namespace,
    namespace,
    use_store,
)


@pytest.fixture
def shared(memory_store, monkeypatch):
    """anne and will both ran PredictionFlow twice; will's second run is the newest."""
    fill_run(memory_store, user="anne", artifacts={"end": {"accuracy": 0.81}})   # 1
    fill_run(memory_store, user="will", artifacts={"end": {"accuracy": 0.90}})   # 2
    fill_run(memory_store, user="anne", artifacts={"end": {"accuracy": 0.85}})   # 3
    fill_run(memory_store, user="will", artifacts={"end": {"accuracy": 0.93}})   # 4
    with use_store(memory_store):
        yield memory_store


def as_user(monkeypatch, name: str) -> str:
    monkeypatch.setenv("RUNSTORE_USER", name)
    return default_namespace()


def test_two_user_story(shared, monkeypatch):
    assert as_user(monkeypatch, "anne") == "user:anne"
    assert Flow("PredictionFlow").latest_run.id == "3"
    assert Flow("PredictionFlow").latest_run.data.accuracy == 0.85
    with pytest.raises(NamespaceMismatch) as info:
        Run("PredictionFlow/4")
    message = str(info.value)
    assert "'user:anne'" in message and "namespace('user:will')" in message and "namespace(None)" in message
    assert isinstance(info.value, LookupError)

    namespace("user:will")
    assert Flow("PredictionFlow").latest_run.id == "4"
    assert Run("PredictionFlow/4").data.accuracy == 0.93

    namespace(None)
    assert [r.id for r in Flow("PredictionFlow")] == ["4", "3", "2", "1"]
    assert {r.user for r in Flow("PredictionFlow")} == {"anne", "will"}

    assert as_user(monkeypatch, "will") == "user:will"
    assert Flow("PredictionFlow").latest_run.id == "4"
    assert [r.id for r in Flow("PredictionFlow")] == ["4", "2"]


def test_getitem_checks_but_contains_does_not(shared, monkeypatch):
    as_user(monkeypatch, "anne")
    flow = Flow("PredictionFlow")
    assert "4" in flow
    with pytest.raises(NamespaceMismatch):
        flow["4"]
    for cls, path in [(Step, "PredictionFlow/4/start"), (Task, "PredictionFlow/4/end/12")]:
        with pytest.raises(NamespaceMismatch):
            cls(path)
    run = Run("PredictionFlow/4", _namespace_check=False)
    assert not run.is_in_namespace() and run["end"].task.data.accuracy == 0.93


def test_empty_string_is_global(shared):
    namespace("")
    assert get_namespace() is None
    assert len(list(Flow("PredictionFlow"))) == 4
    assert Run("PredictionFlow/4").user == "will"


def test_tag_as_namespace_across_users(shared, memory_store):
    fill_run(memory_store, user="anne", tags=["shared_exp"])   # 5
    fill_run(memory_store, user="will", tags=["shared_exp"])   # 6
    namespace("shared_exp")
    assert [(r.id, r.user) for r in Flow("PredictionFlow")] == [("6", "will"), ("5", "anne")]
    assert Run("PredictionFlow/5").user == "anne"
    with pytest.raises(NamespaceMismatch):
        Run("PredictionFlow/1")


def test_flow_and_root_follow_the_namespace(shared, memory_store):
    fill_run(memory_store, "OnlyWillFlow", user="will")
    namespace("user:anne")
    assert [f.id for f in Runstore()] == ["PredictionFlow"]
    with pytest.raises(NamespaceMismatch, match="namespace\\('user:will'\\)"):
        Flow("OnlyWillFlow")
    namespace("nonexistent-tag")
    assert Runstore().flows == []
    namespace(None)
    assert {f.id for f in Runstore()} == {"PredictionFlow", "OnlyWillFlow"}


def test_namespace_is_captured_at_construction(shared):
    namespace("user:anne")
    flow = Flow("PredictionFlow")
    namespace("user:will")
    assert flow.latest_run.id == "3"  # still anne's view
    namespace(None)
    everything = Flow("PredictionFlow")
    namespace("user:anne")
    assert everything.latest_run.id == "4" and everything["4"].user == "will"


def test_children_inherit_the_namespace_check(shared):
    namespace("user:anne")
    run = Flow("PredictionFlow").latest_run
    assert [t.parent.parent for s in run for t in s] == [run, run]
    assert run["start"].task["_note"].data == "private start"


def test_namespace_scope_is_per_context(shared):
    # namespace() is process-wide since #20; a namespace_scope is the per-context override
    from runstore.namespace import namespace_scope

    namespace("user:anne")
    seen = {}

    def other_thread() -> None:
        with namespace_scope("user:anne"):
            namespace("user:will")  # inside a scope: changes the scope only
            seen["ns"] = get_namespace()
            seen["latest"] = Flow("PredictionFlow").latest_run.id

    ctx = contextvars.copy_context()
    thread = threading.Thread(target=ctx.run, args=(other_thread,))
    thread.start()
    thread.join()
    assert seen == {"ns": "user:will", "latest": "4"}
    assert get_namespace() == "user:anne"


def test_production_namespace(memory_store, monkeypatch):
    fill_run(memory_store, user="anne", namespace="production:PredictionFlow-0-abcd")
    # trigger sets the public namespace for the client (the secret token only tags the run)
    monkeypatch.setenv("RUNSTORE_PRODUCTION_NAMESPACE", "production:PredictionFlow-0-abcd")
    with use_store(memory_store):
        assert default_namespace() == "production:PredictionFlow-0-abcd"
        run = Flow("PredictionFlow").latest_run
        assert run.namespace == "production:PredictionFlow-0-abcd"
        assert not any(t.startswith("user:") for t in run.system_tags)


def test_resolve_store_reuses_paths_and_refuses_memory_paths(tmp_path):
    from runstore.namespace import resolve_store

    Store(tmp_path / "a.db").close()
    first = resolve_store(tmp_path / "a.db")
    assert resolve_store(str(tmp_path / "a.db")) is first
    with pytest.raises(ValueError, match="Store\\(':memory:'\\)"):
        resolve_store(":memory:")
    with pytest.raises(StoreError, match="does not exist"):
        Flow("PredictionFlow", store=tmp_path / "typo.db")
    assert not (tmp_path / "typo.db").exists()


def test_get_metadata_names_the_store_in_use(memory_store, tmp_path, monkeypatch):
    from runstore import get_metadata

    with use_store(memory_store):
        assert get_metadata() == "sqlite@:memory:"
    monkeypatch.setenv("RUNSTORE_DB", str(tmp_path / "env.db"))
    assert get_metadata() == f"sqlite@{tmp_path / 'env.db'}"


def test_reset_namespace_follows_the_identity_read_later(shared, monkeypatch):
    from runstore.namespace import reset_namespace

    namespace(None)
    reset_namespace()
    monkeypatch.setenv("RUNSTORE_USER", "will")  # read only now, after the reset
    assert get_namespace() == "user:will"
    assert Flow("PredictionFlow").latest_run.id == "4"
    monkeypatch.setenv("RUNSTORE_USER", "anne")
    reset_namespace()
    assert get_namespace() == "user:anne" and Flow("PredictionFlow").latest_run.id == "3"


@pytest.mark.parametrize("bad", [123, 0, False, b"user:x", 1.5, ["a"], "x" * 501])
def test_namespace_accepts_only_tag_strings(bad: object):
    before = namespace("crazy_test")
    with pytest.raises(TaggingError) as info:
        namespace(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert get_namespace() == before


def test_namespace_still_takes_str_and_none():
    assert namespace("user:will") == "user:will"
    assert namespace("") is None
    assert namespace(None) is None


def test_namespace_refusal_message_names_the_value() -> None:
    with pytest.raises(TaggingError) as info:
        namespace(123)  # type: ignore[arg-type]
    assert str(info.value) == "a namespace is a tag string or None, not int 123"


def test_identity_is_production_only_from_the_production_namespace_variable(monkeypatch) -> None:
    """`trigger` sets RUNSTORE_PRODUCTION_NAMESPACE; the token variable names no namespace (SPEC §13.5)."""
    from runstore.namespace import identity

    monkeypatch.setenv("RUNSTORE_PRODUCTION_NAMESPACE", "production:F-0-x7k2")
    assert identity() == "production:F-0-x7k2"
    monkeypatch.setenv("RUNSTORE_PRODUCTION_NAMESPACE", "F-0-x7k2")  # not a production namespace
    assert identity() == "user:tester"
    monkeypatch.setenv("RUNSTORE_PRODUCTION_NAMESPACE", "")
    monkeypatch.setenv("RUNSTORE_PRODUCTION_TOKEN", "production:F-0-x7k2")  # authorizes in the scheduler only
    assert identity() == "user:tester"


def test_discovered_store_is_opened_once_per_path(tmp_path, monkeypatch) -> None:
    from runstore.namespace import get_store

    monkeypatch.setenv("RUNSTORE_DB", str(tmp_path / "a.db"))
    first = get_store()
    assert isinstance(first, Store) and first.path == tmp_path / "a.db"
    assert get_store() is first  # reused, not reopened
    monkeypatch.setenv("RUNSTORE_DB", str(tmp_path / "b.db"))
    second = get_store()
    assert second is not first and second.path == tmp_path / "b.db"
    monkeypatch.setenv("RUNSTORE_DB", str(tmp_path / "a.db"))
    assert get_store() is first


def test_use_store_and_resolve_store_open_paths(tmp_path) -> None:
    from runstore.namespace import get_store, resolve_store

    Store(tmp_path / "c.db").close()
    with use_store(tmp_path / "c.db") as opened:
        assert isinstance(opened, Store) and opened.path == tmp_path / "c.db"
        assert get_store() is opened
    found = resolve_store(tmp_path / "c.db")
    assert isinstance(found, Store) and found.path == tmp_path / "c.db"
    with pytest.raises(ValueError) as info:
        resolve_store(":memory:")
    assert str(info.value) == "pass Store(':memory:') itself: the path ':memory:' would open a new empty store"
