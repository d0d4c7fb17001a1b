"""Flow / Run / Step / Task / DataArtifact / Runstore over a store filled as the runtime does."""

from __future__ import annotations

import collections
import io
import json
import pickle
import tarfile
from datetime import datetime, timezone

import pytest
from storefill import fill_run, make_crashed

from runstore import (
    DataArtifact,
    Flow,
    InvalidPathspec,
    NotFound,
    Run,
    Runstore,
    Step,
    Store,
    Task,
    UntrustedArtifact,
    get_metadata,
    namespace,
    use_store,
)


def test_pathspec_shape_errors_use_metaflow_messages(client_store):
    cases = [
        (Flow, None, "Expects Flow('FlowName')"),
        (Run, "F", "Expects Run('FlowName/RunID')"),
        (Run, "F/1/start", "Expects Run('FlowName/RunID')"),
        (Run, "F/", "Expects Run('FlowName/RunID')"),
        (Step, "F/1", "Expects Step('FlowName/RunID/StepName')"),
        (Task, "F/1/start", "Expects Task('FlowName/RunID/StepName/TaskID')"),
        (DataArtifact, "F/1/start/2", "Expects DataArtifact('FlowName/RunID/StepName/TaskID/ArtifactName')"),
    ]
    for cls, path, message in cases:
        with pytest.raises(InvalidPathspec) as info:
            cls(path)
        assert str(info.value) == message
        assert isinstance(info.value, ValueError)


def test_missing_objects_raise_not_found_which_is_a_key_error(client_store):
    fill_run(client_store, user="anne")
    for cls, path in [(Flow, "NoFlow"), (Run, "PredictionFlow/9"), (Run, "PredictionFlow/abc"),
                      (Step, "PredictionFlow/1/nope"), (Task, "PredictionFlow/1/start/999"),
                      (Task, "PredictionFlow/1/end/2"),  # task 2 is start's, not end's
                      (DataArtifact, "PredictionFlow/1/start/2/nope")]:
        with pytest.raises(KeyError) as info:
            cls(path)
        assert isinstance(info.value, NotFound)
        assert str(info.value) == f"{cls.__name__}('{path}') does not exist"


def test_attempt_only_for_tasks_and_artifacts(client_store):
    fill_run(client_store, user="anne")
    with pytest.raises(NotFound, match="Attempts can only be specified for Task or DataArtifact"):
        Run("PredictionFlow/1", attempt=0)
    with pytest.raises(NotFound, match="Attempt can only be non-negative"):
        Task("PredictionFlow/1/start/2", attempt=-1)
    with pytest.raises(NotFound, match="Attempt can only be an integer"):
        Task("PredictionFlow/1/start/2", attempt="x")
    with pytest.raises(NotFound, match="does not exist"):
        Task("PredictionFlow/1/start/2", attempt=3)
    assert str(Task("PredictionFlow/1/start/2", attempt=0)) == "Task('PredictionFlow/1/start/2', attempt=0)"


def test_run_members(client_store):
    record = fill_run(client_store, user="anne", tags=["exp"], params={"alpha": 0.5},
                      artifacts={"end": {"accuracy": 0.9}})
    run = Run(record.pathspec)
    assert (run.id, run.run_number, run.pathspec, run.uuid) == ("1", 1, "PredictionFlow/1", record.uuid)
    assert run.user == "anne" and run.namespace == "user:anne" and run.invocation == "run"
    assert run.successful and run.finished and run.status == "succeeded"
    assert run.created_at.tzinfo is timezone.utc and run.finished_at >= run.created_at
    assert run.origin_pathspec is None
    assert [s.id for s in run] == ["end", "start"]  # newest first, _parameters hidden
    assert "_parameters" in run and run["_parameters"].task.data.alpha == 0.5
    assert run.end_task == Task(f"PredictionFlow/1/end/{run['end'].task.id}")
    assert run.data.accuracy == 0.9 and run.data.alpha == 0.5
    assert run.parent == Flow("PredictionFlow")
    assert run.user_tags == {"exp"} and "user:anne" in run.system_tags
    assert run.tags == run.user_tags | run.system_tags
    assert run.code is None
    assert list(run.steps("exp")) == list(run) and list(run.steps("nope")) == []


def test_step_and_task_members(client_store):
    fill_run(client_store, user="anne", steps=["start", "fan", "end"], foreach={"fan": 3},
             artifacts={"fan": {"part": "p"}})
    run = Run("PredictionFlow/1")
    fan = run["fan"]
    tasks = list(fan)
    assert [t.index for t in tasks] == [2, 1, 0]  # newest first
    assert fan.task == tasks[0]
    assert tasks[-1].data.part == ("p", 0) and tasks[-1].foreach_path == "fan:0"
    # distinct times per task, so that reading another step's tasks gives another answer
    with client_store.write() as conn:
        conn.execute("UPDATE tasks SET created_at = 1000 + task_id, finished_at = 2000 + task_id")
    fan_ids = [int(t.id) for t in tasks]
    assert fan.finished_at == datetime.fromtimestamp(2000 + max(fan_ids), timezone.utc)
    assert run["start"].finished_at == datetime.fromtimestamp(2000 + int(run["start"].task.id), timezone.utc)
    assert fan.created_at is not None
    with client_store.write() as conn:  # one unfinished task: the step is not finished, the others are
        conn.execute("UPDATE tasks SET finished_at = NULL WHERE task_id = ?", (min(fan_ids),))
    assert fan.finished_at is None and run["end"].finished_at is not None
    assert fan.parent == run and tasks[0].parent == fan
    task = run["start"].task
    assert task.successful and task.finished and task.exception is None
    assert task.stdout == "start out attempt 0\n" and task.stderr == "start err\n"
    assert task.stdout_size == len(task.stdout) and task.stderr_size == len(task.stderr)
    assert task.metadata_dict["user"] == "anne" and task.metadata_dict["runtime"] == "local"
    assert {m.name for m in task.metadata} >= {"user", "runtime", "python_version", "attempt"}
    assert task.runtime_name == "local" and task.index is None and task.current_attempt == 0
    assert task.id in fan.parent["start"] and "999999" not in run["start"] and "x" not in run["start"]
    assert task.origin_pathspec is None
    assert run["start"].parent_steps == [] and run["start"].child_steps == [fan]
    assert fan.parent_steps == [run["start"]] and fan.child_steps == [run["end"]]
    assert run["end"].child_steps == []


def test_private_artifacts_hidden_but_reachable(client_store):
    fill_run(client_store, user="anne", params={"alpha": 1}, artifacts={"start": {"x": [1, 2]}})
    task = Run("PredictionFlow/1")["start"].task
    assert sorted(a.id for a in task) == ["alpha", "x"]
    assert "_note" in task and "_note" not in task.data
    assert task["_note"].data == "private start"
    assert task.artifacts.x.data == [1, 2]
    assert sorted(dir(task.data)) == ["alpha", "x"] and repr(task.data).startswith("<TaskData: ")
    with pytest.raises(AttributeError):
        task.data.nope
    with pytest.raises(KeyError):
        task["nope"]


def test_data_artifact_members(client_store):
    fill_run(client_store, user="anne", artifacts={"start": {"x": {"k": [1, 2.5]}}})
    task = Run("PredictionFlow/1")["start"].task
    art = task["x"]
    assert art == DataArtifact(f"{task.pathspec}/x")
    assert art.data == {"k": [1, 2.5]} and art.encoding == "json" and art.type == "dict"
    assert len(art.sha) == 64 and art.size > 0 and art.created_at == art.finished_at
    assert art.parent == task and art.tags == task.tags and art.origin_pathspec is None


def test_listing_never_loads_payloads(client_store):
    """An untrusted pickle can be listed and described; only .data refuses."""
    fill_run(client_store, user="anne", artifacts={"start": {"obj": collections.Counter("aab")}})
    with client_store.write() as conn:
        conn.execute("DELETE FROM blob_trust")  # as if someone else wrote the file
    task = Run("PredictionFlow/1")["start"].task
    art = task["obj"]
    assert art.encoding == "pickle" and art.type == "collections.Counter" and "obj" in task.data
    assert [a.id for a in task] and art.size > 0
    with pytest.raises(UntrustedArtifact):
        art.data


def test_retries_are_attempt_aware(client_store):
    fill_run(client_store, user="anne", retry_at="start", artifacts={"start": {"x": 1}})
    path = Run("PredictionFlow/1")["start"].task.pathspec
    latest, first = Task(path), Task(path, attempt=0)
    assert latest.current_attempt == 1 and latest.successful and latest.data.x == 1
    assert not first.successful and not first.finished and "x" not in first
    assert first.exception.type == "builtins.ValueError" and "start broke" in str(first.exception)
    assert first.stdout == "start out attempt 0\n" and latest.stdout == "start out attempt 1\n"
    assert {m.attempt for m in latest.metadata} == {0, 1}
    assert {m.attempt for m in first.metadata} == {0}
    with client_store.write() as conn:  # tell every task's and attempt's metadata apart
        conn.execute("UPDATE metadata SET value = value || '@' || task_id || '.' || attempt WHERE name = 'user'")
    assert first.metadata_dict["user"] == f"anne@{first.id}.0"
    assert latest.metadata_dict["user"] == f"anne@{latest.id}.1"
    assert {m.value for m in first.metadata if m.name == "user"} == {f"anne@{first.id}.0"}
    assert first["_note"].parent == first


def test_failed_and_caught_tasks(client_store):
    fill_run(client_store, user="anne", steps=["start", "risky", "end"], catch_at="risky")
    risky = Run("PredictionFlow/1")["risky"].task
    # caught: no Task.exception, as in Metaflow (the @catch var holds it); the attempt row keeps it
    assert risky.finished and not risky.successful and risky.exception is None
    assert client_store.sql("SELECT exception_message FROM attempts WHERE task_id = ?",
                            [int(risky.id)]).rows == [("risky broke",)]
    fill_run(client_store, user="anne", fail_at="end")
    failed = Run("PredictionFlow/2")
    # Metaflow's meaning (issue #19): a run finished when its end step finished; not a failed one
    assert failed.status == "failed" and not failed.successful and not failed.finished
    end = failed.end_task
    assert not end.successful and not end.finished and end.finished_at is None
    assert "ValueError: end broke" in str(end.exception)
    assert end.exception.exception == "end broke" and end.exception.stacktrace.startswith("Traceback")


def test_finished_follows_metaflow_for_runs_and_tasks(client_store):
    """Task.finished: succeeded or caught; Run.finished: its end task finished (issue #19)."""
    fill_run(client_store, user="anne", steps=["start", "risky", "end"], fail_at="risky")
    failed = Run("PredictionFlow/1")
    assert failed.status == "failed" and failed.end_task is None
    assert not failed.finished and not failed["risky"].task.finished
    assert failed["start"].task.finished  # a task that succeeded in a failed run did finish
    assert failed.finished_at is not None  # when the run ended, for its duration (docs/client.md)
    fill_run(client_store, user="anne", steps=["start", "risky", "end"], catch_at="risky")
    caught = Run("PredictionFlow/2")
    assert caught.finished and caught.successful and caught["risky"].task.finished
    assert not caught["risky"].task.successful
    live = fill_run(client_store, user="anne", steps=["start"], finish=False)
    assert not Run(live.pathspec).finished


def test_running_and_crashed_runs(client_store):
    live = fill_run(client_store, user="anne", finish=False, steps=["start"])
    run = Run(live.pathspec)
    assert run.status == "running" and not run.finished and run.finished_at is None
    make_crashed(client_store, live.run_id)
    assert run.status == "crashed" and not run.successful and not run.finished
    fill_run(client_store, user="anne", steps=["start", "end"], finish=False, fail_at=None)
    assert Run("PredictionFlow/2").end_task is not None


def test_run_without_end_task(client_store):
    record = client_store.create_run("EmptyFlow", user="anne")
    run = Run(record.pathspec)
    assert run.end_task is None and run.data is None and list(run) == []


def test_resumed_run_origin_pathspecs(client_store):
    first = fill_run(client_store, user="anne", fail_at="end")
    second = fill_run(client_store, user="anne", origin=(first.run_id, first.pathspec))
    run = Run(second.pathspec)
    assert run.origin_pathspec == "PredictionFlow/1" and run.invocation == "resume"
    assert run["start"].origin_pathspec == "PredictionFlow/1/start"
    assert run["start"].task.metadata_dict["origin-run-id"] == "1"


def test_code_package(client_store):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in [("flow.py", "print('hi')\n"),
                           (".runstore/INFO", json.dumps({"flow_name": "PredictionFlow", "script": "flow.py",
                                                          "runstore_version": "0.1.0"}))]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    fill_run(client_store, user="anne", code=buf.getvalue())
    code = Run("PredictionFlow/1").code
    assert code.script_name == "flow.py" and code.flowspec == "print('hi')\n" and code.path is None
    assert code.info["flow_name"] == "PredictionFlow" and "flow.py" in code.tarball.getnames()
    assert Run("PredictionFlow/1")["start"].task.code.flowspec == code.flowspec
    tmp = code.extract()
    try:
        assert open(f"{tmp.name}/flow.py").read() == "print('hi')\n"
    finally:
        tmp.cleanup()
    assert repr(code) == "<Code: flow.py>"


def test_flow_listing_and_root(client_store):
    for _ in range(3):
        fill_run(client_store, user="anne")
    fill_run(client_store, "OtherFlow", user="anne")
    flow = Flow("PredictionFlow")
    assert [r.id for r in flow] == ["3", "2", "1"]
    assert flow.latest_run.id == "3" and flow.tags == frozenset()
    assert flow["2"] == Run("PredictionFlow/2") and flow[2] == flow["2"]
    assert "2" in flow and 2 in flow and "9" not in flow and "x" not in flow
    assert flow.parent is None and flow.created_at is not None
    assert [f.id for f in Runstore().flows] == ["OtherFlow", "PredictionFlow"]
    assert Runstore()["OtherFlow"] == Flow("OtherFlow") and "OtherFlow" in Runstore()
    assert repr(Runstore()) == "Runstore()"


def test_store_argument_and_use_store(tmp_path):
    one, two = Store(tmp_path / "one.db"), Store(tmp_path / "two.db")
    fill_run(one, user="tester")
    namespace(None)
    assert Flow("PredictionFlow", store=one).latest_run.store is one
    assert Flow("PredictionFlow", store=tmp_path / "one.db").latest_run.id == "1"
    with pytest.raises(NotFound):
        Flow("PredictionFlow", store=two)
    with use_store(one):
        run = Flow("PredictionFlow").latest_run
        assert get_metadata() == f"sqlite@{tmp_path / 'one.db'}"
    with use_store(two):
        assert run.data is not None or run.end_task is not None  # keeps its own store
    back = pickle.loads(pickle.dumps(run))
    assert back == run and back.store.path == one.path


def test_default_store_is_discovered(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNSTORE_DB", str(tmp_path / "found.db"))
    fill_run(Store(tmp_path / "found.db"), user="tester")
    namespace(None)
    assert Run("PredictionFlow/1").user == "tester"


def test_objects_compare_and_hash(client_store):
    fill_run(client_store, user="anne")
    assert Run("PredictionFlow/1") == Run("PredictionFlow/1")
    assert len({Run("PredictionFlow/1"), Run("PredictionFlow/1")}) == 1
    assert str(Step("PredictionFlow/1/start")) == "Step('PredictionFlow/1/start')"
    assert Run("PredictionFlow/1").path_components == ["PredictionFlow", "1"]


def test_repr_says_which_store_and_what_the_run_is(memory_store, file_store):
    from storefill import fill_run

    from runstore import Run, namespace

    fill_run(memory_store, "F", user="anne")
    fill_run(file_store, "F", user="anne")
    namespace(None)
    mem, disk = Run("F/1", store=memory_store), Run("F/1", store=file_store)
    assert str(mem) == str(disk) == "Run('F/1')"  # the short form, as Metaflow prints it
    assert repr(mem) != repr(disk)
    assert repr(mem).startswith("Run('F/1') [succeeded, anne, ") and repr(mem).endswith(", in-memory store]")
    assert repr(disk).endswith(f", store {file_store.where}]")
    assert repr(mem["end"].task).endswith("[succeeded, in-memory store]")
    assert "in-memory store" in repr(mem.parent) and "in-memory store" in repr(mem.parent.runs())
