"""The reads behind the Client API, and the one write it makes (tag edits).

Every listing is newest first and every query is an index lookup or a bounded range
scan, so its cost does not grow with the number of runs in the store:

* runs of a flow in a namespace (or carrying a tag): ``run_tags_by_tag`` on
  ``(tag, flow_id, created_at DESC)``; the other tags are checked per candidate row
  through the ``run_tags`` primary key;
* the newest *successful* run in a namespace: the partial index
  ``run_tags_succeeded`` (``run_tags.run_status`` is kept equal to the run's status
  by triggers, see ``schema.py``);
* global listings: ``runs_by_flow_created`` / ``runs_by_flow_status``.

Listings are fetched in pages (keyset pagination on ``created_at``), never by
loading every run into Python; nothing here reads a payload or unpickles.
``tests/test_client_queries.py`` pins the query plans.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable, Sequence

from ..errors import NotFound, TaggingError
from ..tags import MAX_USER_TAGS, is_reserved, validate_tag, validate_user_tag

__all__ = ["QueriesMixin"]

Row = dict[str, Any]

_RUN_COLUMNS = (
    "r.run_id, r.flow_id, f.name AS flow, r.run_number, r.uuid, r.user_name, r.namespace, r.status,"
    " r.created_at, r.finished_at, r.heartbeat_at, r.owner_host, r.owner_pid, r.invocation,"
    " r.origin_run_id, r.origin_pathspec, r.code_id, r.end_step,"
    " (SELECT json_group_array(json_array(x.tag, x.is_system)) FROM run_tags x WHERE x.run_id = r.run_id)"
    " AS tags_json"
)

_TASK_COLUMNS = (
    "t.task_id, t.run_id, t.step_id, s.name AS step, t.created_at, t.finished_at, t.status,"
    " t.attempt, t.foreach_path, t.foreach_index, t.origin_task_id, t.origin_pathspec,"
    " (SELECT max(x.attempt) FROM attempts x WHERE x.task_id = t.task_id AND x.finished_at IS NOT NULL)"
    " AS done_attempt"
)

_ARTIFACT_COLUMNS = "artifact_id, task_id, attempt, name, blob_key, encoding, type, size, created_at"


def _tag_is(alias: str, tag: str) -> str:
    """SQL matching one ``?`` tag on ``alias``: a reserved tag only as a system tag (SPEC §13)."""
    return f"{alias}.tag = ?" + (f" AND {alias}.is_system = 1" if is_reserved(tag) else "")


def _dicts(cursor: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _one(cursor: sqlite3.Cursor) -> Row | None:
    rows = _dicts(cursor)
    return rows[0] if rows else None


class QueriesMixin:
    """Client reads and tag edits. Mixed into ``Store``."""

    read: Any
    write: Any
    where: str

    # ------------------------------------------------------------ flows

    def find_flow(self, name: str) -> Row | None:
        """The ``flows`` row of ``name`` (``flow_id``, ``name``, ``created_at``), or None.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = store.create_run("HelloFlow", user="anne")
        >>> store.find_flow("HelloFlow")["name"]
        'HelloFlow'
        """
        with self.read() as conn:
            return _one(conn.execute("SELECT flow_id, name, created_at FROM flows WHERE name = ?", (name,)))

    def list_flows(self, namespace: str | None = None) -> list[Row]:
        """Flows with at least one run (in ``namespace`` when given), newest first.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = store.create_run("A", user="anne"); _ = store.create_run("B", user="will")
        >>> [f["name"] for f in store.list_flows("user:anne")]
        ['A']
        """
        with self.read() as conn:
            if namespace is None:
                sql = ("SELECT flow_id, name, created_at FROM flows f WHERE EXISTS"
                       " (SELECT 1 FROM runs r WHERE r.flow_id = f.flow_id)"
                       " ORDER BY created_at DESC, flow_id DESC")
                return _dicts(conn.execute(sql))
            sql = ("SELECT flow_id, name, created_at FROM flows f WHERE EXISTS"
                   f" (SELECT 1 FROM run_tags t WHERE {_tag_is('t', namespace)} AND t.flow_id = f.flow_id)"
                   " ORDER BY created_at DESC, flow_id DESC")
            return _dicts(conn.execute(sql, (namespace,)))

    def flow_in_namespace(self, flow_id: int, namespace: str) -> bool:
        """Whether the flow has at least one run carrying the tag ``namespace``.

        A reserved namespace (``user:…``, ``production:…``) matches system tags only.
        """
        with self.read() as conn:
            return conn.execute(
                f"SELECT 1 FROM run_tags t WHERE {_tag_is('t', namespace)} AND flow_id = ? LIMIT 1",
                (namespace, flow_id)
            ).fetchone() is not None

    def latest_namespace(self, flow_id: int) -> str | None:
        """The namespace of the flow's newest run (to suggest in error messages)."""
        with self.read() as conn:
            row = conn.execute(
                "SELECT namespace FROM runs WHERE flow_id = ? ORDER BY created_at DESC LIMIT 1", (flow_id,)
            ).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------ runs

    def lookup_run(self, flow: str, run_number: int) -> Row | None:
        """One run by flow name and run number, with ``tags_json`` = ``[[tag, is_system], …]``.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> _ = store.create_run("HelloFlow", user="anne")
        >>> store.lookup_run("HelloFlow", 1)["user_name"]
        'anne'
        """
        with self.read() as conn:
            return _one(conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM flows f JOIN runs r ON r.flow_id = f.flow_id"
                " WHERE f.name = ? AND r.run_number = ?",
                (flow, run_number),
            ))

    def lookup_run_by_id(self, run_id: int) -> Row | None:
        """One run by its internal ``run_id`` (same columns as :meth:`lookup_run`)."""
        with self.read() as conn:
            return _one(conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs r JOIN flows f ON f.flow_id = r.flow_id WHERE r.run_id = ?",
                (run_id,),
            ))

    def run_exists(self, flow: str, run_number: int) -> bool:
        """Whether ``flow/run_number`` exists (no namespace involved)."""
        with self.read() as conn:
            return conn.execute(
                "SELECT 1 FROM flows f JOIN runs r ON r.flow_id = f.flow_id"
                " WHERE f.name = ? AND r.run_number = ?",
                (flow, run_number),
            ).fetchone() is not None

    def run_tags(self, run_id: int) -> list[tuple[str, bool]]:
        """``[(tag, is_system), …]`` of a run, sorted by tag.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne", user_tags=["x"])
        >>> store.run_tags(run.run_id)
        [('user:anne', True), ('x', False)]
        """
        with self.read() as conn:
            rows = conn.execute(
                "SELECT tag, is_system FROM run_tags WHERE run_id = ? ORDER BY tag", (run_id,)
            ).fetchall()
        return [(tag, bool(system)) for tag, system in rows]

    def run_has_tag(self, run_id: int, tag: str) -> bool:
        """Whether the run carries ``tag`` (a primary-key lookup); a reserved tag as a system tag.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne")
        >>> store.run_has_tag(run.run_id, "user:anne"), store.run_has_tag(run.run_id, "user:will")
        (True, False)
        """
        with self.read() as conn:
            return conn.execute(
                f"SELECT 1 FROM run_tags t WHERE run_id = ? AND {_tag_is('t', tag)}", (run_id, tag)
            ).fetchone() is not None

    def list_runs(
        self,
        flow_id: int,
        *,
        namespace: str | None = None,
        tags: Sequence[str] = (),
        successful: bool = False,
        before: float | None = None,
        limit: int = 100,
    ) -> list[Row]:
        """A page of a flow's runs, newest first, carrying ``namespace`` and all ``tags``.

        A reserved tag or namespace (``user:…``, ``production:…``, SPEC §13) matches
        system tags only, so a hand-edited user tag cannot put a run into a
        production namespace. ``successful`` keeps only runs whose status is ``succeeded``. ``before``
        continues a listing: runs created at or before that time (the caller drops
        the ones it has already seen at exactly that time).

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> for _ in range(3):
        ...     _ = store.create_run("F", user="anne")
        >>> flow_id = store.find_flow("F")["flow_id"]
        >>> [r["run_number"] for r in store.list_runs(flow_id, namespace="user:anne")]
        [3, 2, 1]
        """
        required = list(dict.fromkeys([*tags, *([namespace] if namespace is not None else [])]))
        params: list[Any] = []
        if required:
            # Drive by the first tag asked for (usually the most selective), newest
            # first through the index; check the others by primary key.
            driver, others = required[0], required[1:]
            table = "run_tags t INDEXED BY run_tags_succeeded" if successful else "run_tags t"
            where = [_tag_is("t", driver), "t.flow_id = ?"]
            params += [driver, flow_id]
            if successful:
                where.append("t.run_status = 'succeeded'")
            if before is not None:
                where.append("t.created_at <= ?")
                params.append(before)
            for tag in others:
                where.append(f"EXISTS (SELECT 1 FROM run_tags o WHERE o.run_id = t.run_id AND {_tag_is('o', tag)})")
                params.append(tag)
            sql = (
                f"SELECT {_RUN_COLUMNS} FROM {table} CROSS JOIN runs r ON r.run_id = t.run_id"
                " JOIN flows f ON f.flow_id = r.flow_id"
                f" WHERE {' AND '.join(where)} ORDER BY t.created_at DESC LIMIT ?"
            )
        else:
            index = "runs_by_flow_status" if successful else "runs_by_flow_created"
            where = ["r.flow_id = ?"]
            params.append(flow_id)
            if successful:
                where.append("r.status = 'succeeded'")
            if before is not None:
                where.append("r.created_at <= ?")
                params.append(before)
            sql = (
                f"SELECT {_RUN_COLUMNS} FROM runs r INDEXED BY {index} JOIN flows f ON f.flow_id = r.flow_id"
                f" WHERE {' AND '.join(where)} ORDER BY r.created_at DESC LIMIT ?"
            )
        params.append(limit)
        with self.read() as conn:
            return _dicts(conn.execute(sql, params))

    # ------------------------------------------------------------ steps

    def list_steps(self, run_id: int) -> list[Row]:
        """A run's steps (``step_id``, ``name``, ``created_at``), newest first."""
        with self.read() as conn:
            return _dicts(conn.execute(
                "SELECT step_id, run_id, name, created_at FROM steps WHERE run_id = ?"
                " ORDER BY created_at DESC, step_id DESC",
                (run_id,),
            ))

    def find_step(self, run_id: int, name: str) -> Row | None:
        """One step of a run by name, or None."""
        with self.read() as conn:
            return _one(conn.execute(
                "SELECT step_id, run_id, name, created_at FROM steps WHERE run_id = ? AND name = ?",
                (run_id, name),
            ))

    def step_finished_at(self, step_id: int) -> float | None:
        """When the step's last task finished; None while any task has not finished."""
        with self.read() as conn:
            row = conn.execute(
                "SELECT count(*), count(finished_at), max(finished_at) FROM tasks WHERE step_id = ?",
                (step_id,),
            ).fetchone()
        return row[2] if row[0] and row[0] == row[1] else None

    # ------------------------------------------------------------ tasks

    def list_tasks(self, step_id: int, *, limit: int | None = None) -> list[Row]:
        """A step's tasks, newest first (``done_attempt`` = latest finished attempt)."""
        with self.read() as conn:
            return _dicts(conn.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks t JOIN steps s ON s.step_id = t.step_id"
                " WHERE t.step_id = ? ORDER BY t.created_at DESC, t.task_id DESC"
                + (" LIMIT ?" if limit is not None else ""),
                (step_id,) if limit is None else (step_id, limit),
            ))

    def find_task(self, run_id: int, step: str, task_id: int) -> Row | None:
        """One task, checked to belong to ``run_id`` and ``step``; or None."""
        with self.read() as conn:
            return _one(conn.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks t JOIN steps s ON s.step_id = t.step_id"
                " WHERE t.task_id = ? AND t.run_id = ? AND s.name = ?",
                (task_id, run_id, step),
            ))

    def find_attempt(self, task_id: int, attempt: int) -> Row | None:
        """An attempt's outcome (status, times, exception, log sizes), without the logs."""
        with self.read() as conn:
            return _one(conn.execute(
                "SELECT task_id, attempt, started_at, finished_at, status, pid, exception_type,"
                " exception_message, traceback, length(CAST(stdout AS BLOB)) AS stdout_size,"
                " length(CAST(stderr AS BLOB)) AS stderr_size FROM attempts WHERE task_id = ? AND attempt = ?",
                (task_id, attempt),
            ))

    def read_log(self, task_id: int, attempt: int, stream: str) -> str:
        """The ``stdout`` or ``stderr`` text of one attempt ('' when there is none)."""
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream is 'stdout' or 'stderr', not {stream!r}")
        with self.read() as conn:
            row = conn.execute(
                f"SELECT {stream} FROM attempts WHERE task_id = ? AND attempt = ?", (task_id, attempt)
            ).fetchone()
        return row[0] if row else ""

    def list_metadata(self, task_id: int, attempt: int | None = None) -> list[Row]:
        """Metadata rows of a task (of one attempt when given), oldest first."""
        with self.read() as conn:
            if attempt is None:
                cur = conn.execute(
                    "SELECT attempt, name, value, type, created_at FROM metadata WHERE task_id = ?"
                    " ORDER BY created_at, attempt, name",
                    (task_id,),
                )
            else:
                cur = conn.execute(
                    "SELECT attempt, name, value, type, created_at FROM metadata WHERE task_id = ?"
                    " AND attempt = ? ORDER BY created_at, name",
                    (task_id, attempt),
                )
            return _dicts(cur)

    # ------------------------------------------------------------ artifacts

    def list_artifacts(self, task_id: int, attempt: int, *, private: bool = False) -> list[Row]:
        """Artifact rows (no payload) of one attempt, newest first then by name."""
        extra = "" if private else " AND substr(name, 1, 1) <> '_'"
        with self.read() as conn:
            return _dicts(conn.execute(
                f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE task_id = ? AND attempt = ?{extra}"
                " ORDER BY created_at DESC, name",
                (task_id, attempt),
            ))

    def find_artifact(self, task_id: int, attempt: int, name: str) -> Row | None:
        """One artifact row (no payload), or None."""
        with self.read() as conn:
            return _one(conn.execute(
                f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts WHERE task_id = ? AND attempt = ? AND name = ?",
                (task_id, attempt, name),
            ))

    def find_code_package(self, code_id: int) -> Row | None:
        """A code package row (``blob_key``, ``script_name``, ``created_at``), or None."""
        with self.read() as conn:
            return _one(conn.execute(
                "SELECT code_id, blob_key, script_name, created_at FROM code_packages WHERE code_id = ?",
                (code_id,),
            ))

    # ------------------------------------------------------------ tag edits

    def update_run_tags(
        self, run_id: int, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> list[tuple[str, bool]]:
        """Remove then add user tags of a run in one write transaction; return its tags.

        Read, check and write happen under one ``BEGIN IMMEDIATE`` lock, so edits from
        several processes at once are serialized and none is lost. System tags cannot
        be removed; adding a tag that is already a system tag changes nothing; a tag
        with a reserved prefix (``user:``, ``production:`` …) cannot be added (it can
        be removed, should a hand-edited file carry one). The run's ``created_at``
        (and so its place in every listing) never changes.

        Raises
        ------
        TaggingError
            Removing a system tag, adding a reserved-prefix tag, or growing the user
            tags beyond 50.

        Example
        -------
        >>> from runstore import Store
        >>> store = Store(":memory:")
        >>> run = store.create_run("F", user="anne", user_tags=["a"])
        >>> store.update_run_tags(run.run_id, add=["b"], remove=["a"])
        [('b', False), ('user:anne', True)]
        """
        add = [validate_user_tag(t) for t in add]
        remove = [validate_tag(t) for t in remove]
        with self.write() as conn:
            row = conn.execute("SELECT flow_id, created_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFound(f"run {run_id} does not exist in {self.where}")
            flow_id, created_at = row
            current = dict(conn.execute("SELECT tag, is_system FROM run_tags WHERE run_id = ?", (run_id,)))
            system = {t for t, s in current.items() if s}
            users = {t for t, s in current.items() if not s}
            bad = sorted(t for t in remove if t in system)
            if bad:
                raise TaggingError(f"Cannot remove a tag that is an existing system tag ({bad})")
            new_users = (users - set(remove)) | (set(add) - system)
            if len(new_users) > MAX_USER_TAGS and len(new_users) > len(users):
                raise TaggingError(f"Cannot increase size of tag set beyond {MAX_USER_TAGS}")
            gone = users - new_users
            fresh = new_users - users
            if gone:
                conn.executemany(
                    "DELETE FROM run_tags WHERE run_id = ? AND tag = ? AND is_system = 0",
                    [(run_id, t) for t in sorted(gone)],
                )
            if fresh:
                conn.executemany(
                    "INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at) VALUES (?, ?, 0, ?, ?)",
                    [(run_id, t, flow_id, created_at) for t in sorted(fresh)],
                )
            rows = conn.execute(
                "SELECT tag, is_system FROM run_tags WHERE run_id = ? ORDER BY tag", (run_id,)
            ).fetchall()
        return [(tag, bool(system)) for tag, system in rows]
