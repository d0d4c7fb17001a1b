"""Build runs in a store exactly as the runtime records them (CONTRACT.md), without flows.

``fill_run`` is used by the client, namespace, tag and SQL-view tests and by
``benchmarks/bench_client.py``; ``add_run`` (a fixed two-step run with a code
package) and ``snapshot`` by the admin, CLI, trust and dataframe tests.

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> fill_run(store, "PredictionFlow", user="anne", params={"alpha": 0.5}).pathspec
'PredictionFlow/1'
"""

from __future__ import annotations

import gzip
import io
import json
import platform
import tarfile
from typing import Any, Iterable, Mapping

from runstore import Store
from runstore._version import __version__
from runstore.store import RunRecord
from runstore.util import now

PYTHON = platform.python_version()


def system_tags() -> list[str]:
    """The system tags the runtime adds besides the namespace tag."""
    return ["runtime:local", f"python_version:{PYTHON}", f"runstore_version:{__version__}", "date:20261123"]


def graph_info(steps: Iterable[str], params: Iterable[str]) -> dict[str, Any]:
    names = list(steps)
    info: dict[str, Any] = {"file": "flow.py", "start_step": names[0], "end_step": names[-1],
                            "parameters": [{"name": p, "type": "str"} for p in params], "steps": {}}
    for i, name in enumerate(names):
        kind = "start" if i == 0 else "end" if i == len(names) - 1 else "linear"
        info["steps"][name] = {"name": name, "type": kind, "line": 10 + 5 * i,
                               "next": names[i + 1:i + 2], "foreach": None, "matching_join": None,
                               "decorators": []}
    return info


def task_metadata(user: str, attempt: int, **extra: Any) -> dict[str, Any]:
    return {"user": user, "runtime": "local", "python_version": PYTHON, "platform": platform.platform(),
            "runstore_version": __version__, "attempt": str(attempt), "script-name": "flow.py", **extra}


def fill_run(
    store: Store,
    flow: str = "PredictionFlow",
    *,
    user: str = "anne",
    tags: Iterable[str] = (),
    params: Mapping[str, Any] | None = None,
    steps: Iterable[str] = ("start", "end"),
    artifacts: Mapping[str, Mapping[str, Any]] | None = None,
    fail_at: str | None = None,
    retry_at: str | None = None,
    catch_at: str | None = None,
    foreach: Mapping[str, int] | None = None,
    finish: bool = True,
    namespace: str | None = None,
    code: bytes | None = None,
    origin: tuple[int, str] | None = None,
) -> RunRecord:
    """Record one run of ``flow`` by ``user``: ``_parameters``, then ``steps`` in order.

    Every task gets the parameters (same blobs), a private ``_note`` artifact, the
    artifacts named for its step in ``artifacts``, stdout ``"<step> out\\n"`` and
    stderr ``"<step> err\\n"``, and per-attempt metadata. ``fail_at`` makes that
    step fail (the run fails, later steps never run); ``retry_at`` makes attempt 0
    of that step fail and attempt 1 succeed; ``catch_at`` makes it fail but be
    caught; ``foreach`` gives a step several tasks. ``finish=False`` leaves the run
    running. ``origin`` = (origin run_id, origin pathspec) makes it a resumed run.
    """
    params = dict(params or {})
    artifacts = {k: dict(v) for k, v in (artifacts or {}).items()}
    steps = list(steps)
    code_id = store.add_code_package(code, "flow.py") if code is not None else None
    record = store.create_run(
        flow, user=user, namespace=namespace or f"user:{user}", system_tags=system_tags(),
        user_tags=list(tags), invocation="resume" if origin else "run", end_step=steps[-1],
        origin_run_id=origin[0] if origin else None, origin_pathspec=origin[1] if origin else None,
        code_id=code_id,
    )
    extra_meta = {"origin-run-id": origin[1].split("/")[1]} if origin else {}
    stored_params = {name: store.put_value(value) for name, value in params.items()}
    ptask = store.create_task(record.run_id, "_parameters")
    store.start_attempt(ptask, 0)
    store.finish_attempt(ptask, 0, "succeeded", artifacts={
        **stored_params, "_graph_info": store.put_value(graph_info(steps, params))},
        metadata=task_metadata(user, 0, **extra_meta))
    failed = False
    for step in steps:
        count = (foreach or {}).get(step)
        indexes: list[int | None] = list(range(count)) if count else [None]
        for index in indexes:
            task_id = store.create_task(
                record.run_id, step, foreach_index=index,
                foreach_path=None if index is None else f"{step}:{index}")
            values = {**stored_params, "_note": store.put_value(f"private {step}")}
            for name, value in artifacts.get(step, {}).items():
                values[name] = store.put_value(value if index is None else (value, index))
            attempts = [0, 1] if step == retry_at else [0]
            for attempt in attempts:
                store.start_attempt(task_id, attempt)
                failing = step == fail_at or (step == retry_at and attempt == 0) or step == catch_at
                status = ("caught" if step == catch_at else "failed") if failing else "succeeded"
                exception = ("builtins.ValueError", f"{step} broke",
                             f"Traceback (most recent call last):\n  File \"flow.py\", line 12, in {step}\n"
                             f"ValueError: {step} broke\n") if failing else None
                store.finish_attempt(
                    task_id, attempt, status,
                    artifacts=values if not failing or step == catch_at else {"_note": values["_note"]},
                    stdout=f"{step} out attempt {attempt}\n", stderr=f"{step} err\n",
                    exception=exception,
                    metadata=task_metadata(user, attempt, **extra_meta,
                                           **({"foreach-execution-path": f"{step}:{index}"}
                                              if index is not None else {})),
                )
            if step == fail_at:
                failed = True
        if failed:
            break
    if finish:
        store.finish_run(record.run_id, "failed" if failed else "succeeded")
    return record


def make_crashed(store: Store, run_id: int) -> None:
    """Make a running run look abandoned: stale heartbeat, owner on another host."""
    with store.write() as conn:
        conn.execute("UPDATE runs SET heartbeat_at = 0, owner_host = 'elsewhere' WHERE run_id = ?", (run_id,))


def graph_json(steps: Iterable[str]) -> str:
    return json.dumps(graph_info(steps, []))


def code_tarball(source: str, script: str = "flow.py", flow: str = "F") -> bytes:
    """A deterministic tar.gz like the runtime's code package."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            for name, data in sorted({script: source.encode(),
                                      ".runstore/INFO": json.dumps({"flow_name": flow, "script": script,
                                                                    "runstore_version": __version__}).encode()}.items()):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def add_run(store: Store, flow: str = "F", *, alpha: float = 0.5, model: Any = None,
            result: Any = None, tags: tuple[str, ...] = (), user: str = "tester",
            source: str = "print('hello')\n", status: str = "succeeded", finish: bool = True,
            stdout: str = "hello from start\n") -> dict[str, Any]:
    """One complete run for the admin/CLI tests: parameter ``alpha``, ``start`` (artifacts
    ``alpha``, ``x``, optional ``model``; ``stdout``, stderr ``warn``) and ``end``
    (optional ``result``), with a code package of ``source``.

    Returns ids: run_id, pathspec, uuid, tasks {step: task_id}, created_at.
    """
    code_id = store.add_code_package(code_tarball(source, flow=flow), "flow.py")
    record = store.create_run(flow, user=user, namespace=f"user:{user}", system_tags=system_tags(),
                              user_tags=list(tags), code_id=code_id, end_step="end")
    tasks: dict[str, int] = {}
    param = store.put_value(alpha)
    graph = store.put_value({**graph_info(["start", "end"], []), "parameters": [{"name": "alpha", "type": "float"}]})
    meta = task_metadata(user, 0)
    tid = tasks["_parameters"] = store.create_task(record.run_id, "_parameters")
    store.start_attempt(tid, 0)
    store.finish_attempt(tid, 0, "succeeded", artifacts={"alpha": param, "_graph_info": graph}, metadata=meta)
    values: dict[str, Any] = {"alpha": param, "x": store.prepare_value({"alpha": alpha, "n": 3})}
    if model is not None:
        values["model"] = store.prepare_value(model)
    tid = tasks["start"] = store.create_task(record.run_id, "start")
    store.start_attempt(tid, 0)
    store.finish_attempt(tid, 0, "succeeded", artifacts=values, stdout=stdout, stderr="warn\n", metadata=meta)
    end_values: dict[str, Any] = {"alpha": param}
    if result is not None:
        end_values["result"] = store.prepare_value(result)
    tid = tasks["end"] = store.create_task(record.run_id, "end")
    store.start_attempt(tid, 0)
    store.finish_attempt(tid, 0, status if status != "running" else "succeeded", artifacts=end_values,
                         metadata=meta)
    if finish:
        store.finish_run(record.run_id, status)
    return {"run_id": record.run_id, "pathspec": record.pathspec, "uuid": record.uuid, "tasks": tasks,
            "created_at": now()}


def snapshot(store: Store) -> dict[str, Any]:
    """Everything users can see, independent of internal ids: for comparing stores."""
    def rows(sql: str) -> list[tuple[Any, ...]]:
        return sorted(store.sql(sql).rows, key=repr)

    return {
        "runs": rows("SELECT uuid, flow, status, user, namespace, user_tags, system_tags FROM runs_view"),
        "tasks": rows("SELECT r.uuid, s.name, t.status, t.attempt, t.foreach_path FROM tasks t"
                      " JOIN runs r ON r.run_id = t.run_id JOIN steps s ON s.step_id = t.step_id"),
        # what each task attempt has (its bindings), whether stored by it or inherited
        "artifacts": rows("SELECT r.uuid, s.name, v.attempt, v.name, a.blob_key, a.encoding, a.type, a.size,"
                          " b.json_value FROM task_values v JOIN artifacts a ON a.artifact_id = v.artifact_id"
                          " JOIN blobs b ON b.blob_key = a.blob_key JOIN tasks t ON t.task_id = v.task_id"
                          " JOIN runs r ON r.run_id = t.run_id JOIN steps s ON s.step_id = t.step_id"),
        "attempts": rows("SELECT r.uuid, s.name, at.attempt, at.status, at.stdout, at.stderr FROM attempts at"
                         " JOIN tasks t ON t.task_id = at.task_id JOIN runs r ON r.run_id = t.run_id"
                         " JOIN steps s ON s.step_id = t.step_id"),
        "metadata": rows("SELECT r.uuid, s.name, m.name, m.value FROM metadata m JOIN tasks t"
                         " ON t.task_id = m.task_id JOIN runs r ON r.run_id = t.run_id"
                         " JOIN steps s ON s.step_id = t.step_id"),
        "blobs": rows("SELECT blob_key, size, n_chunks FROM blobs"),
        "chunks": rows("SELECT chunk_key, raw_size FROM blob_chunks"),
        "code": rows("SELECT r.uuid, c.blob_key, c.script_name FROM runs r JOIN code_packages c"
                     " ON c.code_id = r.code_id"),
    }
