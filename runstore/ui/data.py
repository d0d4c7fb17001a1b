"""What the pages show, read through the documented SQL views and the client.

Plain functions over a :class:`~runstore.store.Store`; nothing here knows about HTTP.
Every query is bounded: the runs listing is keyset-paginated on the indexes behind
``runs_view`` / ``tags_view`` (``runs_by_flow_created``, ``run_tags_by_tag``), one
index range per flow, merged, so the first screen costs the same at 100,000 runs as at
1,000 (``benchmarks/bench_ui.py``). Nothing here unpickles: previews are in
:mod:`runstore.preview`.

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> _ = store.create_run("HelloFlow", user="anne", user_tags=["exp"])
>>> page = list_runs(store, RunsQuery(namespace=None))
>>> [r["pathspec"] for r in page.rows], page.next_cursor
(['HelloFlow/1'], None)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..errors import InvalidPathspec, NotFound
from ..util import parse_id, parse_pathspec, printable

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["RunsQuery", "RunsPage", "SortBy", "list_runs", "list_runs_sorted", "run_pathspec", "run_row", "run_tasks", "step_summary",
           "parameters_of", "results_of", "graph_of", "flow_names", "view_columns", "VIEWS", "MAX_COMPARE"]

Row = dict[str, Any]

#: The documented views (docs/sql.md) and one line about each, shown on the SQL page.
VIEWS: dict[str, str] = {
    "runs_view": "one row per run: status, times, user, tags",
    "tags_view": "one row per run and tag (namespaces are tags)",
    "tasks_view": "one row per task: step, status, attempt, times, exception",
    "artifacts_view": "one row per artifact; value for small JSON values",
    "metadata_view": "one row per metadata record of a task attempt",
    "parameters_view": "one row per run: parameters as a JSON object",
    "params_view": "one row per run and parameter; indexed by (name, value)",
}

#: At most this many runs side by side on the compare page.
MAX_COMPARE = 20

_FLOWS_PER_STATEMENT = 200  # well under SQLite's 500 terms of a compound SELECT
_RUN_COLUMNS = ("run_id, flow, run_number, pathspec, user, status, created_at, finished_at,"
                " created_ts, finished_ts, duration_s, user_tags, system_tags, invocation, origin_pathspec")


@dataclass
class RunsQuery:
    """The runs page's filters: flow, namespace (a tag, or None for all), tags, status, order.

    ``cursor`` = ``(created_ts, run_id)`` of the last run of the previous page.

    Example
    -------
    >>> RunsQuery(namespace="user:anne", tags=["exp"]).required_tags()
    ['user:anne', 'exp']
    """

    flow: str | None = None
    namespace: str | None = None
    tags: list[str] = field(default_factory=list)
    status: str | None = None
    oldest_first: bool = False
    cursor: tuple[float, int] | None = None
    limit: int = 50

    def required_tags(self) -> list[str]:
        """Every tag a listed run must carry (namespace first)."""
        return list(dict.fromkeys([*([self.namespace] if self.namespace else []), *self.tags]))


@dataclass
class RunsPage:
    """One page of runs (``runs_view`` rows with ``parameters`` decoded) and the cursor of the next."""

    rows: list[Row]
    next_cursor: tuple[Any, ...] | None


def flow_names(store: "Store") -> list[str]:
    """Every flow with at least one run, newest first.

    Example
    -------
    >>> from runstore import Store
    >>> store = Store(":memory:")
    >>> _ = store.create_run("A", user="anne")
    >>> flow_names(store)
    ['A']
    """
    return [row["name"] for row in store.list_flows()]


def _flow_ids(store: "Store", flow: str | None) -> list[int]:
    if flow is not None:
        found = store.find_flow(flow)
        return [found["flow_id"]] if found else []
    return [row["flow_id"] for row in store.list_flows()]


def _one_flow_sql(q: RunsQuery, flow_id: int, params: list[Any]) -> str:
    """The newest (or oldest) ``limit + 1`` run ids of one flow: one index range scan."""
    tags = q.required_tags()
    op, direction = (">=", "ASC") if q.oldest_first else ("<=", "DESC")
    where: list[str] = []
    if tags:
        source = "tags_view t"
        where += ["t.tag = ?", "t.flow_id = ?"]
        params += [tags[0], flow_id]
        for tag in tags[1:]:
            where.append("EXISTS (SELECT 1 FROM tags_view o WHERE o.run_id = t.run_id AND o.tag = ?)")
            params.append(tag)
    else:
        source = "runs_view t"
        where.append("t.flow_id = ?")
        params.append(flow_id)
    if q.status:
        where.append("t.status = ?")
        params.append(q.status)
    if q.cursor is not None:
        ts, run_id = q.cursor
        # The range keeps the index walk; the second test drops runs already shown that
        # started at exactly the cursor's time.
        where.append(f"t.created_ts {op} ?")
        where.append(f"NOT (t.created_ts = ? AND t.run_id {'<=' if q.oldest_first else '>='} ?)")
        params += [ts, ts, run_id]
    params.append(q.limit + 1)
    return (f"SELECT * FROM (SELECT t.run_id AS run_id, t.created_ts AS created_ts FROM {source}"
            f" WHERE {' AND '.join(where)} ORDER BY t.created_ts {direction}, t.run_id {direction} LIMIT ?)")


def list_runs(store: "Store", q: RunsQuery) -> RunsPage:
    """One page of runs matching ``q``, newest first (or oldest), with the next page's cursor.

    Each flow contributes one index range scan of at most ``limit + 1`` rows; the
    scans are merged in one statement (``UNION ALL``), so neither the number of runs
    nor the page number changes the cost (no ``OFFSET``).

    Example
    -------
    >>> from runstore import Store
    >>> store = Store(":memory:")
    >>> for _ in range(3):
    ...     _ = store.create_run("F", user="anne")
    >>> page = list_runs(store, RunsQuery(limit=2))
    >>> [r["run_number"] for r in page.rows]
    [3, 2]
    >>> [r["run_number"] for r in list_runs(store, RunsQuery(limit=2, cursor=page.next_cursor)).rows]
    [1]
    """
    flow_ids = _flow_ids(store, q.flow)
    direction = "ASC" if q.oldest_first else "DESC"
    found: list[tuple[float, int]] = []
    for start in range(0, len(flow_ids), _FLOWS_PER_STATEMENT):
        params: list[Any] = []
        parts = [_one_flow_sql(q, fid, params) for fid in flow_ids[start:start + _FLOWS_PER_STATEMENT]]
        sql = " UNION ALL ".join(parts) + f" ORDER BY created_ts {direction}, run_id {direction} LIMIT ?"
        params.append(q.limit + 1)
        found += [(ts, rid) for rid, ts in store.sql(sql, params).rows]
    found.sort(reverse=not q.oldest_first)
    found = found[: q.limit + 1]
    next_cursor = found[q.limit - 1] if len(found) > q.limit else None
    ids = [rid for _, rid in found[: q.limit]]
    return RunsPage(_runs_by_id(store, ids), next_cursor)


@dataclass
class SortBy:
    """Sort the runs page by one parameter (``kind="param"``) or scalar result (``kind="result"``).

    ``cursor`` = ``(value, created_ts, run_id)`` of the last run of the previous page
    (``value`` None for a run lacking it). Ties on the value keep the page's order
    (newest first, or oldest first); runs lacking the value come last either way.

    Example
    -------
    >>> SortBy("param", "alpha", descending=True).direction
    'DESC'
    """

    kind: str
    name: str
    descending: bool = False
    cursor: tuple[Any, float, int] | None = None

    @property
    def direction(self) -> str:
        """``ASC`` or ``DESC``: the SQL order of the values."""
        return "DESC" if self.descending else "ASC"


#: The sort value of a run ``r``: the parameter's value (``run_params``, one primary-key
#: probe per run) or the end step's scalar result (numbers, strings, booleans as 0/1; lists
#: and objects are not scalars). ``+a.name`` keeps SQLite on the run's own tasks
#: (``tasks_by_run``) rather than walking ``artifacts_by_name`` — every run's artifact of
#: that name — once per run.
_SORT_VALUE = {
    "param": "(SELECT json_extract(p.value, '$') FROM run_params p WHERE p.run_id = r.run_id AND p.name = ?)",
    "result": ("(SELECT a.value FROM artifacts_view a WHERE a.run_id = r.run_id AND a.step = r.end_step"
               " AND +a.name = ? AND a.value_json IS NOT NULL AND substr(a.value_json, 1, 1) NOT IN ('[', '{')"
               " ORDER BY a.task_id DESC LIMIT 1)"),
}


def list_runs_sorted(store: "Store", q: RunsQuery, by: SortBy) -> RunsPage:
    """One page of the runs matching ``q``'s filters, ordered by a parameter or scalar result.

    Every run matching the filters (flow, namespace, tags, status) is ranked, not just
    one page: numbers as numbers, then strings; runs lacking the value last; ties by
    creation time (``q.oldest_first``) then run id. Pagination is a keyset on
    ``(value, created_ts, run_id)`` (``by.cursor``), so pages never overlap or skip
    a run. One statement reads each matching run's value — a parameter by one
    primary-key probe of ``run_params``, a result through the run's tasks — and keeps
    the top ``limit + 1``: linear in the matching runs (``benchmarks/bench_ui.py``;
    docs/ui.md has the figures).

    Example
    -------
    >>> from runstore import Store
    >>> store = Store(":memory:")
    >>> for alpha in (0.5, 2, 0.1):
    ...     run = store.create_run("F", user="anne")
    ...     task = store.create_task(run.run_id, "_parameters")
    ...     store.start_attempt(task, 0)
    ...     store.finish_attempt(task, 0, "succeeded", artifacts={"alpha": store.put_value(alpha)})
    >>> page = list_runs_sorted(store, RunsQuery(limit=2), SortBy("param", "alpha"))
    >>> [r["parameters"]["alpha"] for r in page.rows]
    [0.1, 0.5]
    >>> [r["parameters"]["alpha"] for r in list_runs_sorted(
    ...     store, RunsQuery(limit=2), SortBy("param", "alpha", cursor=page.next_cursor)).rows]
    [2]
    """
    if by.kind not in _SORT_VALUE:
        raise ValueError(f"sort kind must be 'param' or 'result', not {by.kind!r}")
    params: list[Any] = [by.name]
    where: list[str] = []
    if q.flow is not None:
        flow_ids = _flow_ids(store, q.flow)
        if not flow_ids:
            return RunsPage([], None)
        where.append("r.flow_id = ?")
        params.append(flow_ids[0])
    for tag in q.required_tags():
        where.append("EXISTS (SELECT 1 FROM tags_view o WHERE o.run_id = r.run_id AND o.tag = ?)")
        params.append(tag)
    if q.status:
        where.append("r.status = ?")
        params.append(q.status)
    tie = "ASC" if q.oldest_first else "DESC"
    after: list[str] = []
    if by.cursor is not None:
        value, ts, run_id = by.cursor
        t_op = ">" if q.oldest_first else "<"
        later = f"(m.created_ts {t_op} ? OR (m.created_ts = ? AND m.run_id {t_op} ?))"
        if value is None:
            after.append(f"m.v IS NULL AND {later}")
            params += [ts, ts, run_id]
        else:
            v_op = "<" if by.descending else ">"
            after.append(f"(m.v {v_op} ? OR m.v IS NULL OR (m.v = ? AND {later}))")
            params += [value, value, ts, ts, run_id]
    params.append(q.limit + 1)
    # MATERIALIZED: each run's value is read once, not again for the ORDER BY.
    sql = (f"WITH m AS MATERIALIZED (SELECT r.run_id AS run_id, r.created_ts AS created_ts,"
           f" {_SORT_VALUE[by.kind]} AS v FROM runs_view r"
           f"{' WHERE ' + ' AND '.join(where) if where else ''}) SELECT m.run_id, m.created_ts, m.v FROM m"
           f"{' WHERE ' + after[0] if after else ''}"
           f" ORDER BY m.v IS NULL, m.v {by.direction}, m.created_ts {tie}, m.run_id {tie} LIMIT ?")
    found = store.sql(sql, params).rows
    next_cursor = None
    if len(found) > q.limit:
        run_id, ts, value = found[q.limit - 1]
        next_cursor = (value, ts, run_id)
    return RunsPage(_runs_by_id(store, [rid for rid, _, _ in found[: q.limit]]), next_cursor)


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


def _runs_by_id(store: "Store", run_ids: Sequence[int]) -> list[Row]:
    """``runs_view`` rows (tags decoded) plus ``parameters``, in the order of ``run_ids``."""
    if not run_ids:
        return []
    marks = _placeholders(len(run_ids))
    rows = {r["run_id"]: r for r in store.sql(
        f"SELECT {_RUN_COLUMNS} FROM runs_view WHERE run_id IN ({marks})", list(run_ids)).as_dicts()}
    params = dict(store.sql(f"SELECT run_id, parameters FROM parameters_view WHERE run_id IN ({marks})",
                            list(run_ids)).rows)
    out = []
    for run_id in run_ids:
        row = rows.get(run_id)
        if row is None:  # deleted between the two statements
            continue
        row["user_tags"] = _json_list(row["user_tags"])
        row["system_tags"] = _json_list(row["system_tags"])
        row["parameters"] = _json_dict(params.get(run_id))
        out.append(row)
    return out


def _json_list(text: Any) -> list[Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _json_dict(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def results_of(store: "Store", run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Scalar results of runs: small JSON artifacts of each run's end step, ``{run_id: {name: value}}``.

    Read from ``artifacts_view`` through the tasks of the runs (index ``tasks_by_run``),
    never a payload. Only numbers, strings and booleans count as scalars.

    Example
    -------
    >>> from runstore import Store
    >>> store = Store(":memory:")
    >>> run = store.create_run("F", user="anne")
    >>> task = store.create_task(run.run_id, "end")
    >>> store.start_attempt(task, 0)
    >>> store.finish_attempt(task, 0, "succeeded", artifacts={"acc": store.put_value(0.9)})
    >>> results_of(store, [run.run_id])
    {1: {'acc': 0.9}}
    """
    if not run_ids:
        return {}
    marks = _placeholders(len(run_ids))
    rows = store.sql(
        "SELECT a.run_id, a.name, a.value, a.value_json FROM artifacts_view a"
        " WHERE a.task_id IN (SELECT t.task_id FROM tasks_view t JOIN runs_view r ON r.run_id = t.run_id"
        f"  WHERE t.run_id IN ({marks}) AND t.step = r.end_step)"
        " AND a.value_json IS NOT NULL AND substr(a.name, 1, 1) <> '_'"
        " ORDER BY a.run_id, a.name", list(run_ids)).rows
    out: dict[int, dict[str, Any]] = {rid: {} for rid in run_ids}
    for run_id, name, value, value_json in rows:
        if isinstance(value, (int, float, str)) and not value_json.startswith(("[", "{")):
            out[run_id][name] = json.loads(value_json)
    return out


def parameters_of(store: "Store", run_id: int) -> dict[str, Any]:
    """A run's parameters from ``parameters_view`` (values over 64 KiB or not JSON are None).

    Example
    -------
    >>> from runstore import Store
    >>> parameters_of(Store(":memory:"), 1)
    {}
    """
    rows = store.sql("SELECT parameters FROM parameters_view WHERE run_id = ?", [run_id]).rows
    return _json_dict(rows[0][0]) if rows else {}


def run_pathspec(text: str) -> tuple[str, int]:
    """``("Flow", 5)`` from ``"Flow/5"``; ``InvalidPathspec`` for anything else.

    Example
    -------
    >>> run_pathspec("HelloFlow/5")
    ('HelloFlow', 5)
    """
    try:
        flow, digits = parse_pathspec(text, depths=(2,))
    except InvalidPathspec:
        flow, digits = "", ""
    number = parse_id(digits, canonical=False)
    if number is None:
        raise InvalidPathspec(f"{printable(repr(text))} is not a run pathspec like HelloFlow/5")
    return flow, number


def run_row(store: "Store", flow: str, number: int) -> Row:
    """One ``runs_view`` row (tags and parameters decoded); ``NotFound`` when missing.

    Example
    -------
    >>> from runstore import Store
    >>> store = Store(":memory:")
    >>> _ = store.create_run("F", user="anne")
    >>> run_row(store, "F", 1)["user"]
    'anne'
    """
    rows = store.sql("SELECT run_id FROM runs_view WHERE flow = ? AND run_number = ?", [flow, number]).rows
    if not rows:
        raise NotFound(f"Run('{flow}/{number}') does not exist in {store.where}")
    found = _runs_by_id(store, [rows[0][0]])
    if not found:
        raise NotFound(f"Run('{flow}/{number}') does not exist in {store.where}")
    return found[0]


def run_tasks(store: "Store", run_id: int) -> list[Row]:
    """Every task of a run (``tasks_view``, index ``tasks_by_run``), in creation order.

    Example
    -------
    >>> from runstore import Store
    >>> run_tasks(Store(":memory:"), 1)
    []
    """
    return store.sql(
        "SELECT task_id, step, pathspec, status, attempt, created_ts, finished_ts, duration_s,"
        " foreach_path, foreach_index, exception_type, exception_message FROM tasks_view"
        " WHERE run_id = ? ORDER BY created_ts, task_id", [run_id]).as_dicts()


_STATUS_RANK = {"failed": 0, "interrupted": 1, "running": 2, "pending": 3, "caught": 4, "succeeded": 5}


def step_summary(tasks: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """Per step: task count, counts per status and the step's status (worst of its tasks).

    Example
    -------
    >>> step_summary([{"step": "a", "status": "succeeded"}, {"step": "a", "status": "failed"}])["a"]["status"]
    'failed'
    """
    out: dict[str, dict[str, Any]] = {}
    for task in tasks:
        entry = out.setdefault(task["step"], {"tasks": 0, "counts": {}, "status": "succeeded"})
        entry["tasks"] += 1
        entry["counts"][task["status"]] = entry["counts"].get(task["status"], 0) + 1
        if _STATUS_RANK.get(task["status"], 9) < _STATUS_RANK.get(entry["status"], 9):
            entry["status"] = task["status"]
    return out


def graph_of(store: "Store", run_id: int) -> dict[str, Any] | None:
    """The run's ``_graph_info`` (stored as JSON with the ``_parameters`` task), or None.

    Read from ``artifacts_view.value_json``: never a payload, never a pickle; anything
    that is not the expected shape gives None (a hand-made store draws no DAG).

    Example
    -------
    >>> from runstore import Store
    >>> graph_of(Store(":memory:"), 1) is None
    True
    """
    rows = store.sql("SELECT value_json FROM artifacts_view WHERE run_id = ? AND step = '_parameters'"
                     " AND name = '_graph_info' AND encoding = 'json' LIMIT 1", [run_id]).rows
    info = _json_dict(rows[0][0]) if rows else {}
    steps = info.get("steps")
    if not isinstance(steps, dict) or not steps:
        return None
    clean: dict[str, Any] = {}
    for name, node in steps.items():
        if not isinstance(node, dict):
            return None
        nexts = node.get("next") if isinstance(node.get("next"), list) else []
        clean[str(name)] = {"next": [str(n) for n in nexts if str(n) in steps],
                            "type": str(node.get("type") or ""), "foreach": node.get("foreach")}
        if isinstance(node.get("switch"), dict):
            clean[str(name)]["switch"] = {str(k): str(v) for k, v in node["switch"].items()}
    start = info.get("start_step") if info.get("start_step") in clean else next(iter(clean))
    return {"steps": clean, "start": start}


def view_columns(store: "Store") -> dict[str, list[str]]:
    """The documented views and their columns, read from the file itself.

    Example
    -------
    >>> from runstore import Store
    >>> view_columns(Store(":memory:"))["runs_view"][:3]
    ['run_id', 'flow_id', 'flow']
    """
    out: dict[str, list[str]] = {}
    for view in VIEWS:
        out[view] = [r[1] for r in store.sql(f"PRAGMA table_info({view})").rows]
    return out
