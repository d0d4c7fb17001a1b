"""Tag edits on runs: Metaflow's rules and messages, immutability of system tags and
creation time, visibility on children, AND filtering, and concurrent edits."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storefill import fill_run

from runstore import Flow, Run, Store, TaggingError, namespace, use_store
from runstore.tags import is_reserved


def test_add_remove_replace(client_store):
    fill_run(client_store, user="anne", tags=["t1"])
    run = Run("PredictionFlow/1")
    run.add_tag("exp:1")
    assert run.user_tags == {"t1", "exp:1"}
    run.add_tags(["a", "b"])
    run.remove_tag("a")
    run.remove_tag("not-there")
    assert run.user_tags == {"t1", "exp:1", "b"}
    run.replace_tag("b", "c")
    run.replace_tags(["c"], ["c", "d"])
    assert run.user_tags == {"t1", "exp:1", "c", "d"}
    run.remove_tags(["c", "d"])
    run.add_tag(["legacy", "iterable"])
    run.add_tag("ünï ☃ tag")
    run.add_tag(b"bytes-tag")
    assert run.user_tags == {"t1", "exp:1", "legacy", "iterable", "ünï ☃ tag", "bytes-tag"}
    assert Run("PredictionFlow/1").user_tags == run.user_tags  # stored, not just cached


def test_system_tags_are_immutable(client_store):
    fill_run(client_store, user="anne")
    run = Run("PredictionFlow/1")
    before = run.system_tags
    with pytest.raises(TaggingError) as info:
        run.remove_tag("runtime:local")
    assert str(info.value) == "Cannot remove a tag that is an existing system tag (['runtime:local'])"
    with pytest.raises(TaggingError, match="reserved for system tags"):
        run.add_tag("user:anne")  # a reserved prefix, even equal to a system tag (SPEC §13)
    assert run.user_tags == frozenset() and run.system_tags == before


@pytest.mark.parametrize("call, message", [
    (lambda r: r.add_tag(""), "Tags must not be empty string"),
    (lambda r: r.add_tag("x" * 501), "Tag is too long 501 > 500"),
    (lambda r: r.add_tag(123), "tags_to_add must be iterable"),
    (lambda r: r.add_tags("abc"), "tags_to_add may not be a string"),
    (lambda r: r.remove_tags("abc"), "tags_to_remove may not be a string"),
    (lambda r: r.replace_tags([], []), "Must add or remove at least one tag"),
    (lambda r: r.add_tags([f"t{i}" for i in range(60)]), "Cannot increase size of tag set beyond 50"),
    (lambda r: r.add_tag(b"\xff"), "Tags must be UTF-8 decodable"),
])
def test_validation_messages(client_store, call, message):
    fill_run(client_store, user="anne")
    run = Run("PredictionFlow/1")
    with pytest.raises(TaggingError) as info:
        call(run)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)
    assert run.user_tags == frozenset()  # nothing written


def test_oversized_tag_sets_may_shrink(client_store):
    fill_run(client_store, user="anne", tags=[f"t{i}" for i in range(49)])
    run = Run("PredictionFlow/1")
    run.add_tag("x" * 500)  # the 500-char limit is inclusive; 50 tags are allowed
    with pytest.raises(TaggingError):
        run.add_tag("one-more")
    fill_run(client_store, user="anne", tags=[f"t{i}" for i in range(55)])  # written by an older tool
    big = Run("PredictionFlow/2")
    big.replace_tags(["t0", "t1"], ["n1"])  # shrinking an oversized set is allowed
    assert len(big.user_tags) == 54
    with pytest.raises(TaggingError):
        big.add_tag("grow")


def test_edits_never_change_creation_time_or_order(client_store):
    for _ in range(3):
        fill_run(client_store, user="anne")
    oldest = Run("PredictionFlow/1")
    created = oldest.created_at
    oldest.add_tag("best")
    oldest.remove_tag("best")
    oldest.add_tag("best")
    assert Run("PredictionFlow/1").created_at == created
    assert [r.id for r in Flow("PredictionFlow")] == ["3", "2", "1"]
    assert Flow("PredictionFlow").latest_run.id == "3"
    assert [r.id for r in Flow("PredictionFlow").runs("best")] == ["1"]


def test_tags_are_visible_on_steps_tasks_and_artifacts(client_store):
    fill_run(client_store, user="anne", tags=["crazy_test"], artifacts={"start": {"x": 1}})
    run = Run("PredictionFlow/1")
    step, task = run["start"], run["start"].task
    artifact = task["x"]
    for obj in (step, task, artifact):
        assert "crazy_test" in obj.tags and "crazy_test" in obj.user_tags
        assert "user:anne" in obj.system_tags
    run.add_tag("later")
    for obj in (step, task, artifact):  # children show the run's current tags
        assert "later" in obj.tags


def test_runs_filter_is_an_and_of_tags(client_store):
    fill_run(client_store, user="anne", tags=["c", "d"])   # 1
    fill_run(client_store, user="anne", tags=["d"])        # 2
    fill_run(client_store, user="anne", tags=["c"])        # 3
    fill_run(client_store, user="will", tags=["c", "d"])   # 4 (other namespace)
    flow = Flow("PredictionFlow")
    assert [r.id for r in flow.runs("d", "c")] == ["1"]
    assert [r.id for r in flow.runs("c")] == ["3", "1"]
    assert list(flow.runs("d", "zzz")) == []
    assert [r.id for r in flow.runs()] == ["3", "2", "1"]
    namespace(None)
    assert [r.id for r in Flow("PredictionFlow").runs("c", "d")] == ["4", "1"]
    namespace("d")
    assert [r.id for r in Flow("PredictionFlow").runs("c")] == ["4", "1"]
    with pytest.raises(TaggingError):
        list(flow.runs(""))


def test_tag_edits_move_a_run_into_a_tag_namespace(client_store):
    fill_run(client_store, user="will")
    namespace(None)
    Run("PredictionFlow/1").add_tag("review")
    namespace("review")
    assert Flow("PredictionFlow").latest_run.user == "will"
    assert Flow("PredictionFlow").latest_successful_run.id == "1"


_EDITOR = textwrap.dedent("""
    import sys
    from runstore import Run, Store, namespace
    path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    namespace(None)
    run = Run("PredictionFlow/1", store=Store(path))
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        run.add_tag(f"{prefix}{i}")
        if i % 3 == 0:
            run.remove_tag("shared")
            run.add_tag("shared")
""")


@pytest.mark.stress
def test_two_processes_editing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "runstore.db"
    store = Store(path)
    fill_run(store, user="anne", tags=["keep"])
    count = 20
    procs = [subprocess.Popen([sys.executable, "-c", _EDITOR, str(path), prefix, str(count)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for prefix in ("a", "b")]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:  # release both at once
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0
    namespace(None)
    tags = Run("PredictionFlow/1", store=store).user_tags
    assert tags == {"keep", "shared"} | {f"{p}{i}" for p in "ab" for i in range(count)}
    assert store.integrity_problems() == []


_TAGS = st.sampled_from(["a", "b", "c", "exp:1", "ünï ☃", "x" * 500, "user:anne", "runtime:local"])


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.lists(_TAGS, max_size=3), st.lists(_TAGS, max_size=3)), max_size=8))
def test_tag_edits_match_a_set_model(ops):
    """Any sequence of replace_tags behaves like set algebra on the user tags."""
    store = Store(":memory:")
    record = fill_run(store, user="anne", tags=["start"], steps=["end"])
    namespace(None)
    run = Run(record.pathspec, store=store)
    system, created = run.system_tags, run.created_at
    model = {"start"}
    for remove, add in ops:
        if not remove and not add:
            continue
        if set(remove) & system or any(is_reserved(t) for t in add):  # reserved: system tags only
            with pytest.raises(TaggingError):
                run.replace_tags(remove, add)
            continue
        run.replace_tags(remove, add)
        model = (model - set(remove)) | (set(add) - system)
        assert run.user_tags == model
    assert run.system_tags == system and run.created_at == created
    assert Run(record.pathspec, store=store).created_at == created
