"""``runstore flatten``: the runs of a store as a plain SQLite file for tools that know no runstore.

The new file has three tables anyone can open with Datasette, pandas or ``sqlite3``:

* ``runs``: one row per run (``pathspec`` primary key, flow, run_number, status, user,
  namespace, created_at, finished_at, duration_s, tags and system_tags as JSON text), plus one
  column ``param_<name>`` per parameter name and one ``artifact_<name>`` per scalar JSON
  artifact of the run's end step (int, float, str, bool or None; private ``_`` names and the
  parameters the end step inherits are left out). A run without that parameter or artifact
  has NULL there. Non-scalar parameter values (lists, dicts) are kept as their JSON text.
* ``tasks``: one row per task (``pathspec`` primary key, run_pathspec → ``runs``).
* ``artifacts``: one row per artifact of a task (task_pathspec → ``tasks``): type, encoding,
  size and, for JSON values, ``value_json``. Pickles and other binary values are never read.
* ``run_columns``: which ``runs`` column holds which parameter or artifact (``column``, ``kind``,
  ``name``), so a column name that had to be changed can be traced back to the stored name.

Everything is read through the documented SQL views (docs/sql.md) on the store's read-only
connection (:meth:`runstore.store.Store.sql_stream`); nothing is unpickled and no code from
the store runs. Names from the store become column names: each is prefixed, its control
characters replaced by ``_``, cut to :data:`MAX_NAME` characters, and a name that then equals
(case-insensitively, as SQLite compares column names) one already taken gets ``_2``, ``_3``…
The table is written with sqlite-utils (``Table.insert_all(..., alter=True)``), which quotes
every identifier. sqlite-utils is imported only here, inside :func:`flatten` (its import costs
0.2–2 s, docs/architecture.md).

Example
-------
>>> import tempfile, pathlib
>>> from runstore import Store
>>> store = Store(":memory:")
>>> run = store.create_run("F", user="anne")
>>> out = pathlib.Path(tempfile.mkdtemp()) / "flat.db"
>>> flatten(store, out).runs
1
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from .errors import OutputExistsError, StoreError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["FlatReport", "flatten", "column_name", "MAX_NAME", "MAX_COLUMNS"]

#: Longest part of a column name taken from a stored name (characters, before the prefix).
MAX_NAME = 100
#: At most this many ``param_``/``artifact_`` columns (sqlite-utils inserts at most 999 values a row);
#: names past it are left out of ``runs`` (counted in :attr:`FlatReport.left_out`; their values
#: stay in ``artifacts``).
MAX_COLUMNS = 900

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SCALARS = (int, float, str, bool, type(None))


@dataclass
class FlatReport:
    """What :func:`flatten` wrote: the file and its row counts.

    Example
    -------
    >>> FlatReport("flat.db", runs=2, tasks=6, artifacts=9).summary()
    'wrote 2 run(s), 6 task(s), 9 artifact(s) to flat.db'
    """

    target: str
    runs: int = 0
    tasks: int = 0
    artifacts: int = 0
    renamed: dict[str, str] = field(default_factory=dict)
    left_out: int = 0

    def summary(self) -> str:
        """One line for the command line."""
        left = f" ({self.left_out} name(s) past {MAX_COLUMNS} columns left out of runs)" if self.left_out else ""
        return (f"wrote {self.runs} run(s), {self.tasks} task(s), {self.artifacts} artifact(s) to {self.target}"
                f"{left}")


def column_name(prefix: str, name: str, taken: set[str]) -> str:
    """A safe, unused column name for a stored ``name``; adds it (lower-cased) to ``taken``.

    Example
    -------
    >>> taken = {"pathspec"}
    >>> column_name("param_", "Alpha", taken), column_name("param_", "alpha", taken)
    ('param_Alpha', 'param_alpha_2')
    >>> column_name("param_", "a\\nb", taken)
    'param_a_b'
    """
    base = prefix + _CONTROL.sub("_", name)[:MAX_NAME]
    candidate, n = base, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate.lower())
    return candidate


def _scalar(text: Any) -> tuple[bool, Any]:
    """(True, value) when the JSON text is a scalar; (False, text) otherwise (kept as text)."""
    if not isinstance(text, str):
        return False, text
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return False, text
    return isinstance(value, _SCALARS), value


def _filter(flows: Sequence[str], namespace: str | None) -> tuple[str, list[Any]]:
    """A WHERE clause over runs_view's ``run_id``/``flow`` for the chosen runs."""
    clauses, params = [], []
    if flows:
        clauses.append(f"flow IN ({', '.join('?' * len(flows))})")
        params += list(flows)
    if namespace is not None:
        clauses.append("run_id IN (SELECT run_id FROM tags_view WHERE tag = ?)")
        params.append(namespace)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _stream(store: Store, query: str, params: Sequence[Any]) -> Iterator[dict[str, Any]]:
    with store.sql_stream(query, params) as stream:
        for row in stream.rows:
            yield dict(zip(stream.columns, row))


RUN_COLUMNS = {"pathspec": str, "flow": str, "run_number": int, "status": str, "user": str,
               "namespace": str, "created_at": str, "finished_at": str, "duration_s": float,
               "tags": str, "system_tags": str}


def _run_rows(store: Store, where: str, params: list[Any], report: FlatReport,
              names: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """The ``runs`` rows: run columns, then ``param_*`` and ``artifact_*`` (names recorded)."""
    runs: dict[int, dict[str, Any]] = {}
    for row in _stream(store, "SELECT run_id, pathspec, flow, run_number, status, user, namespace, created_at,"
                              " finished_at, duration_s, user_tags AS tags, system_tags, end_step"
                              f" FROM runs_view{where} ORDER BY created_ts, run_id", params):
        runs[row.pop("run_id")] = row
    taken = {c.lower() for c in RUN_COLUMNS}
    columns: dict[tuple[str, str], str] = {}
    skipped: set[tuple[str, str]] = set()

    def column(kind: str, name: str) -> str | None:
        if (kind, name) not in columns:
            if len(columns) >= MAX_COLUMNS:
                skipped.add((kind, name))
                report.left_out = len(skipped)
                return None
            columns[kind, name] = col = column_name(f"{kind}_", name, taken)
            names.append((col, kind, name))
            if col != f"{kind}_{name}":
                report.renamed[f"{kind} {name!r}"] = col
        return columns[kind, name]

    params_of: dict[int, set[str]] = {}
    for row in _stream(store, "SELECT run_id, name, value FROM params_view WHERE run_id IN "
                              f"(SELECT run_id FROM runs_view{where}) ORDER BY run_id, name", params):
        run = runs.get(row["run_id"])
        if run is None:
            continue
        params_of.setdefault(row["run_id"], set()).add(row["name"])
        col = column("param", row["name"])
        if col is not None:
            run[col] = _scalar(row["value"])[1]
    for row in _stream(store, "SELECT a.run_id, a.name, a.value_json FROM artifacts_view a"
                              " JOIN runs_view r ON r.run_id = a.run_id AND a.step = r.end_step"
                              f" WHERE a.encoding = 'json' AND a.value_json IS NOT NULL AND a.run_id IN "
                              f"(SELECT run_id FROM runs_view{where}) ORDER BY a.run_id, a.task_id, a.name", params):
        run = runs.get(row["run_id"])
        if run is None or row["name"].startswith("_") or row["name"] in params_of.get(row["run_id"], ()):
            continue
        ok, value = _scalar(row["value_json"])
        col = column("artifact", row["name"]) if ok else None
        if col is not None and col not in run:  # several end tasks: the first one's value
            run[col] = value
    for run in runs.values():
        del run["end_step"]
    return list(runs.values())


def _remove_stale_temporaries(target: Path) -> None:
    """Delete ``.OUT.PID.flat.tmp`` files left next to ``target`` by a writer that died (``kill -9``).

    A temporary file whose process still runs belongs to a flatten in progress and is kept.
    """
    from .util import pid_alive

    pattern = re.compile(rf"\.{re.escape(target.name)}\.(\d{{1,10}})\.flat\.tmp")
    for path in target.parent.glob(f".{target.name}.*.flat.tmp"):
        found = pattern.fullmatch(path.name)
        if found and int(found.group(1)) != os.getpid() and not pid_alive(int(found.group(1))):
            path.unlink(missing_ok=True)


def flatten(store: Store, out: str | os.PathLike[str], *, flows: Iterable[str] = (),
            namespace: str | None = None, replace: bool = False) -> FlatReport:
    """Write the runs of ``store`` (of ``flows``, in ``namespace``; all when None) to a new plain file ``out``.

    The file is built under a temporary name next to ``out`` and renamed into place only
    when complete (removed on failure), so ``out`` is never half written. An existing
    ``out`` is refused (:class:`OutputExistsError`) unless ``replace``.

    Example
    -------
    >>> import sqlite3, tempfile, pathlib
    >>> from runstore import Store
    >>> store = Store(":memory:")
    >>> _ = [store.create_run("F", user="anne") for _ in range(2)]
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "flat.db"
    >>> flatten(store, out, flows=["F"]).summary().split(" to ")[0]
    'wrote 2 run(s), 0 task(s), 0 artifact(s)'
    >>> sqlite3.connect(out).execute("SELECT pathspec FROM runs ORDER BY run_number").fetchall()
    [('F/1',), ('F/2',)]
    """
    import sqlite_utils  # 0.2-2 s (pandas, numpy when installed): only here, never on the run path

    target = Path(out)
    if target.exists() and not replace:
        raise OutputExistsError(f"{target} exists already (--replace to overwrite it)")
    if target.is_dir():
        raise OutputExistsError(f"{target} is a directory")
    if not target.parent.is_dir():
        raise StoreError(f"cannot write {target}: no directory {target.parent}")
    report = FlatReport(str(target))
    where, params = _filter(list(flows), namespace)
    names: list[tuple[str, str, str]] = []
    rows = _run_rows(store, where, params, report, names)
    _remove_stale_temporaries(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.flat.tmp")
    tmp.unlink(missing_ok=True)
    try:
        db = sqlite_utils.Database(str(tmp), execute_plugins=False)
        db["runs"].create(RUN_COLUMNS, pk="pathspec")
        db["runs"].insert_all(rows, alter=True, pk="pathspec", replace=True)
        db["runs"].create_index(["flow", "run_number"])
        report.runs = len(rows)
        db["run_columns"].insert_all(({"column": c, "kind": k, "name": n} for c, k, n in names), pk="column",
                                 columns={"column": str, "kind": str, "name": str})
        runs_in = f"run_id IN (SELECT run_id FROM runs_view{where})"
        db["tasks"].create({"pathspec": str, "run_pathspec": str, "flow": str, "run_number": int, "step": str,
                            "task_id": int, "status": str, "attempt": int, "created_at": str,
                            "finished_at": str, "duration_s": float, "foreach_index": int,
                            "exception_type": str, "exception_message": str},
                           pk="pathspec", foreign_keys=[("run_pathspec", "runs", "pathspec")])
        db["tasks"].insert_all(_stream(
            store, "SELECT pathspec, flow || '/' || run_number AS run_pathspec, flow, run_number, step, task_id,"
                   " status, attempt, created_at, finished_at, duration_s, foreach_index, exception_type,"
                   f" exception_message FROM tasks_view WHERE {runs_in} ORDER BY task_id", params), replace=True)
        db["tasks"].create_index(["run_pathspec"])
        report.tasks = db["tasks"].count
        db["artifacts"].create({"pathspec": str, "task_pathspec": str, "name": str, "step": str, "type": str,
                                "encoding": str, "size": int, "value_json": str, "created_at": str},
                               pk="pathspec", foreign_keys=[("task_pathspec", "tasks", "pathspec")])
        db["artifacts"].insert_all(_stream(
            store, "SELECT pathspec, task_pathspec, name, step, type, encoding, size, value_json, created_at"
                   f" FROM artifacts_view WHERE {runs_in} ORDER BY task_id, name", params), replace=True)
        db["artifacts"].create_index(["task_pathspec"])
        db["artifacts"].create_index(["name"])
        report.artifacts = db["artifacts"].count
        db.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return report
