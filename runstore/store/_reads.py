"""Every read of the run record: ``find_*`` returns one row or None, ``list_*`` many.

The client, the runtime (``logs``, ``dump``, resume) and the admin verbs all read
through these functions, each a plain function over a ``sqlite3.Connection`` that
the caller got from ``Store.read()`` (or holds inside a write transaction).

Every listing is newest first and every query is an index lookup or a bounded range
scan, so its cost does not grow with the number of runs in the store:

* runs of a flow in a namespace (or carrying a tag): ``run_tags_by_tag`` on
  ``(tag, flow_id, created_at)`` read newest first; the other tags are checked per candidate row
  through the ``run_tags`` primary key;
* the newest *successful* run in a namespace: the partial index
  ``run_tags_succeeded`` (``run_tags.run_status`` is kept equal to the run's status
  by triggers, see ``schema.py``);
* global listings: ``runs_by_flow_created`` / ``runs_by_flow_status``.

Listings are fetched in pages (keyset pagination on ``created_at``), never by
loading every run into Python; nothing here reads a payload or unpickles.
``tests/test_client_queries.py`` pins the query plans.

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> _ = store.create_run("HelloFlow", user="anne")
>>> with store.read() as conn:
...     find_run(conn, "HelloFlow")["user_name"], find_attempt(conn, 10**9)
('anne', None)
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any, Iterable, Mapping, Sequence

from ..codecs import JsonCodec
from ..errors import InvalidPathspec, NotFound, ParameterError
from ..schema import STALE_AFTER
from ..tags import is_reserved
from ..util import check_flow_name, hostname, now, parse_id, parse_pathspec, pid_alive, printable
from ._blobs import StoredValue
from ._db import Row, dict_row, dict_rows

__all__ = [
    "find_flow", "list_flows", "flow_in_namespace", "latest_namespace",
    "find_run", "find_run_by_id", "find_origin_run", "run_exists", "list_run_tags", "run_has_tag", "list_runs",
    "list_run_ids", "list_steps", "find_step", "step_finished_at",
    "list_tasks", "list_run_tasks", "find_task", "find_attempt", "read_log", "list_log_lines", "list_metadata",
    "list_artifacts", "list_artifact_refs", "find_artifact", "find_code_package", "list_foreach_stacks",
    "parse_run_pathspec", "effective_status", "param_texts",
]

def parse_run_pathspec(spec: object) -> tuple[str, int | None]:
    """``Flow`` or ``Flow/N`` as the admin verbs take them: ``(flow, number or None)``.

    Built on :func:`~runstore.util.parse_pathspec`, :func:`~runstore.util.check_flow_name`
    and :func:`~runstore.util.parse_id` (leading zeros allowed, as on a command line);
    anything else is :class:`~runstore.errors.InvalidPathspec`.

    Example
    -------
    >>> parse_run_pathspec("HelloFlow/05"), parse_run_pathspec(" HelloFlow/ ")
    (('HelloFlow', 5), ('HelloFlow', None))
    >>> parse_run_pathspec("HelloFlow/5/start")
    Traceback (most recent call last):
    ...
    runstore.errors.InvalidPathspec: 'HelloFlow/5/start' is not a flow name or a run pathspec like HelloFlow/5
    """
    try:
        parts = parse_pathspec(spec.strip() if isinstance(spec, str) else "", depths=(1, 2))
        flow = check_flow_name(parts[0])
        number = parse_id(parts[1], canonical=False) if len(parts) == 2 else None
    except InvalidPathspec:
        parts, number = (), None
    if not parts or (len(parts) == 2 and number is None):
        raise InvalidPathspec(f"{printable(repr(spec))} is not a flow name or a run pathspec like HelloFlow/5")
    return flow, number

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

_ATTEMPT_COLUMNS = (
    "task_id, attempt, started_at, finished_at, status, pid, exception_type, exception_message, traceback,"
    " length(CAST(stdout AS BLOB)) AS stdout_size, length(CAST(stderr AS BLOB)) AS stderr_size"
)

#: A task attempt's artifacts: its bindings (``task_values``) to rows of its own run
#: (a binding to another run's row, or under another name, is never followed: a
#: hostile file cannot make one task show another run's values). ``created_at`` is
#: when the attempt committed them; ``json_value`` the blob's preview (JSON values only).
_BOUND_ARTIFACTS = (
    "SELECT a.artifact_id, v.task_id, v.attempt, v.name, a.blob_key, a.encoding, a.type, a.size,"
    " coalesce(x.finished_at, a.created_at) AS created_at{preview}"
    " FROM task_values v"
    " JOIN artifacts a ON a.artifact_id = v.artifact_id AND a.name = v.name"
    " JOIN tasks t ON t.task_id = v.task_id"
    " JOIN tasks o ON o.task_id = a.task_id AND o.run_id = t.run_id"
    " LEFT JOIN attempts x ON x.task_id = v.task_id AND x.attempt = v.attempt{join}"
)
_ARTIFACT_QUERY = _BOUND_ARTIFACTS.format(
    preview=", CASE WHEN a.encoding = 'json' THEN b.json_value END AS json_value",
    join=" LEFT JOIN blobs b ON b.blob_key = a.blob_key")
#: The same without the JSON preview (references handed to the runtime stay small).
_REF_QUERY = _BOUND_ARTIFACTS.format(preview="", join="")


def _tag_is(alias: str, tag: str) -> str:
    """SQL matching one ``?`` tag on ``alias``: a reserved tag only as a system tag (SPEC §13)."""
    return f"{alias}.tag = ?" + (f" AND {alias}.is_system = 1" if is_reserved(tag) else "")


# ------------------------------------------------------------ flows

def find_flow(conn: sqlite3.Connection, name: str) -> Row | None:
    """The ``flows`` row of ``name`` (``flow_id``, ``name``, ``created_at``), or None."""
    return dict_row(conn.execute("SELECT flow_id, name, created_at FROM flows WHERE name = ?", (name,)))


def list_flows(conn: sqlite3.Connection, namespace: str | None = None) -> list[Row]:
    """Flows with at least one run (in ``namespace`` when given), newest first."""
    if namespace is None:
        return dict_rows(conn.execute(
            "SELECT flow_id, name, created_at FROM flows f WHERE EXISTS"
            " (SELECT 1 FROM runs r WHERE r.flow_id = f.flow_id)"
            " ORDER BY created_at DESC, flow_id DESC"))
    return dict_rows(conn.execute(
        "SELECT flow_id, name, created_at FROM flows f WHERE EXISTS"
        f" (SELECT 1 FROM run_tags t WHERE {_tag_is('t', namespace)} AND t.flow_id = f.flow_id)"
        " ORDER BY created_at DESC, flow_id DESC", (namespace,)))


def flow_in_namespace(conn: sqlite3.Connection, flow_id: int, namespace: str) -> bool:
    """Whether the flow has at least one run carrying the tag ``namespace`` (reserved: system tags only)."""
    return conn.execute(
        f"SELECT 1 FROM run_tags t WHERE {_tag_is('t', namespace)} AND flow_id = ? LIMIT 1", (namespace, flow_id)
    ).fetchone() is not None


def latest_namespace(conn: sqlite3.Connection, flow_id: int) -> str | None:
    """The namespace of the flow's newest run (to suggest in error messages)."""
    row = conn.execute(
        "SELECT namespace FROM runs WHERE flow_id = ? ORDER BY created_at DESC LIMIT 1", (flow_id,)).fetchone()
    return row[0] if row else None


# ------------------------------------------------------------ runs

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



def find_run(conn: sqlite3.Connection, flow: str, run_number: int | None = None) -> Row | None:
    """Run ``run_number`` of ``flow`` (None: its newest run), whoever made it; or None.

    The row carries ``tags_json`` = ``[[tag, is_system], …]``.
    """
    if run_number is None:
        return dict_row(conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM flows f JOIN runs r ON r.flow_id = f.flow_id"
            " WHERE f.name = ? ORDER BY r.created_at DESC, r.run_number DESC LIMIT 1", (flow,)))
    return dict_row(conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM flows f JOIN runs r ON r.flow_id = f.flow_id"
        " WHERE f.name = ? AND r.run_number = ?", (flow, run_number)))


def find_run_by_id(conn: sqlite3.Connection, run_id: int) -> Row | None:
    """One run by its internal ``run_id`` (same columns as :func:`find_run`)."""
    return dict_row(conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs r JOIN flows f ON f.flow_id = r.flow_id WHERE r.run_id = ?", (run_id,)))


def find_origin_run(conn: sqlite3.Connection, flow: str, user: str | None) -> Row | None:
    """The newest run of ``flow`` that ``user`` started with ``python flow.py run`` (resume's default origin).

    Resumes (``invocation = 'resume'``) never become the default origin, so repeated
    resumes keep theirs.
    """
    return dict_row(conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM flows f JOIN runs r ON r.flow_id = f.flow_id"
        " WHERE f.name = ? AND r.invocation = 'run' AND r.user_name IS ?"
        " ORDER BY r.created_at DESC, r.run_number DESC LIMIT 1", (flow, user)))


def run_exists(conn: sqlite3.Connection, flow: str, run_number: int) -> bool:
    """Whether ``flow/run_number`` exists (no namespace involved)."""
    return conn.execute(
        "SELECT 1 FROM flows f JOIN runs r ON r.flow_id = f.flow_id WHERE f.name = ? AND r.run_number = ?",
        (flow, run_number)).fetchone() is not None


def list_run_tags(conn: sqlite3.Connection, run_id: int) -> list[tuple[str, bool]]:
    """``[(tag, is_system), …]`` of a run, sorted by tag."""
    rows = conn.execute("SELECT tag, is_system FROM run_tags WHERE run_id = ? ORDER BY tag", (run_id,)).fetchall()
    return [(tag, bool(system)) for tag, system in rows]


def run_has_tag(conn: sqlite3.Connection, run_id: int, tag: str) -> bool:
    """Whether the run carries ``tag`` (a primary-key lookup); a reserved tag as a system tag."""
    return conn.execute(
        f"SELECT 1 FROM run_tags t WHERE run_id = ? AND {_tag_is('t', tag)}", (run_id, tag)).fetchone() is not None


def param_texts(name: str, value: Any) -> list[str]:
    """The stored JSON texts a parameter value matches in ``run_params`` (JSON equality).

    A number matches an int or a float written with the same value (``1`` matches a
    stored ``1`` and ``1.0``), a bool only a bool, ``None`` only ``null``, a string the
    same string; a list or dict matches the same compact JSON text (keys in the same
    order). Anything JSON cannot hold exactly (tuples, sets, NaN, objects) is a
    :class:`~runstore.errors.ParameterError`.

    Example
    -------
    >>> param_texts("alpha", 1), param_texts("x", "a"), param_texts("on", True)
    (['1', '1.0'], ['"a"'], ['true'])
    >>> param_texts("alpha", float("nan"))
    Traceback (most recent call last):
    ...
    runstore.errors.ParameterError: where={'alpha': nan}: not a JSON value; parameters are compared as JSON (str, int, float, bool, None, lists and dicts of them)
    """
    data = JsonCodec.try_dumps(value)
    if data is None:
        shown = printable(repr(value))[:80]
        raise ParameterError(f"where={{{name!r}: {shown}}}: not a JSON value; parameters are compared"
                             " as JSON (str, int, float, bool, None, lists and dicts of them)")
    texts = [data.decode("utf-8")]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        numbers: list[int | float] = []
        if isinstance(value, int):
            as_float = float(value) if abs(value) < 2 ** 1023 else math.inf
            if math.isfinite(as_float) and int(as_float) == value:
                numbers.append(as_float)
        elif value.is_integer():
            numbers.append(int(value))
        if value == 0:
            numbers += [0, 0.0, -0.0]
        for number in numbers:
            text = json.dumps(number)
            if text not in texts:
                texts.append(text)
    return texts


def _params_sql(alias: str, params: Mapping[str, Any], args: list[Any]) -> list[str]:
    """``EXISTS`` conditions on ``run_params`` (primary key probes) for each ``name: value`` of ``params``."""
    where = []
    for name, value in params.items():
        texts = param_texts(name, value)
        where.append(f"EXISTS (SELECT 1 FROM run_params q WHERE q.run_id = {alias}.run_id AND q.name = ?"
                     f" AND q.value IN ({', '.join('?' * len(texts))}))")
        args += [name, *texts]
    return where


def list_runs(conn: sqlite3.Connection, flow_id: int, *, namespace: str | None = None, tags: Sequence[str] = (),
              successful: bool = False, before: float | None = None, limit: int = 100,
              param_values: Mapping[str, Any] | None = None) -> list[Row]:
    """A page of a flow's runs, newest first, carrying ``namespace`` and all ``tags`` (see ``Store.list_runs``)."""
    required = list(dict.fromkeys([*tags, *([namespace] if namespace is not None else [])]))
    if param_values:
        return _list_runs_by_params(conn, flow_id, required, dict(param_values), successful, before, limit)
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
    return dict_rows(conn.execute(sql, params))


def _list_runs_by_params(conn: sqlite3.Connection, flow_id: int, required: list[str], params: dict[str, Any],
                         successful: bool, before: float | None, limit: int) -> list[Row]:
    """``list_runs`` with parameter values: driven by ``run_params_by_value`` on the first one.

    Every run of the store whose first parameter has that value is a candidate (an
    index range, then the run by primary key); the flow, the other values, the
    namespace and tags are checked per candidate by primary key. So the cost follows
    the runs matching the first value, not the runs of the flow.
    """
    (first, value), rest = next(iter(params.items())), dict(list(params.items())[1:])
    texts = param_texts(first, value)
    args: list[Any] = [first, *texts, flow_id]
    where = [f"p.name = ? AND p.value IN ({', '.join('?' * len(texts))})", "r.flow_id = ?"]
    if successful:
        where.append("r.status = 'succeeded'")
    if before is not None:
        where.append("r.created_at <= ?")
        args.append(before)
    where += _params_sql("r", rest, args)
    for tag in required:
        where.append(f"EXISTS (SELECT 1 FROM run_tags o WHERE o.run_id = r.run_id AND {_tag_is('o', tag)})")
        args.append(tag)
    args.append(limit)
    sql = (f"SELECT {_RUN_COLUMNS} FROM run_params p INDEXED BY run_params_by_value"
           " CROSS JOIN runs r ON r.run_id = p.run_id JOIN flows f ON f.flow_id = r.flow_id"
           f" WHERE {' AND '.join(where)} ORDER BY r.created_at DESC LIMIT ?")
    return dict_rows(conn.execute(sql, args))


def list_run_ids(conn: sqlite3.Connection, pathspecs: Iterable[str], where: str) -> list[int]:
    """Run ids for ``Flow`` (every run of it) or ``Flow/N`` pathspecs, in order, no repeats.

    ``where`` names the store in the ``NotFound`` message.
    """
    run_ids: dict[int, None] = {}
    for spec in pathspecs:
        flow, number = parse_run_pathspec(spec)
        if number is None:
            rows = conn.execute(
                "SELECT r.run_id FROM runs r JOIN flows f ON f.flow_id = r.flow_id WHERE f.name = ?"
                " ORDER BY r.run_id", (flow,)).fetchall()
            if not rows:
                raise NotFound(f"Flow('{flow}') has no runs in {where}")
        else:
            rows = conn.execute(
                "SELECT r.run_id FROM runs r JOIN flows f ON f.flow_id = r.flow_id"
                " WHERE f.name = ? AND r.run_number = ?", (flow, number)).fetchall()
            if not rows:
                raise NotFound(f"Run('{flow}/{number}') does not exist in {where}")
        run_ids.update((row[0], None) for row in rows)
    return list(run_ids)


# ------------------------------------------------------------ steps

def list_steps(conn: sqlite3.Connection, run_id: int) -> list[Row]:
    """A run's steps (``step_id``, ``name``, ``created_at``), newest first."""
    return dict_rows(conn.execute(
        "SELECT step_id, run_id, name, created_at FROM steps WHERE run_id = ?"
        " ORDER BY created_at DESC, step_id DESC", (run_id,)))


def find_step(conn: sqlite3.Connection, run_id: int, name: str) -> Row | None:
    """One step of a run by name, or None."""
    return dict_row(conn.execute(
        "SELECT step_id, run_id, name, created_at FROM steps WHERE run_id = ? AND name = ?", (run_id, name)))


def step_finished_at(conn: sqlite3.Connection, step_id: int) -> float | None:
    """When the step's last task finished; None while any task has not finished."""
    row = conn.execute(
        "SELECT count(*), count(finished_at), max(finished_at) FROM tasks WHERE step_id = ?", (step_id,)).fetchone()
    return row[2] if row[0] and row[0] == row[1] else None


# ------------------------------------------------------------ tasks and attempts

def list_tasks(conn: sqlite3.Connection, step_id: int, *, limit: int | None = None) -> list[Row]:
    """A step's tasks, newest first (``done_attempt`` = latest finished attempt)."""
    return dict_rows(conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM tasks t JOIN steps s ON s.step_id = t.step_id"
        " WHERE t.step_id = ? ORDER BY t.created_at DESC, t.task_id DESC" + (" LIMIT ?" if limit is not None else ""),
        (step_id,) if limit is None else (step_id, limit)))


def list_run_tasks(conn: sqlite3.Connection, run_id: int, step: str | None = None,
                   task_id: int | None = None) -> list[Row]:
    """Tasks of a run (optionally of one step / one task), oldest first.

    Each row: ``task_id``, ``step``, ``status``, ``attempt``, ``foreach_index``, ``foreach_path``.
    """
    sql = ("SELECT t.task_id, s.name AS step, t.status, t.attempt, t.foreach_index, t.foreach_path FROM tasks t"
           " JOIN steps s ON s.step_id = t.step_id WHERE t.run_id = ?")
    args: list[Any] = [run_id]
    if step is not None:
        sql += " AND s.name = ?"
        args.append(step)
    if task_id is not None:
        sql += " AND t.task_id = ?"
        args.append(task_id)
    return dict_rows(conn.execute(sql + " ORDER BY t.task_id", args))


def find_task(conn: sqlite3.Connection, run_id: int, step: str, task_id: int) -> Row | None:
    """One task, checked to belong to ``run_id`` and ``step``; or None."""
    return dict_row(conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM tasks t JOIN steps s ON s.step_id = t.step_id"
        " WHERE t.task_id = ? AND t.run_id = ? AND s.name = ?", (task_id, run_id, step)))


def _attempt_or_latest(conn: sqlite3.Connection, task_id: int, attempt: int | None) -> int | None:
    if attempt is not None:
        return attempt
    row = conn.execute("SELECT attempt FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return None if row is None else row[0]


def find_attempt(conn: sqlite3.Connection, task_id: int, attempt: int | None = None, *,
                 logs: bool = False) -> Row | None:
    """An attempt's outcome (status, times, exception, log sizes) — the task's latest by default.

    With ``logs`` the row also holds the ``stdout`` and ``stderr`` text.
    """
    attempt = _attempt_or_latest(conn, task_id, attempt)
    if attempt is None:
        return None
    return dict_row(conn.execute(
        f"SELECT {_ATTEMPT_COLUMNS}{', stdout, stderr' if logs else ''} FROM attempts"
        " WHERE task_id = ? AND attempt = ?", (task_id, attempt)))


def read_log(conn: sqlite3.Connection, task_id: int, attempt: int, stream: str) -> str:
    """The ``stdout`` or ``stderr`` text of one attempt ('' when there is none)."""
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"stream is 'stdout' or 'stderr', not {stream!r}")
    row = conn.execute(f"SELECT {stream} FROM attempts WHERE task_id = ? AND attempt = ?",
                       (task_id, attempt)).fetchone()
    return row[0] if row else ""


def list_log_lines(conn: sqlite3.Connection, task_id: int, attempt: int, stream: str) -> list[tuple[float, str]]:
    """``[(epoch seconds, line)]`` of one attempt's log, each line without its newline.

    A line is dated by the batch it was streamed in (``log_stamps``); lines with no
    stamp (inline or remote attempts, merged stores) take the attempt's start time.
    """
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"stream is 'stdout' or 'stderr', not {stream!r}")
    row = conn.execute(f"SELECT {stream}, started_at FROM attempts WHERE task_id = ? AND attempt = ?",
                       (task_id, attempt)).fetchone()
    if row is None or not row[0]:
        return []
    stamps = conn.execute("SELECT line, ts FROM log_stamps WHERE task_id = ? AND attempt = ? AND stream = ?"
                          " ORDER BY line", (task_id, attempt, stream)).fetchall()
    out: list[tuple[float, str]] = []
    ts, k = row[1], 0
    for i, line in enumerate(row[0].split("\n")[:-1] if row[0].endswith("\n") else row[0].split("\n")):
        while k < len(stamps) and stamps[k][0] <= i:
            ts = stamps[k][1]
            k += 1
        out.append((ts, line))
    return out


def list_metadata(conn: sqlite3.Connection, task_id: int, attempt: int | None = None) -> list[Row]:
    """Metadata rows of a task (of one attempt when given), oldest first."""
    if attempt is None:
        return dict_rows(conn.execute(
            "SELECT attempt, name, value, type, created_at FROM metadata WHERE task_id = ?"
            " ORDER BY created_at, attempt, name", (task_id,)))
    return dict_rows(conn.execute(
        "SELECT attempt, name, value, type, created_at FROM metadata WHERE task_id = ?"
        " AND attempt = ? ORDER BY created_at, name", (task_id, attempt)))


# ------------------------------------------------------------ artifacts

def list_artifacts(conn: sqlite3.Connection, task_id: int, attempt: int, *, private: bool = False) -> list[Row]:
    """Artifact rows (no payload) of one attempt, newest first then by name."""
    extra = "" if private else " AND substr(v.name, 1, 1) <> '_'"
    return dict_rows(conn.execute(
        f"{_ARTIFACT_QUERY} WHERE v.task_id = ? AND v.attempt = ?{extra}"
        " ORDER BY created_at DESC, v.name", (task_id, attempt)))


def list_artifact_refs(conn: sqlite3.Connection, task_id: int, attempt: int | None = None,
                       where: str = "the store") -> dict[str, StoredValue]:
    """Every artifact of a task's latest (or given) attempt as a reference, by name (nothing loaded).

    Raises ``NotFound`` (naming ``where``) when the task does not exist.
    """
    attempt = _attempt_or_latest(conn, task_id, attempt)
    if attempt is None:
        raise NotFound(f"task {task_id} does not exist in {where}")
    rows = conn.execute(f"{_REF_QUERY} WHERE v.task_id = ? AND v.attempt = ? ORDER BY v.name",
                        (task_id, attempt)).fetchall()
    return {name: StoredValue(blob_key, encoding, size, kind, artifact_id=artifact_id)
            for artifact_id, _, _, name, blob_key, encoding, kind, size, _ in rows}


def find_artifact(conn: sqlite3.Connection, task_id: int, attempt: int, name: str) -> Row | None:
    """One artifact row (no payload), or None."""
    return dict_row(conn.execute(
        f"{_ARTIFACT_QUERY} WHERE v.task_id = ? AND v.attempt = ? AND v.name = ?", (task_id, attempt, name)))


def find_code_package(conn: sqlite3.Connection, code_id: int) -> Row | None:
    """A code package row (``blob_key``, ``script_name``, ``created_at``), or None."""
    return dict_row(conn.execute(
        "SELECT code_id, blob_key, script_name, created_at FROM code_packages WHERE code_id = ?", (code_id,)))


def list_foreach_stacks(conn: sqlite3.Connection, run_id: int, step: str) -> dict[int, list[dict[str, Any]]]:
    """The ``_foreach_stack`` (list of frames, JSON) of every finished task of ``step``, by task id.

    Tasks that never finished an attempt have none. Read from the JSON column,
    never by decoding a pickle.
    """
    rows = conn.execute(
        "SELECT t.task_id, b.json_value FROM tasks t JOIN steps s ON s.step_id = t.step_id"
        " JOIN task_values v ON v.task_id = t.task_id AND v.attempt = t.attempt AND v.name = '_foreach_stack'"
        " JOIN artifacts a ON a.artifact_id = v.artifact_id AND a.name = v.name"
        " JOIN tasks o ON o.task_id = a.task_id AND o.run_id = t.run_id"
        " JOIN blobs b ON b.blob_key = a.blob_key"
        " WHERE t.run_id = ? AND s.name = ? AND a.encoding = 'json'",
        (run_id, step)).fetchall()
    stacks = {}
    for task_id, text in rows:
        if text is not None:
            try:
                stacks[task_id] = json.loads(text)
            except ValueError:
                continue
    return stacks
