"""``runstore doctor``: check a store file and say what is wrong, never changing it.

Problems: an altered schema (objects runstore did not make, SPEC §13.2, found by
``_schemacheck.py``), damaged indexes (with the fix, :func:`reindex`), SQLite
integrity or foreign-key errors, blobs whose chunks are missing, artifacts or code
packages pointing at missing blobs, artifact bindings (``task_values``) to no value of
their own run, and with ``deep`` every chunk and blob re-hashed
(:func:`~runstore.store._blobs.rehash_problems`). Warnings: runs left ``running`` by a
dead owner, a large WAL, space ``gc`` could reclaim.

Schema introspection here is a handful of ``PRAGMA`` and ``sqlite_master`` reads;
sqlite-utils' ``Database.tables``/``.columns`` would replace none of them without
reading the file through its (possibly altered) schema first, and importing it
costs 0.5-1.2 s with pandas and numpy (docs/architecture.md, "Why the printed tables are not
sqlite-utils'"), so it is not used here.

Example
-------
>>> from runstore import Store
>>> store = Store(":memory:")
>>> report = doctor(store)
>>> report.ok, report.problems, report.facts["runs"]
(True, [], 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..schema import SCHEMA_VERSION
from ._blobs import rehash_problems
from ._db import Database, human_size
from ._reads import effective_status
from ._schemacheck import index_problems
from ._trust import untrusted_count

__all__ = ["DoctorReport", "doctor", "reindex"]


@dataclass
class DoctorReport:
    """Result of ``Store.doctor``: problems (the file is damaged or
    inconsistent), warnings (worth knowing, nothing is broken) and facts.

    Example
    -------
    >>> from runstore import Store
    >>> Store(":memory:").doctor().ok
    True
    """

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


#: Runs whose ``run_params`` rows are not exactly their ``_parameters`` task's JSON values
#: (an edited file: the index behind ``Flow.runs(where=...)`` would disagree with ``run.data``).
_PARAMS_DIFFER = """
WITH own AS (SELECT run_id, name, value_json AS value FROM artifacts_view
              WHERE step = '_parameters' AND substr(name, 1, 1) <> '_'),
     differ AS (SELECT run_id FROM (SELECT run_id, name, value FROM run_params EXCEPT SELECT * FROM own)
                UNION SELECT run_id FROM (SELECT * FROM own EXCEPT SELECT run_id, name, value FROM run_params))
SELECT f.name || '/' || r.run_number FROM differ d JOIN runs r ON r.run_id = d.run_id
  JOIN flows f ON f.flow_id = r.flow_id ORDER BY 1
"""


def _doctor_structure(db: Database, report: DoctorReport) -> bool:
    """The file's structure: schema check, integrity, indexes. False: stop here.

    When the schema is not runstore's, the other checks are skipped: they would
    read the file through its altered views and tables.
    """
    report.facts["schema_version"] = db.schema_version
    report.problems += [f"schema: {problem}" for problem in db.schema_problems]
    with db.read() as conn:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        damaged, other = index_problems(rows)
        report.problems += damaged + other
        if not db.schema_problems:
            for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check").fetchall():
                report.problems.append(f"{table} row {rowid} points to a missing {parent} row")
    if db.schema_problems:
        report.warnings.append("runs and blobs were not checked: the file's schema is not runstore's")
        return False
    if db.schema_version < SCHEMA_VERSION:
        report.warnings.append(
            f"schema version {db.schema_version} is older than {SCHEMA_VERSION}: opening the file"
            " writable upgrades it (after a backup copy)")
    return True


def reindex(db: Database) -> None:
    """Rebuild every index from its table (SQLite's ``REINDEX``): the fix for damaged indexes.

    ``Store.reindex`` documents it, with an example.
    """
    with db.write() as conn:
        conn.execute("REINDEX")


def doctor(db: Database, *, deep: bool = False) -> DoctorReport:
    """Check the file and its consistency; never changes or unpickles anything.

    ``Store.doctor`` documents it, with an example.
    """
    report = DoctorReport()
    if not _doctor_structure(db, report):
        return report
    with db.read() as conn:
        q = lambda sql, *args: conn.execute(sql, args).fetchall()  # noqa: E731
        for table in ("flows", "runs", "tasks", "artifacts", "blobs", "blob_chunks"):
            report.facts[table] = q(f"SELECT count(*) FROM {table}")[0][0]
        report.facts["stored_bytes"] = q("SELECT coalesce(sum(length(data)), 0) FROM blob_chunks")[0][0]
        for key, n_chunks, parts, present in q(
            "SELECT b.blob_key, b.n_chunks, count(p.seq), count(c.chunk_key) FROM blobs b"
            " LEFT JOIN blob_parts p ON p.blob_key = b.blob_key"
            " LEFT JOIN blob_chunks c ON c.chunk_key = p.chunk_key"
            " GROUP BY b.blob_key HAVING count(p.seq) != b.n_chunks OR count(c.chunk_key) != count(p.seq)"
        ):
            report.problems.append(
                f"blob {key[:16]}… has {present} of {n_chunks} chunks ({parts} listed): its value is lost")
        for pathspec, name, key in q(
            "SELECT f.name || '/' || r.run_number || '/' || s.name || '/' || t.task_id, a.name, a.blob_key"
            " FROM artifacts a JOIN tasks t ON t.task_id = a.task_id JOIN steps s ON s.step_id = t.step_id"
            " JOIN runs r ON r.run_id = t.run_id JOIN flows f ON f.flow_id = r.flow_id"
            " WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.blob_key = a.blob_key)"
        ):
            report.problems.append(f"artifact {pathspec}.{name} points at missing blob {key[:16]}…")
        has_params = q("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'run_params'")  # since v9
        for (pathspec,) in q(_PARAMS_DIFFER) if has_params else []:
            report.problems.append(
                f"run {pathspec}: its parameters in run_params (params_view, Flow.runs(where=...)) and the JSON"
                " values of its _parameters task differ (an edited file); `runstore export` rebuilds run_params"
                " from the stored values")
        if q("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'task_values'"):  # since v8
            stray = q(
                "SELECT f.name || '/' || r.run_number || '/' || s.name || '/' || t.task_id, v.name"
                " FROM task_values v JOIN tasks t ON t.task_id = v.task_id JOIN steps s ON s.step_id = t.step_id"
                " JOIN runs r ON r.run_id = t.run_id JOIN flows f ON f.flow_id = r.flow_id"
                " WHERE NOT EXISTS (SELECT 1 FROM artifacts a JOIN tasks o ON o.task_id = a.task_id"
                "   WHERE a.artifact_id = v.artifact_id AND a.name = v.name AND o.run_id = t.run_id)"
                " ORDER BY 1, 2 LIMIT 11")
            for pathspec, name in stray[:10]:
                report.problems.append(f"artifact {pathspec}.{name} is bound to no value of its run"
                                       " (another run's, another name's or a missing one): it is not shown")
            if len(stray) > 10:
                report.problems.append("… and more artifacts bound outside their run")
        for code_id, key in q("SELECT code_id, blob_key FROM code_packages c"
                              " WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.blob_key = c.blob_key)"):
            report.problems.append(f"code package {code_id} points at missing blob {key[:16]}…")
        crashed = [
            f"{flow}/{number}" for flow, number, created, beat, host, pid in q(
                "SELECT f.name, r.run_number, r.created_at, r.heartbeat_at, r.owner_host, r.owner_pid"
                " FROM runs r JOIN flows f ON f.flow_id = r.flow_id WHERE r.status = 'running'")
            if effective_status("running", beat, created, host, pid) == "crashed"
        ]
        if crashed:
            report.warnings.append(
                f"{len(crashed)} run(s) left 'running' by an owner that is gone (shown as crashed): "
                + ", ".join(crashed[:10]) + (" …" if len(crashed) > 10 else ""))
        cards = q("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cards'")  # since v5
        unused = q("SELECT count(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM artifacts a WHERE"
                   " a.blob_key = b.blob_key) AND NOT EXISTS (SELECT 1 FROM code_packages c"
                   " WHERE c.blob_key = b.blob_key)" + (" AND NOT EXISTS (SELECT 1 FROM cards d"
                   " WHERE d.blob_key = b.blob_key)" if cards else ""))[0][0]
        if unused:
            report.warnings.append(f"{unused} blob(s) no longer used; `runstore gc` reclaims their space")
    report.facts["file_bytes"] = None
    if db.path is not None:
        report.facts["file_bytes"] = db.path.stat().st_size if db.path.exists() else 0
        wal = Path(f"{db.path}-wal")
        report.facts["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
        if report.facts["wal_bytes"] > 64 * 1024 * 1024:
            report.warnings.append(
                f"the WAL holds {human_size(report.facts['wal_bytes'])} not yet in the main file; it is folded"
                " in when runs end (copy with `runstore backup` meanwhile)")
    report.facts["untrusted_pickles"] = untrusted_count(db)
    if deep:
        report.problems += rehash_problems(db)
    return report
