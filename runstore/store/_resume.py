"""Store methods for resume: finding the origin run, reading its tasks, cloning by reference.

A cloned task is a new task row of the new run whose artifact rows point at the
origin task's blobs (no blob is written or read), whose one attempt copies the
origin's outcome and logs, and which names its origin (``origin_task_id``,
``origin_pathspec``). Everything a clone needs is written in one transaction.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..errors import NotFound
from ..util import now
from ._cards import clone_cards

__all__ = ["ResumeMixin"]

_ORIGIN_COLUMNS = ("run_id", "flow", "run_number", "user_name", "namespace", "status", "invocation",
                   "heartbeat_at", "created_at", "owner_host", "owner_pid")


class ResumeMixin:
    """Reads and writes behind ``resume`` and ``run --clone``. Mixed into ``Store``."""

    write: Any
    read: Any
    where: str
    _insert_metadata: Any

    def origin_run(self, flow: str, run_number: int | None = None, *, user: str | None = None) -> dict[str, Any] | None:
        """The run to resume or clone, or None.

        With ``run_number``: that run of ``flow``, whoever made it. Without: the newest
        run of ``flow`` started by ``python flow.py run`` (``invocation = 'run'``, so
        resumes never become the default origin) by ``user``, successful or not.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> first = store.create_run("F", user="anne")
        >>> _ = store.create_run("F", user="anne", invocation="resume")
        >>> store.origin_run("F", user="anne")["run_number"], store.origin_run("F", user="will")
        (1, None)
        """
        sql = ("SELECT r.run_id, f.name, r.run_number, r.user_name, r.namespace, r.status, r.invocation,"
               " r.heartbeat_at, r.created_at, r.owner_host, r.owner_pid"
               " FROM runs r JOIN flows f ON f.flow_id = r.flow_id WHERE f.name = ?")
        with self.read() as conn:
            if run_number is not None:
                row = conn.execute(sql + " AND r.run_number = ?", (flow, run_number)).fetchone()
            else:
                row = conn.execute(
                    sql + " AND r.invocation = 'run' AND r.user_name IS ?"
                    " ORDER BY r.created_at DESC, r.run_number DESC LIMIT 1", (flow, user)).fetchone()
        return dict(zip(_ORIGIN_COLUMNS, row)) if row else None

    def origin_tasks(self, run_id: int) -> list[dict[str, Any]]:
        """Every task of a run with step, status, attempt and foreach path (oldest first).

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> _ = store.create_task(run.run_id, "start")
        >>> [t["step"] for t in store.origin_tasks(run.run_id)]
        ['start']
        """
        with self.read() as conn:
            rows = conn.execute(
                "SELECT t.task_id, s.name, t.status, t.attempt, t.foreach_path FROM tasks t"
                " JOIN steps s ON s.step_id = t.step_id WHERE t.run_id = ? ORDER BY t.task_id",
                (run_id,),
            ).fetchall()
        keys = ("task_id", "step", "status", "attempt", "foreach_path")
        return [dict(zip(keys, row)) for row in rows]

    def foreach_stacks(self, run_id: int, step: str) -> dict[int, list[dict[str, Any]]]:
        """The ``_foreach_stack`` (list of frames, JSON) of every finished task of ``step``.

        Keyed by task id; tasks that never finished an attempt have none. Read from
        the JSON column, never by decoding a pickle.
        """
        with self.read() as conn:
            rows = conn.execute(
                "SELECT t.task_id, a.json_value FROM tasks t JOIN steps s ON s.step_id = t.step_id"
                " JOIN artifacts a ON a.task_id = t.task_id AND a.attempt = t.attempt"
                " WHERE t.run_id = ? AND s.name = ? AND a.name = '_foreach_stack' AND a.encoding = 'json'",
                (run_id, step),
            ).fetchall()
        stacks = {}
        for task_id, text in rows:
            if text is not None:
                try:
                    stacks[task_id] = json.loads(text)
                except ValueError:
                    continue
        return stacks

    def clone_task(self, task_id: int, origin_task_id: int, origin_pathspec: str,
                   metadata: Mapping[str, Any] = {}, *, artifacts: Mapping[str, Any] | None = None) -> str:
        """Make pending task ``task_id`` a clone of ``origin_task_id``; returns the clone's status.

        The origin's latest attempt becomes attempt 0 of the clone: same status,
        exception and logs; its artifact rows are copied pointing to the same blobs
        (``artifacts`` replaces some of them by other references, e.g. a new
        ``_graph_info``). ``metadata`` is recorded on the clone's attempt.

        Raises
        ------
        NotFound
            When either task does not exist.
        """
        stamp = now()
        with self.write() as conn:
            found = conn.execute("SELECT attempt, status FROM tasks WHERE task_id = ?", (origin_task_id,)).fetchone()
            if found is None or conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone() is None:
                raise NotFound(f"task {origin_task_id} or {task_id} does not exist in {self.where}")
            attempt, status = found
            conn.execute(
                "INSERT INTO attempts(task_id, attempt, started_at, finished_at, status, pid, exception_type,"
                " exception_message, traceback, stdout, stderr)"
                " SELECT ?, 0, ?, ?, status, NULL, exception_type, exception_message, traceback, stdout, stderr"
                " FROM attempts WHERE task_id = ? AND attempt = ?",
                (task_id, stamp, stamp, origin_task_id, attempt),
            )
            conn.execute(
                "INSERT INTO artifacts(task_id, attempt, name, blob_key, encoding, type, size, created_at,"
                " json_value) SELECT ?, 0, name, blob_key, encoding, type, size, ?, json_value"
                " FROM artifacts WHERE task_id = ? AND attempt = ?",
                (task_id, stamp, origin_task_id, attempt),
            )
            if artifacts:
                conn.executemany(
                    "INSERT OR REPLACE INTO artifacts(task_id, attempt, name, blob_key, encoding, type, size,"
                    " created_at, json_value) VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?)",
                    [(task_id, name, ref.blob_key, ref.encoding, ref.type, ref.size, stamp, ref.json_value)
                     for name, ref in artifacts.items()],
                )
            self._insert_metadata(conn, task_id, 0, metadata, stamp)
            clone_cards(conn, task_id, origin_task_id, stamp)  # a clone keeps its cards
            conn.execute(
                "UPDATE tasks SET status = ?, attempt = 0, finished_at = ?, origin_task_id = ?, origin_pathspec = ?"
                " WHERE task_id = ?",
                (status, stamp, origin_task_id, origin_pathspec, task_id),
            )
        return status
