"""Fill a store with runs exactly as the runtime writes them (CONTRACT.md), via the Store API.

Used by the admin/CLI tests, which must not depend on the runtime. Each run has a
``_parameters`` step (one task: parameters + ``_graph_info``), ``start`` and ``end``
tasks with one attempt each, artifacts (parameters shared by reference), logs,
metadata and a code package.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from runstore import Store
from runstore.util import now

GRAPH = {
    "file": "flow.py", "start_step": "start", "end_step": "end",
    "parameters": [{"name": "alpha", "type": "float"}],
    "steps": {
        "start": {"name": "start", "type": "start", "line": 5, "next": ["end"], "foreach": None,
                  "matching_join": None, "decorators": []},
        "end": {"name": "end", "type": "end", "line": 10, "next": [], "foreach": None,
                "matching_join": None, "decorators": []},
    },
}


def code_tarball(source: str, script: str = "flow.py", flow: str = "F") -> bytes:
    """A deterministic tar.gz like the runtime's code package."""
    buf = io.BytesIO()
    import gzip

    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            for name, data in sorted({script: source.encode(),
                                      ".runstore/INFO": json.dumps({"flow_name": flow, "script": script,
                                                                    "runstore_version": "0.1.0"}).encode()}.items()):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def add_run(store: Store, flow: str = "F", *, alpha: float = 0.5, model: Any = None,
            result: Any = None, tags: tuple[str, ...] = (), user: str = "tester",
            source: str = "print('hello')\n", status: str = "succeeded", finish: bool = True,
            stdout: str = "hello from start\n") -> dict[str, Any]:
    """One complete run; returns ids: run_id, pathspec, tasks {step: task_id}."""
    code_id = store.add_code_package(code_tarball(source, flow=flow), "flow.py")
    record = store.create_run(flow, user=user, namespace=f"user:{user}",
                              system_tags=["runtime:local", "python_version:3.11.0",
                                           "runstore_version:0.1.0", "date:20261123"],
                              user_tags=list(tags), code_id=code_id, end_step="end")
    tasks: dict[str, int] = {}
    param = store.put_value(alpha)
    graph = store.put_value(GRAPH)
    meta = {"user": user, "runtime": "local", "python_version": "3.11.0", "platform": "linux",
            "runstore_version": "0.1.0", "attempt": "0", "script-name": "flow.py"}
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
        "artifacts": rows("SELECT r.uuid, s.name, a.name, a.blob_key, a.encoding, a.type, a.size, a.json_value"
                          " FROM artifacts a JOIN tasks t ON t.task_id = a.task_id JOIN runs r"
                          " ON r.run_id = t.run_id JOIN steps s ON s.step_id = t.step_id"),
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
