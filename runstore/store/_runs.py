"""Store methods that record runs, steps, tasks, attempts, logs and metadata.

The runtime calls these; each is one short write transaction. User code never runs
while a transaction is open: a task's artifacts are encoded first
(:meth:`~runstore.store._blobs.BlobsMixin.prepare_value`) and committed together
with the attempt's outcome in :meth:`RunsMixin.finish_attempt`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..errors import NotFound
from ..schema import STALE_AFTER
from ..tags import validate_user_tag
from ..util import hostname, now, pid_alive
from ._blobs import PreparedValue, StoredValue

__all__ = ["RunRecord", "RunsMixin", "effective_status"]


@dataclass(frozen=True)
class RunRecord:
    """A newly created run: internal id, flow name, per-flow number and UUID.

    Example
    -------
    >>> from runstore import Store
    >>> record = Store(":memory:").create_run("HelloFlow", user="anne")
    >>> record.pathspec
    'HelloFlow/1'
    """

    run_id: int
    flow: str
    run_number: int
    uuid: str

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_number}"


def effective_status(status: str, heartbeat_at: float | None, created_at: float,
                     owner_host: str | None, owner_pid: int | None) -> str:
    """A run's status as users see it: a ``running`` run whose owner is gone is ``crashed``.

    The owner is gone when its heartbeat is older than ``STALE_AFTER`` seconds, or
    at once when it ran on this host and its process no longer exists. A heartbeat
    more than ``STALE_AFTER`` seconds in the *future* was not written by a live
    scheduler (it records ``now()``): such a run is crashed too, so an edited row
    cannot keep a run "running" (and ``gc`` waiting) until then.

    Example
    -------
    >>> effective_status("running", 0.0, 0.0, "elsewhere", 1)
    'crashed'
    >>> effective_status("running", 4102444800.0, 0.0, "elsewhere", 1)  # a heartbeat in 2100
    'crashed'
    """
    if status != "running":
        return status
    last = heartbeat_at if heartbeat_at is not None else created_at
    current = now()
    if last < current - STALE_AFTER or last > current + STALE_AFTER:
        return "crashed"
    if owner_pid and owner_host == hostname() and not pid_alive(owner_pid):
        return "crashed"
    return "running"


class RunsMixin:
    """Writes of the run record. Mixed into ``Store``."""

    write: Any
    read: Any
    where: str
    commit_values: Any
    checkpoint: Any

    # ------------------------------------------------------------ runs

    def _flow_id(self, conn: sqlite3.Connection, flow: str) -> int:
        conn.execute("INSERT OR IGNORE INTO flows(name, created_at) VALUES (?, ?)", (flow, now()))
        return conn.execute("SELECT flow_id FROM flows WHERE name = ?", (flow,)).fetchone()[0]

    def create_run(
        self,
        flow: str,
        *,
        user: str | None,
        namespace: str | None = None,
        system_tags: Iterable[str] = (),
        user_tags: Iterable[str] = (),
        invocation: str = "run",
        origin_run_id: int | None = None,
        origin_pathspec: str | None = None,
        code_id: int | None = None,
        end_step: str = "end",
        owner_pid: int | None = None,
    ) -> RunRecord:
        """Allocate the next run number of ``flow`` and record a running run.

        The number comes from a per-flow counter incremented inside a
        ``BEGIN IMMEDIATE`` transaction: unique and increasing across processes,
        never reused after a delete. The namespace tag (``user:<name>`` unless given)
        is stored as a system tag; ``user_tags`` with a reserved prefix raise
        ``TaggingError`` before anything is written.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> [store.create_run("F", user="anne").run_number for _ in range(3)]
        [1, 2, 3]
        """
        namespace = namespace or f"user:{user}"
        run_uuid = str(uuidlib.uuid4())
        stamp = now()
        system = list(dict.fromkeys([namespace, *system_tags]))
        users = [t for t in dict.fromkeys(map(validate_user_tag, user_tags)) if t not in system]
        with self.write() as conn:
            flow_id = self._flow_id(conn, flow)
            number = conn.execute(
                "UPDATE flows SET last_run_number = last_run_number + 1 WHERE flow_id = ? "
                "RETURNING last_run_number",
                (flow_id,),
            ).fetchone()[0]
            run_id = conn.execute(
                "INSERT INTO runs(flow_id, run_number, uuid, user_name, namespace, status, created_at,"
                " heartbeat_at, owner_host, owner_pid, invocation, origin_run_id, origin_pathspec,"
                " code_id, end_step) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (flow_id, number, run_uuid, user, namespace, stamp, stamp, hostname(),
                 owner_pid if owner_pid is not None else os.getpid(), invocation, origin_run_id,
                 origin_pathspec, code_id, end_step),
            ).lastrowid
            conn.executemany(
                "INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at) VALUES (?, ?, ?, ?, ?)",
                [(run_id, tag, 1, flow_id, stamp) for tag in system]
                + [(run_id, tag, 0, flow_id, stamp) for tag in users],
            )
        return RunRecord(run_id, flow, number, run_uuid)

    def heartbeat(self, run_id: int) -> None:
        """Mark the run's owner as alive (the scheduler calls this every few seconds)."""
        with self.write() as conn:
            conn.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", (now(), run_id))

    def finish_run(self, run_id: int, status: str) -> None:
        """Record the run's final status and fold the WAL into the main file.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> store.finish_run(run.run_id, "succeeded")
        """
        if status not in ("succeeded", "failed"):
            raise ValueError(f"a run finishes as 'succeeded' or 'failed', not {status!r}")
        stamp = now()
        with self.write() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, heartbeat_at = ? WHERE run_id = ?",
                (status, stamp, stamp, run_id),
            )
        self.checkpoint()

    def set_run_code(self, run_id: int, code_id: int) -> None:
        """Attach a code package (see :meth:`add_code_package`) to a run."""
        with self.write() as conn:
            conn.execute("UPDATE runs SET code_id = ? WHERE run_id = ?", (code_id, run_id))

    def add_code_package(self, tarball: bytes, script_name: str) -> int:
        """Store a code archive once per distinct content and return its ``code_id``.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> store.add_code_package(b"tar", "flow.py") == store.add_code_package(b"tar", "flow.py")
        True
        """
        prepared = self.prepare_value(tarball)  # type: ignore[attr-defined]
        with self.write() as conn:
            self.commit_values(conn, [prepared])
            conn.execute(
                "INSERT OR IGNORE INTO code_packages(blob_key, script_name, created_at) VALUES (?, ?, ?)",
                (prepared.stored.blob_key, script_name, now()),
            )
            return conn.execute(
                "SELECT code_id FROM code_packages WHERE blob_key = ?", (prepared.stored.blob_key,)
            ).fetchone()[0]

    # ------------------------------------------------------------ steps and tasks

    def _step_id(self, conn: sqlite3.Connection, run_id: int, step: str) -> int:
        conn.execute(
            "INSERT OR IGNORE INTO steps(run_id, name, created_at) VALUES (?, ?, ?)", (run_id, step, now())
        )
        return conn.execute("SELECT step_id FROM steps WHERE run_id = ? AND name = ?", (run_id, step)).fetchone()[0]

    def create_task(
        self,
        run_id: int,
        step: str,
        *,
        foreach_path: str | None = None,
        foreach_index: int | None = None,
        origin_task_id: int | None = None,
        origin_pathspec: str | None = None,
    ) -> int:
        """Create a pending task of ``step`` (and the step, on first use); returns the task id.

        Task ids are unique in the whole store and never reused.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> a, b = store.create_task(run.run_id, "start"), store.create_task(run.run_id, "end")
        >>> b > a
        True
        """
        with self.write() as conn:
            step_id = self._step_id(conn, run_id, step)
            return conn.execute(
                "INSERT INTO tasks(run_id, step_id, created_at, foreach_path, foreach_index,"
                " origin_task_id, origin_pathspec) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, step_id, now(), foreach_path, foreach_index, origin_task_id, origin_pathspec),
            ).lastrowid

    def start_attempt(self, task_id: int, attempt: int, pid: int | None = None) -> None:
        """Record that ``attempt`` of a task has started (in process ``pid``)."""
        stamp = now()
        with self.write() as conn:
            conn.execute(
                "INSERT INTO attempts(task_id, attempt, started_at, pid) VALUES (?, ?, ?, ?)",
                (task_id, attempt, stamp, pid if pid is not None else os.getpid()),
            )
            changed = conn.execute(
                "UPDATE tasks SET status = 'running', attempt = ? WHERE task_id = ?", (attempt, task_id)
            ).rowcount
            if not changed:
                raise NotFound(f"task {task_id} does not exist in {self.where}")

    def finish_attempt(
        self,
        task_id: int,
        attempt: int,
        status: str,
        *,
        artifacts: Mapping[str, PreparedValue | StoredValue] = {},
        stdout: str = "",
        stderr: str = "",
        exception: tuple[str, str, str] | None = None,
        metadata: Mapping[str, Any] = {},
    ) -> None:
        """Commit an attempt's outcome, artifacts, logs and metadata in one transaction.

        ``status`` is ``succeeded``, ``failed`` or ``caught`` (failed, handled by
        ``@catch``). ``exception`` is ``(type, message, traceback)``. Nothing of the
        attempt is visible to readers until this commits.
        """
        if status not in ("succeeded", "failed", "caught"):
            raise ValueError(f"an attempt finishes as succeeded, failed or caught, not {status!r}")
        stamp = now()
        prepared = [v for v in artifacts.values() if isinstance(v, PreparedValue)]
        rows = []
        for name, value in artifacts.items():
            ref = value.stored if isinstance(value, PreparedValue) else value
            rows.append((task_id, attempt, name, ref.blob_key, ref.encoding, ref.type, ref.size, stamp, ref.json_value))
        exc_type, exc_message, exc_tb = exception if exception else (None, None, None)
        with self.write() as conn:
            self.commit_values(conn, prepared)
            conn.executemany(
                "INSERT OR REPLACE INTO artifacts(task_id, attempt, name, blob_key, encoding, type, size,"
                " created_at, json_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._insert_metadata(conn, task_id, attempt, metadata, stamp)
            conn.execute(
                "UPDATE attempts SET finished_at = ?, status = ?, exception_type = ?, exception_message = ?,"
                " traceback = ?, stdout = ?, stderr = ? WHERE task_id = ? AND attempt = ?",
                (stamp, status, exc_type, exc_message, exc_tb, stdout, stderr, task_id, attempt),
            )
            conn.execute(
                "UPDATE tasks SET status = ?, finished_at = ?, attempt = ? WHERE task_id = ?",
                (status, stamp, attempt, task_id),
            )

    @staticmethod
    def _insert_metadata(conn: sqlite3.Connection, task_id: int, attempt: int,
                         metadata: Mapping[str, Any], stamp: float) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO metadata(task_id, attempt, name, value, type, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (task_id, attempt, name, value if isinstance(value, str) else json.dumps(value), name, stamp)
                for name, value in metadata.items()
            ],
        )

    def add_metadata(self, task_id: int, attempt: int, metadata: Mapping[str, Any]) -> None:
        """Record metadata of a task attempt (strings as is, anything else as JSON).

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> store.add_metadata(store.create_task(run.run_id, "start"), 0, {"user": "anne"})
        """
        with self.write() as conn:
            self._insert_metadata(conn, task_id, attempt, metadata, now())

    # ------------------------------------------------------------ runtime helpers

    def create_tasks(self, run_id: int, step: str, tasks: Iterable[Mapping[str, Any]]) -> list[int]:
        """Create many pending tasks of one step in one transaction (foreach fan-out).

        Each item may give ``foreach_path``, ``foreach_index``, ``origin_task_id`` and
        ``origin_pathspec``. Returns the task ids in the order given.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> ids = store.create_tasks(run.run_id, "each", [{"foreach_index": i} for i in range(3)])
        >>> ids == sorted(ids) and len(ids) == 3
        True
        """
        stamp = now()
        ids = []
        with self.write() as conn:
            step_id = self._step_id(conn, run_id, step)
            for item in tasks:
                ids.append(conn.execute(
                    "INSERT INTO tasks(run_id, step_id, created_at, foreach_path, foreach_index,"
                    " origin_task_id, origin_pathspec) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, step_id, stamp, item.get("foreach_path"), item.get("foreach_index"),
                     item.get("origin_task_id"), item.get("origin_pathspec")),
                ).lastrowid)
        return ids

    def put_values(self, values: Iterable[Any]) -> list[StoredValue]:
        """Store several values in one transaction; returns their references in order.

        Example
        -------
        >>> from runstore import Store
        >>> refs = Store(":memory:").put_values(["a", "b", "a"])
        >>> refs[0].blob_key == refs[2].blob_key
        True
        """
        prepared = [self.prepare_value(v) for v in values]  # type: ignore[attr-defined]
        with self.write() as conn:
            self.commit_values(conn, prepared)
        return [p.stored for p in prepared]

    def abandon_attempt(self, task_id: int, attempt: int, exception: tuple[str, str, str]) -> None:
        """Mark an attempt failed whose process died before it could say so itself.

        Safe whether or not the attempt had started (its row is created if missing).
        """
        stamp = now()
        with self.write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO attempts(task_id, attempt, started_at) VALUES (?, ?, ?)",
                (task_id, attempt, stamp),
            )
            conn.execute(
                "UPDATE attempts SET finished_at = ?, status = 'failed', exception_type = ?,"
                " exception_message = ?, traceback = ? WHERE task_id = ? AND attempt = ? AND status = 'running'",
                (stamp, *exception, task_id, attempt),
            )
            conn.execute(
                "UPDATE tasks SET status = 'failed', finished_at = ?, attempt = ? WHERE task_id = ?"
                " AND status IN ('pending', 'running')",
                (stamp, attempt, task_id),
            )

    @staticmethod
    def _attempt_or_latest(conn: sqlite3.Connection, task_id: int, attempt: int | None) -> int | None:
        if attempt is not None:
            return attempt
        row = conn.execute("SELECT attempt FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else row[0]

    def task_artifact_refs(self, task_id: int, attempt: int | None = None) -> dict[str, StoredValue]:
        """The artifacts of a task's latest (or given) attempt, as references (nothing loaded).

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> task = store.create_task(run.run_id, "start")
        >>> store.start_attempt(task, 0)
        >>> store.finish_attempt(task, 0, "succeeded", artifacts={"x": store.put_value(1)})
        >>> store.task_artifact_refs(task)["x"].json_value
        '1'
        """
        with self.read() as conn:
            attempt = self._attempt_or_latest(conn, task_id, attempt)
            if attempt is None:
                raise NotFound(f"task {task_id} does not exist in {self.where}")
            rows = conn.execute(
                "SELECT name, blob_key, encoding, size, type, json_value FROM artifacts"
                " WHERE task_id = ? AND attempt = ? ORDER BY name",
                (task_id, attempt),
            ).fetchall()
        return {name: StoredValue(key, enc, size, typ, js) for name, key, enc, size, typ, js in rows}

    def run_ref(self, flow: str, run_number: int | None = None) -> tuple[int, int] | None:
        """``(run_id, run_number)`` of run ``run_number`` of ``flow`` (default: its latest run)."""
        with self.read() as conn:
            sql = ("SELECT r.run_id, r.run_number FROM runs r JOIN flows f ON f.flow_id = r.flow_id"
                   " WHERE f.name = ?")
            if run_number is None:
                row = conn.execute(sql + " ORDER BY r.run_number DESC LIMIT 1", (flow,)).fetchone()
            else:
                row = conn.execute(sql + " AND r.run_number = ?", (flow, run_number)).fetchone()
        return (row[0], row[1]) if row else None

    def run_tasks(self, run_id: int, step: str | None = None, task_id: int | None = None) -> list[dict[str, Any]]:
        """Tasks of a run (optionally of one step / one task) with status and attempt, oldest first."""
        sql = ("SELECT t.task_id, s.name, t.status, t.attempt, t.foreach_index FROM tasks t"
               " JOIN steps s ON s.step_id = t.step_id WHERE t.run_id = ?")
        args: list[Any] = [run_id]
        if step is not None:
            sql += " AND s.name = ?"
            args.append(step)
        if task_id is not None:
            sql += " AND t.task_id = ?"
            args.append(task_id)
        with self.read() as conn:
            rows = conn.execute(sql + " ORDER BY t.task_id", args).fetchall()
        return [dict(zip(("task_id", "step", "status", "attempt", "foreach_index"), r)) for r in rows]

    def attempt_record(self, task_id: int, attempt: int | None = None) -> dict[str, Any] | None:
        """One attempt's outcome: status, logs and exception (latest attempt by default)."""
        with self.read() as conn:
            attempt = self._attempt_or_latest(conn, task_id, attempt)
            if attempt is None:
                return None
            row = conn.execute(
                "SELECT attempt, status, stdout, stderr, exception_type, exception_message, traceback, pid"
                " FROM attempts WHERE task_id = ? AND attempt = ?",
                (task_id, attempt),
            ).fetchone()
        keys = ("attempt", "status", "stdout", "stderr", "exception_type", "exception_message", "traceback", "pid")
        return dict(zip(keys, row)) if row else None
