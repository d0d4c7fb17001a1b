"""Every write of the run record: runs, steps, tasks, attempts, logs, metadata, code, tags, clones.

Each function runs its statements on the connection of a write transaction the
caller holds (``with store.write() as conn``), so several of them commit together
or not at all. User code never runs while a transaction is open: a task's artifacts
are encoded first (:func:`~runstore.store._blobs.prepare_value`) and committed with
the attempt's outcome in :func:`finish_attempt`.

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> with store.write() as conn:
...     run = create_run(conn, "HelloFlow", user="anne")
...     task = create_tasks(conn, run.run_id, "start", [{}])[0]
...     start_attempt(conn, task, 0, where=store.where)
...     finish_attempt(conn, task, 0, "succeeded", stdout="hi\\n")
>>> run.pathspec, store.attempt_record(task)["stdout"]
('HelloFlow/1', 'hi\\n')
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

from ..codecs import JSON_SQL_LIMIT, JsonCodec
from ..errors import CodecError, NotFound, TaggingError
from ..tags import MAX_USER_TAGS, validate_tag, validate_user_tag
from ..util import hostname, new_uuid, now
from ._blobs import PreparedValue, StoredValue, chunk_bytes, commit_values
from ._cards import clone_cards
from ._db import batches, placeholders
from ._reads import list_artifact_refs, list_run_tags

__all__ = ["RunRecord", "flow_id", "next_run_number", "create_run", "heartbeat", "finish_run", "set_run_code",
           "add_code_package", "code_package_id", "create_tasks", "start_attempt", "finish_attempt", "abandon_attempt",
           "append_log", "insert_metadata", "update_run_tags", "clone_task", "clone_log_stamps",
           "PARAMETERS_STEP", "sync_run_params"]

#: The pseudo-step whose one task holds a run's parameters as artifacts.
PARAMETERS_STEP = "_parameters"


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


# ------------------------------------------------------------ flows and run numbers

def flow_id(conn: sqlite3.Connection, flow: str) -> int:
    """The ``flow_id`` of ``flow``, creating its row on first use (the one flow upsert)."""
    conn.execute("INSERT OR IGNORE INTO flows(name, created_at) VALUES (?, ?)", (flow, now()))
    return conn.execute("SELECT flow_id FROM flows WHERE name = ?", (flow,)).fetchone()[0]


def next_run_number(conn: sqlite3.Connection, flow_id: int) -> int:
    """Allocate the flow's next run number (the one allocation; run numbers are never reused).

    Inside the caller's ``BEGIN IMMEDIATE``: unique and increasing across processes,
    and a deleted run's number is never handed out again (a ``MAX()+1`` would).
    """
    return conn.execute(
        "UPDATE flows SET last_run_number = last_run_number + 1 WHERE flow_id = ? RETURNING last_run_number",
        (flow_id,)).fetchone()[0]


# ------------------------------------------------------------ runs

def create_run(conn: sqlite3.Connection, flow: str, *, user: str | None, namespace: str | None = None,
               system_tags: Iterable[str] = (), user_tags: Iterable[str] = (), invocation: str = "run",
               origin_run_id: int | None = None, origin_pathspec: str | None = None, code_id: int | None = None,
               end_step: str = "end", owner_pid: int | None = None) -> RunRecord:
    """Record a running run with the flow's next number and its tags (see ``Store.create_run``)."""
    namespace = namespace or f"user:{user}"
    run_uuid = new_uuid()
    stamp = now()
    system = list(dict.fromkeys([namespace, *system_tags]))
    users = [t for t in dict.fromkeys(map(validate_user_tag, user_tags)) if t not in system]
    fid = flow_id(conn, flow)
    number = next_run_number(conn, fid)
    run_id = conn.execute(
        "INSERT INTO runs(flow_id, run_number, uuid, user_name, namespace, status, created_at,"
        " heartbeat_at, owner_host, owner_pid, invocation, origin_run_id, origin_pathspec,"
        " code_id, end_step) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (fid, number, run_uuid, user, namespace, stamp, stamp, hostname(),
         owner_pid if owner_pid is not None else os.getpid(), invocation, origin_run_id,
         origin_pathspec, code_id, end_step),
    ).lastrowid
    assert run_id is not None
    conn.executemany(
        "INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at) VALUES (?, ?, ?, ?, ?)",
        [(run_id, tag, 1, fid, stamp) for tag in system] + [(run_id, tag, 0, fid, stamp) for tag in users],
    )
    return RunRecord(run_id, flow, number, run_uuid)


def heartbeat(conn: sqlite3.Connection, run_id: int) -> None:
    """Mark the run's owner as alive."""
    conn.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", (now(), run_id))


def finish_run(conn: sqlite3.Connection, run_id: int, status: str) -> None:
    """Record the run's final status (``succeeded``, ``failed`` or ``interrupted``)."""
    if status not in ("succeeded", "failed", "interrupted"):
        raise ValueError(f"a run finishes as 'succeeded', 'failed' or 'interrupted', not {status!r}")
    stamp = now()
    conn.execute("UPDATE runs SET status = ?, finished_at = ?, heartbeat_at = ? WHERE run_id = ?",
                 (status, stamp, stamp, run_id))


def set_run_code(conn: sqlite3.Connection, run_id: int, code_id: int) -> None:
    """Attach a code package to a run."""
    conn.execute("UPDATE runs SET code_id = ? WHERE run_id = ?", (code_id, run_id))


def add_code_package(conn: sqlite3.Connection, prepared: PreparedValue, script_name: str, where: str) -> int:
    """Commit an encoded code archive and its ``code_packages`` row (once per content); its ``code_id``."""
    commit_values(conn, [prepared], where)
    return code_package_id(conn, prepared.stored.blob_key, script_name, now())


def code_package_id(conn: sqlite3.Connection, blob_key: str, script_name: str, created_at: float) -> int:
    """The ``code_id`` of the package of blob ``blob_key``, adding its row when new (one per content)."""
    conn.execute("INSERT OR IGNORE INTO code_packages(blob_key, script_name, created_at) VALUES (?, ?, ?)",
                 (blob_key, script_name, created_at))
    return conn.execute("SELECT code_id FROM code_packages WHERE blob_key = ?", (blob_key,)).fetchone()[0]


# ------------------------------------------------------------ tasks and attempts

def _step_id(conn: sqlite3.Connection, run_id: int, step: str) -> int:
    conn.execute("INSERT OR IGNORE INTO steps(run_id, name, created_at) VALUES (?, ?, ?)", (run_id, step, now()))
    return conn.execute("SELECT step_id FROM steps WHERE run_id = ? AND name = ?", (run_id, step)).fetchone()[0]


def create_tasks(conn: sqlite3.Connection, run_id: int, step: str, tasks: Iterable[Mapping[str, Any]]) -> list[int]:
    """Create pending tasks of one step (and the step, on first use); their ids in the order given.

    Each item may give ``foreach_path``, ``foreach_index``, ``origin_task_id`` and ``origin_pathspec``.
    """
    stamp = now()
    step_id = _step_id(conn, run_id, step)
    ids: list[int] = []
    for item in tasks:
        ids.append(conn.execute(
            "INSERT INTO tasks(run_id, step_id, created_at, foreach_path, foreach_index,"
            " origin_task_id, origin_pathspec) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, step_id, stamp, item.get("foreach_path"), item.get("foreach_index"),
             item.get("origin_task_id"), item.get("origin_pathspec")),
        ).lastrowid or 0)  # never 0: an INSERT into a rowid table always sets it
    return ids


def start_attempt(conn: sqlite3.Connection, task_id: int, attempt: int, pid: int | None = None, *,
                  where: str = "the store") -> None:
    """Record that ``attempt`` of a task has started (in process ``pid``); NotFound for no such task."""
    conn.execute("INSERT INTO attempts(task_id, attempt, started_at, pid) VALUES (?, ?, ?, ?)",
                 (task_id, attempt, now(), pid if pid is not None else os.getpid()))
    changed = conn.execute("UPDATE tasks SET status = 'running', attempt = ? WHERE task_id = ?",
                           (attempt, task_id)).rowcount
    if not changed:
        raise NotFound(f"task {task_id} does not exist in {where}")


def append_log(conn: sqlite3.Connection, task_id: int, attempt: int, stream: str, text: str,
               stamps: list[tuple[int, float]], *, replace_from: int | None = None,
               keep_chars: int = 0) -> None:
    """Stream a batch of a running attempt's output into ``attempts.<stream>``.

    ``text`` is appended, and ``stamps`` (``(line, ts)``: lines from ``line`` on were
    captured at ``ts``) recorded. With ``replace_from`` (a log past its cap) the stored
    text is cut to its first ``keep_chars`` characters (the head) before the append and
    the stamps from line ``replace_from`` on are replaced.
    """
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"stream is 'stdout' or 'stderr', not {stream!r}")
    if replace_from is not None:
        conn.execute(f"UPDATE attempts SET {stream} = substr({stream}, 1, ?) || ? WHERE task_id = ? AND attempt = ?",
                     (keep_chars, text, task_id, attempt))
        conn.execute("DELETE FROM log_stamps WHERE task_id = ? AND attempt = ? AND stream = ? AND line >= ?",
                     (task_id, attempt, stream, replace_from))
    else:
        conn.execute(f"UPDATE attempts SET {stream} = {stream} || ? WHERE task_id = ? AND attempt = ?",
                     (text, task_id, attempt))
    conn.executemany("INSERT OR REPLACE INTO log_stamps(task_id, attempt, stream, line, ts) VALUES (?, ?, ?, ?, ?)",
                     [(task_id, attempt, stream, line, ts) for line, ts in stamps])


def insert_metadata(conn: sqlite3.Connection, task_id: int, attempt: int, metadata: Mapping[str, Any],
                    stamp: float | None = None) -> None:
    """Record metadata of a task attempt (strings as is, anything else as JSON)."""
    stamp = now() if stamp is None else stamp
    conn.executemany(
        "INSERT OR REPLACE INTO metadata(task_id, attempt, name, value, type, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [(task_id, attempt, name, value if isinstance(value, str) else json.dumps(value), name, stamp)
         for name, value in metadata.items()],
    )


def _insert_artifacts(conn: sqlite3.Connection, task_id: int, attempt: int,
                      artifacts: Mapping[str, PreparedValue | StoredValue], stamp: float) -> None:
    """Bind every name of ``artifacts`` to a row of ``artifacts`` for this task attempt.

    A reference read from a task of the same run (``StoredValue.artifact_id``, same
    name) is bound as it is: inheriting or merging a value costs one ``task_values``
    row. Anything else (a new value, a parameter or split element not yet bound, a
    reference into another run) gets a row of its own, owned by this attempt.
    """
    refs = {name: (value.stored if isinstance(value, PreparedValue) else value) for name, value in artifacts.items()}
    wanted = sorted({ref.artifact_id for ref in refs.values() if ref.artifact_id is not None})
    same_run: set[tuple[int, str]] = set()
    for batch in batches(wanted):
        same_run.update(conn.execute(
            "SELECT a.artifact_id, a.name FROM artifacts a JOIN tasks o ON o.task_id = a.task_id"
            " JOIN tasks t ON t.run_id = o.run_id AND t.task_id = ?"
            f" WHERE a.artifact_id IN ({placeholders(len(batch))})", (task_id, *batch)).fetchall())
    bound = {name: ref.artifact_id for name, ref in refs.items() if (ref.artifact_id, name) in same_run}
    own = [(ref.blob_key, ref.encoding, ref.type, ref.size, stamp, task_id, attempt, name)
           for name, ref in refs.items() if name not in bound]
    if own:
        mine = "SELECT name, artifact_id FROM artifacts WHERE task_id = ? AND attempt = ?"
        existing = {name for name, _ in conn.execute(mine, (task_id, attempt))}
        # written again in the same attempt (a clone's replaced value): the row is updated
        conn.executemany("UPDATE artifacts SET blob_key = ?, encoding = ?, type = ?, size = ?, created_at = ?"
                         " WHERE task_id = ? AND attempt = ? AND name = ?", [r for r in own if r[-1] in existing])
        conn.executemany("INSERT INTO artifacts(blob_key, encoding, type, size, created_at, task_id, attempt, name)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [r for r in own if r[-1] not in existing])
        ids = dict(conn.execute(mine, (task_id, attempt)).fetchall())
        bound.update((r[-1], ids[r[-1]]) for r in own)
    conn.executemany("INSERT OR REPLACE INTO task_values(task_id, attempt, name, artifact_id) VALUES (?, ?, ?, ?)",
                     [(task_id, attempt, name, artifact_id) for name, artifact_id in bound.items()])


def finish_attempt(conn: sqlite3.Connection, task_id: int, attempt: int, status: str, *,
                   artifacts: Mapping[str, PreparedValue | StoredValue] = {}, stdout: str = "", stderr: str = "",
                   exception: tuple[str, str, str] | None = None, metadata: Mapping[str, Any] = {},
                   where: str = "the store") -> None:
    """Commit an attempt's outcome, artifacts (their blobs too), logs and metadata (see ``Store.finish_attempt``)."""
    if status not in ("succeeded", "failed", "caught", "interrupted"):
        raise ValueError(f"an attempt finishes as succeeded, failed, caught or interrupted, not {status!r}")
    stamp = now()
    exc_type, exc_message, exc_tb = exception if exception else (None, None, None)
    commit_values(conn, [v for v in artifacts.values() if isinstance(v, PreparedValue)], where)
    _insert_artifacts(conn, task_id, attempt, artifacts, stamp)
    insert_metadata(conn, task_id, attempt, metadata, stamp)
    conn.execute(
        "UPDATE attempts SET finished_at = ?, status = ?, exception_type = ?, exception_message = ?,"
        " traceback = ?, stdout = ?, stderr = ? WHERE task_id = ? AND attempt = ?",
        (stamp, status, exc_type, exc_message, exc_tb, stdout, stderr, task_id, attempt))
    conn.execute("UPDATE tasks SET status = ?, finished_at = ?, attempt = ? WHERE task_id = ?",
                 (status, stamp, attempt, task_id))
    if artifacts:
        sync_run_params(conn, task_id)


# ------------------------------------------------------------ parameters by value

def _json_text(raw: bytes) -> str | None:
    """The canonical JSON text of a ``json`` blob's bytes, or None when they are not plain JSON."""
    try:
        return JsonCodec.dumps(json.loads(raw.decode("utf-8"))).decode("utf-8")
    except (ValueError, RecursionError, CodecError):
        return None


def sync_run_params(conn: sqlite3.Connection, task_id: int) -> None:
    """Rebuild ``run_params`` of the run whose ``_parameters`` task is ``task_id`` (else do nothing).

    One row per parameter artifact of the task's current attempt (names starting with
    ``_`` are runstore's own, not parameters). The value is the JSON text of the blob
    itself, read here and checked against its key — never a copy held elsewhere in
    the row — so a merged file cannot make ``Flow.runs(where=...)`` disagree with what
    ``run.data`` loads. NULL when the value is not JSON or larger than 64 KiB
    (:data:`~runstore.codecs.JSON_SQL_LIMIT`, as ``artifacts_view.value_json``).

    Example
    -------
    >>> from runstore import Store
    >>> store = Store(":memory:")
    >>> run = store.create_run("F", user="anne")
    >>> task = store.create_task(run.run_id, "_parameters")
    >>> store.start_attempt(task, 0)
    >>> store.finish_attempt(task, 0, "succeeded", artifacts={"alpha": store.put_value(0.1)})
    >>> store.sql("SELECT pathspec, name, value FROM params_view").rows
    [('F/1', 'alpha', '0.1')]
    """
    found = conn.execute(
        "SELECT t.run_id, t.attempt FROM tasks t JOIN steps s ON s.step_id = t.step_id"
        " WHERE t.task_id = ? AND s.name = ?", (task_id, PARAMETERS_STEP)).fetchone()
    if found is None:
        return
    run_id, attempt = found
    rows = conn.execute(
        "SELECT v.name, a.blob_key, a.encoding, b.size, c.compression, c.raw_size, c.data, c.chunk_key"
        " FROM task_values v JOIN artifacts a ON a.artifact_id = v.artifact_id AND a.name = v.name"
        " JOIN tasks o ON o.task_id = a.task_id AND o.run_id = ?"  # a binding stays inside its run
        " LEFT JOIN blobs b ON b.blob_key = a.blob_key"
        " LEFT JOIN blob_parts p ON p.blob_key = b.blob_key AND p.seq = 0 AND b.n_chunks = 1 AND b.size <= ?"
        " LEFT JOIN blob_chunks c ON c.chunk_key = p.chunk_key"
        " WHERE v.task_id = ? AND v.attempt = ? AND substr(v.name, 1, 1) <> '_'",
        (run_id, JSON_SQL_LIMIT, task_id, attempt)).fetchall()
    values: dict[str, str | None] = {}
    for name, blob_key, encoding, size, compression, raw_size, data, chunk_key in rows:
        text = None
        if encoding == "json" and data is not None and raw_size == size and chunk_key == blob_key:
            try:
                raw = chunk_bytes(compression, data, raw_size, chunk_key)
            except CodecError:
                raw = None
            if raw is not None:  # hashed to its key, which is the blob's (one chunk)
                text = _json_text(raw)
        values[name] = text
    conn.execute("DELETE FROM run_params WHERE run_id = ?", (run_id,))
    conn.executemany("INSERT INTO run_params(run_id, name, value) VALUES (?, ?, ?)",
                     [(run_id, name, text) for name, text in values.items()])


def abandon_attempt(conn: sqlite3.Connection, task_id: int, attempt: int, exception: tuple[str, str, str],
                    status: str = "failed") -> None:
    """Mark an attempt ``failed`` (or ``interrupted``) whose process could not say so (its row is created if missing)."""
    if status not in ("failed", "interrupted"):
        raise ValueError(f"an attempt is abandoned as failed or interrupted, not {status!r}")
    stamp = now()
    conn.execute("INSERT OR IGNORE INTO attempts(task_id, attempt, started_at) VALUES (?, ?, ?)",
                 (task_id, attempt, stamp))
    conn.execute(
        "UPDATE attempts SET finished_at = ?, status = ?, exception_type = ?,"
        " exception_message = ?, traceback = ? WHERE task_id = ? AND attempt = ? AND status = 'running'",
        (stamp, status, *exception, task_id, attempt))
    conn.execute(
        "UPDATE tasks SET status = ?, finished_at = ?, attempt = ? WHERE task_id = ?"
        " AND status IN ('pending', 'running')", (status, stamp, attempt, task_id))


# ------------------------------------------------------------ tags

def update_run_tags(conn: sqlite3.Connection, run_id: int, add: Iterable[str] = (), remove: Iterable[str] = (),
                    *, where: str = "the store") -> list[tuple[str, bool]]:
    """Remove then add user tags of a run; its tags afterwards (see ``Store.update_run_tags``).

    Read, check and write happen in the caller's ``BEGIN IMMEDIATE`` transaction,
    so concurrent edits are serialized and none is lost.
    """
    add = [validate_user_tag(t) for t in add]
    remove = [validate_tag(t) for t in remove]
    row = conn.execute("SELECT flow_id, created_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFound(f"run {run_id} does not exist in {where}")
    fid, created_at = row
    current = dict(conn.execute("SELECT tag, is_system FROM run_tags WHERE run_id = ?", (run_id,)))
    system = {t for t, s in current.items() if s}
    users = {t for t, s in current.items() if not s}
    bad = sorted(t for t in remove if t in system)
    if bad:
        raise TaggingError(f"Cannot remove a tag that is an existing system tag ({bad})")
    new_users = (users - set(remove)) | (set(add) - system)
    if len(new_users) > MAX_USER_TAGS and len(new_users) > len(users):
        raise TaggingError(f"Cannot increase size of tag set beyond {MAX_USER_TAGS}")
    gone, fresh = users - new_users, new_users - users
    if gone:
        conn.executemany("DELETE FROM run_tags WHERE run_id = ? AND tag = ? AND is_system = 0",
                         [(run_id, t) for t in sorted(gone)])
    if fresh:
        conn.executemany(
            "INSERT INTO run_tags(run_id, tag, is_system, flow_id, created_at) VALUES (?, ?, 0, ?, ?)",
            [(run_id, t, fid, created_at) for t in sorted(fresh)])
    return list_run_tags(conn, run_id)


# ------------------------------------------------------------ resume

def clone_log_stamps(conn: sqlite3.Connection, task_id: int, origin_task_id: int, attempt: int) -> None:
    """Date the lines of a clone's attempt 0 as the origin's ``attempt`` dated them.

    The origin's ``log_stamps`` rows are copied, and a stream whose first line has no
    stamp (an inline or remote attempt, dated by its start) gets one at line 0 with the
    origin attempt's start: the clone's own attempt starts now, so without it
    ``Task.loglines`` of the clone would differ from the origin's.
    """
    conn.execute(
        "INSERT OR REPLACE INTO log_stamps(task_id, attempt, stream, line, ts)"
        " SELECT ?, 0, stream, line, ts FROM log_stamps WHERE task_id = ? AND attempt = ?",
        (task_id, origin_task_id, attempt))
    for stream in ("stdout", "stderr"):
        conn.execute(
            "INSERT OR IGNORE INTO log_stamps(task_id, attempt, stream, line, ts)"
            f" SELECT ?, 0, ?, 0, started_at FROM attempts WHERE task_id = ? AND attempt = ? AND {stream} <> ''",
            (task_id, stream, origin_task_id, attempt))


def clone_task(conn: sqlite3.Connection, task_id: int, origin_task_id: int, origin_pathspec: str,
               metadata: Mapping[str, Any] = {}, *, artifacts: Mapping[str, StoredValue] | None = None,
               inputs: Sequence[int] = (), where: str = "the store") -> str:
    """Make pending task ``task_id`` a clone of ``origin_task_id``; the clone's status (see ``Store.clone_task``).

    Its one attempt copies the origin's latest (status, exception, logs); its
    artifacts point at the same blobs (no value is read or written): bound to the
    rows of its ``inputs`` (tasks of the clone's run) where they hold the same value
    under the same name, else copied rows owned by the clone.
    """
    stamp = now()
    found = conn.execute("SELECT attempt, status FROM tasks WHERE task_id = ?", (origin_task_id,)).fetchone()
    if found is None or conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone() is None:
        raise NotFound(f"task {origin_task_id} or {task_id} does not exist in {where}")
    attempt, status = found
    conn.execute(
        "INSERT INTO attempts(task_id, attempt, started_at, finished_at, status, pid, exception_type,"
        " exception_message, traceback, stdout, stderr)"
        " SELECT ?, 0, ?, ?, status, NULL, exception_type, exception_message, traceback, stdout, stderr"
        " FROM attempts WHERE task_id = ? AND attempt = ?",
        (task_id, stamp, stamp, origin_task_id, attempt))
    clone_log_stamps(conn, task_id, origin_task_id, attempt)
    # The origin's artifacts as the clone's own: each value the clone's inputs (tasks of
    # the new run) already have under that name is bound by reference, the rest copied.
    values: dict[str, PreparedValue | StoredValue] = {}
    available: dict[tuple[str, str, str, str], StoredValue] = {}
    for input_id in inputs:
        for name, ref in list_artifact_refs(conn, input_id, where=where).items():
            available.setdefault((name, ref.blob_key, ref.encoding, ref.type), ref)
    for name, ref in list_artifact_refs(conn, origin_task_id, attempt, where=where).items():
        values[name] = available.get((name, ref.blob_key, ref.encoding, ref.type), replace(ref, artifact_id=None))
    values.update(artifacts or {})
    _insert_artifacts(conn, task_id, 0, values, stamp)
    insert_metadata(conn, task_id, 0, metadata, stamp)
    clone_cards(conn, task_id, origin_task_id, stamp)  # a clone keeps its cards
    conn.execute(
        "UPDATE tasks SET status = ?, attempt = 0, finished_at = ?, origin_task_id = ?, origin_pathspec = ?"
        " WHERE task_id = ?", (status, stamp, origin_task_id, origin_pathspec, task_id))
    sync_run_params(conn, task_id)  # a cloned _parameters task: the new run's parameters
    return status
